"""The quickstart, reduced (few problems, few steps), end to end through `distill run`: the tiny
teacher is trained, sampled with the real vLLM engine, filtered, two students are trained and
published, every model is evaluated with vLLM, and the table and chart are written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.core.data import read_records
from distill.core.r1_format import last_boxed, split_completion
from distill.core.records import Trace
from distill.filters.config import FilterConfig
from distill.filters.rules.language import check_language
from distill.pipeline.run import execute, plan
from distill.quickstart.report import verdicts
from distill.quickstart.task import make_examples

RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "quickstart.yaml"
REDUCED = [
    "quickstart.teacher_problems=600",
    "quickstart.prompts=12",
    "quickstart.heldout=6",
    "quickstart.teacher.steps=120",
    # A teacher trained for seconds rarely gets an answer right: keep the rules it can pass, so
    # the students have data; the full rule set is exercised by the quickstart itself.
    "filter.rules=[format, language]",
    "generate.n=2",
    "train.epochs=1",
    "compare.k=1",
]


def test_task_is_deterministic_distinct_and_labelled_truthfully():
    examples = make_examples(500, seed=5, wrong_rate=0.2, mixed_rate=0.3)
    assert [e.completion for e in examples] == [e.completion for e in make_examples(500, seed=5, wrong_rate=0.2, mixed_rate=0.3)]
    assert len({e.problem.problem for e in examples}) == 500
    held = make_examples(50, seed=6, exclude={e.problem.problem for e in examples})
    assert not {e.problem.problem for e in held} & {e.problem.problem for e in examples}
    for e in examples:
        # A slip changes the boxed answer; a clean trace's boxed answer is the reference.
        assert (last_boxed(e.completion) != e.problem.answer) == e.wrong
        assert any("\u4e00" <= c <= "\u9fff" for c in split_completion(e.completion).reasoning) == e.mixed
    assert 60 < sum(e.wrong for e in examples) < 140 and 100 < sum(e.mixed for e in examples) < 200


def test_filter_language_rule_rejects_exactly_the_drifting_traces():
    """The task's Chinese sentences are long enough for the real rule (it ignores < 3 foreign words)."""
    config = FilterConfig(input="-", output="-")
    for e in make_examples(300, seed=8, mixed_rate=0.4):
        trace = Trace(**e.problem.model_dump(), id="x#0", sample_index=0, completion="<think>\n" + e.completion)
        assert check_language(trace, split_completion(trace.completion), config).passed == (not e.mixed)


def _row(model, accuracy, mixing, stderr=0.02):
    return {"model": model, "accuracy": accuracy, "accuracy_stderr": stderr, "mixing": mixing}


def test_verdicts_say_when_filtering_did_not_help():
    rows = [_row("student before training", 0.05, 0.8), _row("student, filtered traces", 0.60, 0.10),
            _row("student, unfiltered traces", 0.61, 0.05)]
    lines = verdicts(rows)
    assert lines[0] == "Distillation lifted the student: 5.0% before training, 60.0% after (+55.0 points)."
    assert "did not measurably change accuracy" in lines[1]
    assert "filtering did NOT reduce mixing" in lines[2]
    better = verdicts([rows[0], _row("student, filtered traces", 0.8, 0.0), _row("student, unfiltered traces", 0.6, 0.2)])
    assert "Filtering raised accuracy" in better[1] and "NOT" not in better[2]


@pytest.mark.slow
def test_reduced_quickstart_runs_end_to_end(tmp_path):
    out = tmp_path / "quickstart"
    ctx, planned = plan(RECIPE, out, None, None, REDUCED)
    assert [p.name for p in planned] == ["teacher", "generate", "filter", "train", "train-unfiltered", "publish", "compare"]
    results = execute(ctx, planned, RECIPE.read_text())

    teacher = out / "teacher"
    assert (teacher / "model" / "config.json").exists() and (teacher / "student-base" / "config.json").exists()
    student, big = (json.loads((teacher / d / "config.json").read_text()) for d in ("student-base", "model"))
    assert student["num_hidden_layers"] < big["num_hidden_layers"]  # the student is smaller
    assert results["teacher"]["mixed_traces"] > 0 and results["teacher"]["wrong_traces"] > 0

    traces = list(read_records(out / "generate" / "traces.jsonl"))
    assert len(traces) == 12 * 2 and all(t.teacher["model"] == str(teacher / "model") for t in traces)
    report = json.loads((out / "filter" / "report.json").read_text())
    assert report["records_in"] == 24 and report["kept"] > 0
    # The control arm trains on exactly as many (unfiltered) traces as the filter kept.
    control = list(read_records(out / "train-unfiltered" / "traces.jsonl"))
    assert len(control) == report["kept"]
    assert (out / "train" / "final").is_dir() and (out / "train-unfiltered" / "final").is_dir()
    assert (out / "publish" / "model" / "config.json").exists()

    compare = out / "compare"
    rows = json.loads((compare / "results.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["teacher", "student before training", "student, filtered traces", "student, unfiltered traces"]
    assert all(r["problems"] == 6 and 0 <= r["accuracy"] <= 1 and 0 <= r["mixing"] <= 1 for r in rows)
    table = (compare / "table.md").read_text()
    assert "| teacher |" in table and "Distillation" in table and "Language mixing" in table
    assert (compare / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for stage in results:
        assert json.loads((out / stage / "stage.json").read_text())["status"] == "complete"
        assert (out / stage / "log.txt").stat().st_size > 0

    # Unchanged recipe: a re-run would skip every stage.
    _, again = plan(RECIPE, out, None, None, REDUCED)
    assert {p.state for p in again} == {"done"}
