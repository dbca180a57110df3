"""The quickstart's result: one table (Markdown + terminal) and one PNG chart, with honest verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill.core.r1_format import split_completion
from distill.core.records import Trace
from distill.filters.config import FilterConfig
from distill.filters.rules.language import LanguageOptions


def mixing_rate(samples: list[Trace], options: LanguageOptions) -> float:
    """Share of samples the filter's language rule rejects (the same definition the filter uses)."""
    from distill.filters.rules.language import check_language

    if not samples:
        return 0.0
    config = FilterConfig(input="-", output="-", language=options)
    mixed = sum(not check_language(t, split_completion(t.completion), config).passed for t in samples)
    return mixed / len(samples)


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """Plain sentences on what the table shows, including when filtering did not help."""
    by = {r["model"]: r for r in rows}
    base, filtered = by.get("student before training"), by.get("student, filtered traces")
    unfiltered = by.get("student, unfiltered traces")
    lines = []
    if base and filtered:
        lift = filtered["accuracy"] - base["accuracy"]
        verb = "lifted" if lift > 0 else "did NOT lift"
        lines.append(f"Distillation {verb} the student: {_pct(base['accuracy'])} before training, "
                     f"{_pct(filtered['accuracy'])} after ({'+' if lift >= 0 else ''}{100 * lift:.1f} points).")
    if filtered and unfiltered:
        diff = filtered["accuracy"] - unfiltered["accuracy"]
        noise = 2 * (filtered["accuracy_stderr"] ** 2 + unfiltered["accuracy_stderr"] ** 2) ** 0.5
        if abs(diff) <= noise:
            lines.append(f"Filtering did not measurably change accuracy ({_pct(filtered['accuracy'])} filtered vs "
                         f"{_pct(unfiltered['accuracy'])} unfiltered; the difference is within noise, ±{100 * noise:.1f}).")
        elif diff > 0:
            lines.append(f"Filtering raised accuracy: {_pct(filtered['accuracy'])} vs {_pct(unfiltered['accuracy'])} "
                         f"on the same number of traces.")
        else:
            lines.append(f"Filtering LOWERED accuracy: {_pct(filtered['accuracy'])} vs {_pct(unfiltered['accuracy'])}.")
        better = filtered["mixing"] < unfiltered["mixing"]
        lines.append(f"Language mixing: {_pct(filtered['mixing'])} of the filtered student's answers vs "
                     f"{_pct(unfiltered['mixing'])} of the unfiltered student's"
                     f"{'' if better else ' (filtering did NOT reduce mixing)'}.")
    return lines


def quantization_verdicts(rows: list[dict[str, Any]], reference: str = "bf16") -> list[str]:
    """What each quantization costs against the reference file: accuracy (beyond noise or not) and speed."""
    by = {r["model"]: r for r in rows}
    ref = by.get(reference)
    lines = []
    for r in rows:
        if ref is None or r is ref:
            continue
        diff = r["accuracy"] - ref["accuracy"]
        noise = 2 * (r["accuracy_stderr"] ** 2 + ref["accuracy_stderr"] ** 2) ** 0.5
        cost = "within noise" if abs(diff) <= noise else "beyond noise"
        speed = f"; {r['tokens_per_s'] / ref['tokens_per_s']:.2f}x the tokens/s" if r.get("tokens_per_s") and ref.get("tokens_per_s") else ""
        size = f", {r['size_mb'] / ref['size_mb']:.0%} of the file size" if r.get("size_mb") and ref.get("size_mb") else ""
        lines.append(f"{r['model']}: {_pct(r['accuracy'])} vs {_pct(ref['accuracy'])} for {reference} "
                     f"({'+' if diff >= 0 else ''}{100 * diff:.1f} points, {cost}: ±{100 * noise:.1f}){speed}{size}.")
    return lines


def _columns(rows: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    """(header, Markdown alignment, cell text) of the table; speed and size only where rows carry them."""
    columns = [
        ("model", "---", lambda r: r["model"]),
        ("held-out problems", "---:", lambda r: str(r["problems"])),
        ("accuracy (pass@1)", "---:", lambda r: f"{_pct(r['accuracy'])} ± {100 * r['accuracy_stderr']:.1f}"),
        ("mixes languages", "---:", lambda r: _pct(r["mixing"])),
        ("no answer", "---:", lambda r: _pct(r["no_answer"])),
    ]
    if any(r.get("teacher_tokens") for r in rows):  # what each student cost in teacher tokens (beyond-SFT recipes)
        columns.append(("teacher tokens (prompt + completion)", "---:", lambda r: _tokens(r.get("teacher_tokens"))))
    if any(r.get("training_tokens") for r in rows):  # what each student was trained on, and how long it answers
        columns.append(("training samples", "---:", lambda r: f"{r['training_samples']:,}"))
        columns.append(("training tokens", "---:", lambda r: f"{r['training_tokens']:,}"))
        columns.append(("mean answer tokens", "---:", lambda r: f"{r['mean_tokens']:.1f}" if r.get("mean_tokens") else "-"))
    if any(r.get("tokens_per_s") for r in rows) and any(r.get("size_mb") for r in rows):
        columns.append(("tokens/s", "---:", lambda r: f"{r['tokens_per_s']:.0f}" if r.get("tokens_per_s") else "-"))
        columns.append(("file size", "---:", lambda r: f"{r['size_mb']:.1f} MiB" if r.get("size_mb") else "-"))
    return columns


def write_report(rows: list[dict[str, Any]], out: Path, filter_report: dict[str, Any] | None,
                 title: str = "distill quickstart: tiny teacher -> smaller student", extra: list[str] = ()) -> dict[str, Any]:
    lines = verdicts(rows) + quantization_verdicts(rows) + list(extra)
    columns = _columns(rows)
    table = ["| " + " | ".join(c[0] for c in columns) + " |", "|" + "|".join(c[1] for c in columns) + "|"]
    for r in rows:
        table.append("| " + " | ".join(c[2](r) for c in columns) + " |")
    notes = []
    if any(r["model"] == "student before training" for r in rows):
        notes.append("The student before training has random weights: it writes random tokens, so its accuracy is "
                     "chance and its language 'mixing' is noise.")
    if filter_report:
        kept = filter_report.get("kept")
        total = filter_report.get("records_in")
        if kept is not None and total is not None:
            notes.append(f"Both students were trained on {kept} traces: the {kept} the filter kept out of {total}, "
                         f"or {kept} drawn at random from all {total}.")
        rejected = filter_report.get("rejected_by") or {}
        if rejected:
            notes.append("The filter rejected: " + ", ".join(f"{n} by {rule}" for rule, n in rejected.items()) + ".")
    markdown = "\n".join(table) + "\n\n" + "\n".join(f"- {line}" for line in notes + lines) + "\n"
    (out / "table.md").write_text(markdown, encoding="utf-8")
    chart(rows, out / "chart.png", title)
    result = {"rows": rows, "verdicts": lines, "notes": notes, "table": str(out / "table.md"), "chart": str(out / "chart.png")}
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    show(rows, notes + lines, columns, title)
    return result


def chart(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["model"].replace(", ", ",\n") for r in rows]
    colours = ["#4c72b0", "#999999", "#55a868", "#c44e52"][: len(rows)] + ["#8172b2"] * max(0, len(rows) - 4)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, heading in ((axes[0], "accuracy", "Accuracy on held-out problems"), (axes[1], "mixing", "Answers that mix languages")):
        values = [100 * r[key] for r in rows]
        errors = [100 * r["accuracy_stderr"] for r in rows] if key == "accuracy" else None
        bars = ax.bar(range(len(rows)), values, yerr=errors, color=colours, capsize=4)
        ax.bar_label(bars, labels=[f"{v:.0f}%" for v in values], padding=2)
        ax.set_xticks(range(len(rows)), labels, fontsize=8)
        ax.set_ylim(0, 105)
        ax.set_ylabel("%")
        ax.set_title(heading)
    figure.suptitle(title)  # the report's title (the loop above must not shadow it)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def show(rows: list[dict[str, Any]], lines: list[str], columns: list[tuple[str, str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{title}: held-out arithmetic problems")
    for header, align, _ in columns:
        table.add_column(header, justify="right" if align.endswith(":") else "left")
    for r in rows:
        table.add_row(*(cell(r) for _, _, cell in columns))
    console = Console()
    console.print(table)
    for line in lines:
        console.print(f"- {line}")


def _tokens(tokens: dict[str, int] | None) -> str:
    return f"{tokens['prompt']:,} + {tokens['completion']:,}" if tokens else "-"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"
