"""The quickstart report's chart: its title is the report's (a loop variable once shadowed it)."""

from __future__ import annotations

from pathlib import Path


def test_the_chart_is_titled_with_the_report_s_title(tmp_path: Path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from distill.quickstart.report import chart

    titles = []
    original = Figure.suptitle
    monkeypatch.setattr(Figure, "suptitle", lambda self, text, **kw: titles.append(text) or original(self, text, **kw))
    rows = [{"model": "teacher", "accuracy": 0.7, "accuracy_stderr": 0.02, "mixing": 0.3},
            {"model": "student, SFT", "accuracy": 0.8, "accuracy_stderr": 0.02, "mixing": 0.0}]
    chart(rows, tmp_path / "chart.png", "distill: SFT, KD and on-policy distillation")
    assert titles == ["distill: SFT, KD and on-policy distillation"] and (tmp_path / "chart.png").stat().st_size > 1000
