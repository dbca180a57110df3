"""The DeepSeek-R1 paper's table of distilled models, for our students, with the published rows beside them.

One row per model: AIME 2024 pass@1 and cons@64, MATH-500 pass@1, GPQA Diamond pass@1 and
LiveCodeBench pass@1, each cell with its standard error over problems. A model trained from one
of the six bases DeepSeek distilled R1 into (a `students/presets.py` preset or its base id, or
a released R1-Distill model itself) gets the published row of the matching R1-Distill model
beside it. A second table gives, per benchmark, the completion lengths and the shares of
samples cut at max_tokens, whose reasoning never closed, and without a final answer.

Codeforces (the paper's last column) is not reproduced: its rating comes from submitting
solutions to live contests, ranking them in the contest standings and the Codeforces judge's
hidden tests, none of which exist offline.

`eval` writes paper_table.md into its folder when its benchmarks fill two or more of the
columns; `distill eval-table FOLDER...` combines several models' eval folders into one table
(Markdown) and one chart (PNG).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from distill.core.errors import InputError
from distill.core.paths import atomic_path

FILE = "paper_table.md"

# (key, figure, header). The key is matched to a benchmark by kind (choice, code) or by name.
COLUMNS = (
    ("aime24", "pass@1", "AIME 2024 pass@1"),
    ("aime24", "cons@64", "AIME 2024 cons@64"),
    ("math500", "pass@1", "MATH-500 pass@1"),
    ("gpqa", "pass@1", "GPQA Diamond pass@1"),
    ("lcb", "pass@1", "LiveCodeBench pass@1"),
)

# DeepSeek-AI, "DeepSeek-R1: Incentivizing Reasoning Capability in LLMs via Reinforcement Learning"
# (arXiv:2501.12948), Table 5 "Comparison of DeepSeek-R1 distilled models and other comparable models
# on reasoning-related benchmarks" (the same table is in the deepseek-ai/DeepSeek-R1 README, "Distilled
# Model Evaluation"). Percent; in COLUMNS order: AIME 2024 pass@1, cons@64, MATH-500, GPQA Diamond,
# LiveCodeBench (2024-08..2025-01). Their Codeforces ratings (954, 1189, 1481, 1691, 1205, 1633) are
# not a column here (module docstring).
PUBLISHED: dict[str, tuple[float, float, float, float, float]] = {
    "DeepSeek-R1-Distill-Qwen-1.5B": (28.9, 52.7, 83.9, 33.8, 16.9),
    "DeepSeek-R1-Distill-Qwen-7B": (55.5, 83.3, 92.8, 49.1, 37.6),
    "DeepSeek-R1-Distill-Qwen-14B": (69.7, 80.0, 93.9, 59.1, 53.1),
    "DeepSeek-R1-Distill-Qwen-32B": (72.6, 83.3, 94.3, 62.1, 57.2),
    "DeepSeek-R1-Distill-Llama-8B": (50.4, 80.0, 89.1, 49.0, 39.6),
    "DeepSeek-R1-Distill-Llama-70B": (70.0, 86.7, 94.5, 65.2, 57.5),
}
# The base each was distilled from (the paper, section 2.4; students/presets.py holds the same ids).
DISTILLED_FROM = {
    "Qwen/Qwen2.5-Math-1.5B": "DeepSeek-R1-Distill-Qwen-1.5B",
    "Qwen/Qwen2.5-Math-7B": "DeepSeek-R1-Distill-Qwen-7B",
    "Qwen/Qwen2.5-14B": "DeepSeek-R1-Distill-Qwen-14B",
    "Qwen/Qwen2.5-32B": "DeepSeek-R1-Distill-Qwen-32B",
    "meta-llama/Llama-3.1-8B": "DeepSeek-R1-Distill-Llama-8B",
    "meta-llama/Llama-3.3-70B-Instruct": "DeepSeek-R1-Distill-Llama-70B",
}


# ---------------------------------------------------------------------------- which row, which column


def published_model(model: str, student: str | None = None) -> str | None:
    """The R1-Distill model whose published row belongs beside `model`, or None.

    Tried in order: `student` (a preset name, a base id, or an R1-Distill name), the model's own
    name, the `student`, `model_id` and `base_model` that training wrote to train.json (in the
    model folder or the run folder above it), and the `base_model` of a published model card."""
    from students.presets import STUDENTS

    candidates = [student, model]
    folder = Path(model)
    for manifest in (folder / "train.json", folder.parent / "train.json"):
        try:
            data = json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else {}
        except (OSError, ValueError):
            data = {}
        if isinstance(data, dict):
            candidates += [data.get("student"), data.get("model_id"), data.get("base_model")]
    try:  # `distill publish` (and the hub) name the base in the card's front matter
        card = (folder / "README.md").read_text(encoding="utf-8") if (folder / "README.md").is_file() else ""
    except (OSError, UnicodeDecodeError):
        card = ""
    front = card.split("\n---", 1)[0] if card.startswith("---") else ""
    candidates += re.findall(r"^base_model:\s*(\S+)\s*$", front, re.M)
    for candidate in filter(None, map(str, filter(None, candidates))):
        text = candidate.rstrip("/").lower()
        for name in PUBLISHED:
            if name.lower() in text:
                return name
        preset = STUDENTS.get(candidate)
        base = preset.model_id if preset else candidate
        for base_id, name in DISTILLED_FROM.items():
            if base.rstrip("/").lower().endswith(base_id.lower()):
                return name
    return None


def column_key(name: str, figures: dict[str, Any]) -> str | None:
    kind = figures.get("kind", "answer")
    if kind in ("choice", "code"):
        return {"choice": "gpqa", "code": "lcb"}[kind]
    plain = re.sub(r"[^a-z0-9]", "", name.lower())
    return {"aime24": "aime24", "aime2024": "aime24", "math500": "math500"}.get(plain)


def cells(summary: dict[str, Any]) -> list[tuple[float, float, int] | None]:
    """(value, standard error, k) in percent for each column, None where the run has no such benchmark."""
    by_key = {column_key(name, b): b for name, b in summary["benchmarks"].items()}
    row: list[tuple[float, float, int] | None] = []
    for key, figure, _ in COLUMNS:
        b = by_key.get(key)
        if b is None:
            row.append(None)
            continue
        k = b.get("k", summary["k"])
        name = f"cons@{k}" if figure.startswith("cons@") else figure
        row.append((100 * b[name], 100 * b.get(f"{name}_stderr", 0.0), k))
    return row


# ---------------------------------------------------------------------------- tables


def _cell(cell: tuple[float, float, int] | None, cons: bool) -> str:
    if cell is None:
        return "-"
    value, error, k = cell
    return f"{value:.1f} ± {error:.1f}" + (f" (k={k})" if cons and k != 64 else "")


def markdown(summaries: list[dict[str, Any]]) -> str:
    """The paper's layout for one or more eval summaries, each followed by its published row."""
    head = ["model", *(header for _, _, header in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    shown: set[str] = set()
    for summary in summaries:
        row = cells(summary)
        lines.append("| " + " | ".join([_label(summary), *(_cell(c, f.startswith("cons@")) for c, (_, f, _) in zip(row, COLUMNS, strict=True))]) + " |")
        published = summary.get("published")
        if published in PUBLISHED and published not in shown:
            shown.add(published)
            lines.append("| " + " | ".join([f"{published} (published)", *(f"{v:.1f}" for v in PUBLISHED[published])]) + " |")
    lines += ["", "| model | benchmark | mean tokens | p90 tokens | truncated | reasoning not closed | no final answer |", "|" + "---|" * 7]
    for summary in summaries:
        for name, b in summary["benchmarks"].items():
            lines.append(f"| {_label(summary)} | {name} | {_tokens(b.get('mean_tokens'))} | {_tokens(b.get('p90_tokens'))} | "
                         f"{_share(b.get('truncated'))} | {_share(b.get('unclosed'))} | {_share(b.get('no_answer'))} |")
    notes = sorted({f"{name}: options shuffled with seed {b['shuffle_seed']}" for s in summaries for name, b in s["benchmarks"].items()
                    if "shuffle_seed" in b} | {f"{name}: contests {b.get('since') or '…'} to {b.get('until') or '…'}"
                                               for s in summaries for name, b in s["benchmarks"].items() if b.get("kind") == "code"})
    tail = ["", "Cells: pass@1 (or cons@k) in percent ± standard error over problems; published rows: DeepSeek-R1 paper, Table 5. "
            "Codeforces is not reproduced (it needs live contest standings and the judge's hidden tests)."]
    return "\n".join(lines + tail + ([""] + [f"- {note}" for note in notes] if notes else []))


def _label(summary: dict[str, Any]) -> str:
    return Path(str(summary["model"]).rstrip("/")).name


def _tokens(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def fills_table(summary: dict[str, Any]) -> bool:
    """Two or more of the paper's benchmarks: worth the paper's layout."""
    return len({column_key(name, b) for name, b in summary["benchmarks"].items()} - {None}) >= 2


def write_for_run(summary: dict[str, Any], model: str, student: str | None, out: Path) -> None:
    """Record the matching published model in the summary; write paper_table.md when the run fills the table."""
    summary["published"] = published_model(model, student)
    if fills_table(summary):
        with atomic_path(out / FILE) as tmp:
            tmp.write_text(markdown([summary]) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------- several models


def read_summary(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("no summary.json (not an eval folder)", where=str(folder)) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable summary.json ({exc})", where=str(path)) from None
    if not isinstance(summary, dict) or not isinstance(summary.get("benchmarks"), dict) or "model" not in summary:
        raise InputError("not an eval summary (no model or benchmarks)", where=str(path))
    return summary


def combine(folders: list[Path], output: Path) -> tuple[Path, Path]:
    """One table (OUTPUT.md) and one chart (OUTPUT.png) of several eval folders."""
    summaries = [read_summary(folder) for folder in folders]
    stem = output.with_suffix("") if output.suffix in (".md", ".png") else output
    table, chart = stem.with_name(stem.name + ".md"), stem.with_name(stem.name + ".png")
    with atomic_path(table) as tmp:
        tmp.write_text(markdown(summaries) + "\n", encoding="utf-8")
    with atomic_path(chart) as tmp:
        plot(summaries, tmp)
    return table, chart


def plot(summaries: list[dict[str, Any]], path: Path) -> None:
    """Grouped bars per column: each model with its standard error, the published rows hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: list[tuple[str, list[float | None], list[float], bool]] = []
    published: list[str] = []
    for summary in summaries:
        row = cells(summary)
        series.append((_label(summary), [c[0] if c else None for c in row], [c[1] if c else 0.0 for c in row], False))
        if summary.get("published") in PUBLISHED and summary["published"] not in published:
            published.append(summary["published"])
    series += [(f"{name} (published)", list(PUBLISHED[name]), [0.0] * len(COLUMNS), True) for name in published]
    figure, axes = plt.subplots(figsize=(max(7, 1.6 * len(COLUMNS) + 0.4 * len(series)), 4.2))
    width = 0.8 / max(1, len(series))
    for index, (label, values, errors, hatched) in enumerate(series):
        xs = [column + (index - (len(series) - 1) / 2) * width for column in range(len(COLUMNS))]
        present = [(x, v, e) for x, v, e in zip(xs, values, errors, strict=True) if v is not None]
        if present:
            px, pv, pe = zip(*present, strict=True)
            axes.bar(px, pv, width, yerr=None if hatched else pe, capsize=2, label=label, hatch="//" if hatched else None, alpha=0.6 if hatched else 1.0)
    axes.set_xticks(range(len(COLUMNS)), [header.replace(" pass@1", "\npass@1").replace(" cons", "\ncons") for _, _, header in COLUMNS])
    axes.set_ylabel("percent")
    axes.set_ylim(0, 100)
    axes.set_title("R1 paper table: our models and the published R1-Distill rows")
    axes.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=120)
    plt.close(figure)
