"""The dataset card (README.md) `distill publish-data` writes, from what the run knows: the
teacher and its sampling (every record carries them), what each filter rule removed and which
benchmarks the problems were checked against (the filter report), and the figures of the rows
themselves (languages, domains, lengths, with a histogram under images/).

The front matter's `configs:` names the data files, so `load_dataset` reads exactly the Parquet
shards and never takes the picture (or anything else in the folder) for data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from distill.core.hub import is_hub_id
from distill.publish_data.rows import COLUMNS, DataStats

HISTOGRAM = "images/completion_lengths.png"
_ESCAPE_PIPE = {ord("|"): "\\|"}


def markdown_table(header: tuple[str, ...], rows: list[tuple[Any, ...]], numbers: bool = True) -> str:
    """A markdown table; `numbers`: every column but the first is right-aligned."""
    align = ["---", *(["---:" if numbers else "---"] * (len(header) - 1))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(cell).translate(_ESCAPE_PIPE) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def size_category(rows: int) -> str:
    """The hub's size bucket for `rows`."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
    return next((label for bound, label in bounds if rows < bound), "n>1T" if rows >= 10**12 else "1B<n<10B")


def _percentile(ordered: list[int], q: float) -> int:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def render_card(name: str, repo_id: str | None, folder: str, stats: DataStats, report: dict[str, Any] | None,
                license_: str, license_note: str, histogram: bool) -> str:
    """README.md: the hub's front matter (with `configs:` naming the shards), then the sections."""
    splits = sorted(stats.rows, key=lambda split: split != "train")  # train first
    meta: dict[str, Any] = {
        "license": license_,
        "pretty_name": name,
        "language": [lang for lang, _ in stats.languages.most_common()],
        "task_categories": ["text-generation"],
        "tags": ["distill", "reasoning", "chain-of-thought", "synthetic", "sft"],
        "size_categories": [size_category(stats.total)],
    }
    hub_sources = sorted(s.removeprefix("hf://").removeprefix("hf:") for s in stats.sources
                         if s.startswith("hf:") or is_hub_id(s))
    if hub_sources:
        meta["source_datasets"] = hub_sources
    meta["configs"] = [{"config_name": "default",
                        "data_files": [{"split": split, "path": f"data/{split}-*.parquet"} for split in splits]}]
    meta["dataset_info"] = _dataset_info(stats, splits)
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)

    problems = len(set().union(*stats.problems.values()))
    teachers = [json.loads(key) for key in stats.teachers]
    by = ""
    if len(teachers) == 1 and teachers[0].get("model"):
        model, local = teachers[0]["model"], teachers[0].get("backend") in ("vllm", "llamacpp") and not is_hub_id(teachers[0]["model"])
        by = f" sampled from `{model}`" + (" (a local model)" if local else "")
    parts = [f"---\n{front}---\n", f"# {name}\n",
             f"{stats.total:,} chain-of-thought reasoning traces for {problems:,} problems{by}, kept by the "
             "rejection sampling of distill (R1 form: `<think>` reasoning `</think>` answer). "
             "Each row is a conversation ready for supervised fine-tuning, with its provenance.\n",
             _loading(repo_id, folder, splits)]
    parts.append("## Columns\n\n" + markdown_table(("column", "what it holds"), [(f"`{c}`", text) for c, text in COLUMNS], numbers=False) + "\n")
    split_rows = [(split, f"{stats.rows[split]:,}", f"{len(stats.problems[split]):,}") for split in splits]
    parts.append("## Splits\n\n" + markdown_table(("split", "rows", "problems"), split_rows)
                 + ("\n\nThe test split holds whole problems (every kept sample of a problem is in one split)." if len(splits) > 1 else "")
                 + "\n")
    parts.append(_teacher_section(stats))
    parts.append(_filter_section(report))
    parts.append(_decontamination_section(report))
    parts.append(_languages_section(stats))
    parts.append(_lengths_section(stats, histogram))
    parts.append(f"## License\n\n`{license_}`: {license_note}. The traces were written by the teacher model: its "
                 "license and terms of use also apply to its outputs.\n")
    return "\n".join(parts)


def _dataset_info(stats: DataStats, splits: list[str]) -> dict[str, Any]:
    """The features and split sizes, as `push_to_hub` writes them. `datasets` caches a local folder by
    its name and this block, and checks the row counts against it: a re-published folder with other
    rows is then read afresh instead of from the cache of the earlier one."""
    from datasets import DatasetInfo, Features, SplitDict, SplitInfo

    from distill.publish_data.rows import schema

    sizes = SplitDict()
    for split in splits:
        sizes.add(SplitInfo(name=split, num_bytes=stats.arrow_bytes.get(split, 0), num_examples=stats.rows[split]))
    info = DatasetInfo(features=Features.from_arrow_schema(schema()), splits=sizes, download_size=stats.parquet_bytes,
                       dataset_size=sum(stats.arrow_bytes.values()))
    return info._to_yaml_dict()


def _loading(repo_id: str | None, folder: str, splits: list[str]) -> str:
    repo = repo_id or "OWNER/NAME"
    where = "" if repo_id else f'  # or load_dataset("{folder}"): this folder'
    return ("## Load it\n\n```python\nfrom datasets import load_dataset\n\n"
            f'data = load_dataset("{repo}", split="{splits[0]}"){where}\nprint(data[0]["messages"])\n```\n\n'
            f"Train a student on it with distill (the `messages` column is read as is):\n\n"
            f"```bash\ndistill train --student qwen-7b --data hf:{repo} -o runs/student{'   # or --data ' + folder if not repo_id else ''}\n```\n")


def _teacher_section(stats: DataStats) -> str:
    keys = ("model", "backend", "temperature", "top_p", "max_tokens", "seed", "think_prefill")
    rows = []
    for key, count in stats.teachers.most_common():
        teacher = json.loads(key)
        rows.append((*(f"`{teacher[k]!r}`" if k == "think_prefill" and teacher.get(k) else teacher.get(k, "–") for k in keys),
                     f"{count:,}"))
    if not any(json.loads(key) for key in stats.teachers):
        return "## Teacher and sampling\n\nNot recorded in the records (they carry no `teacher` field).\n"
    return ("## Teacher and sampling\n\nAs each sample records it (distill generate writes the model and sampling "
            "into every record):\n\n" + markdown_table((*keys, "rows"), rows) + "\n")


def _filter_section(report: dict[str, Any] | None) -> str:
    if report is None:
        return "## Filtering\n\nNo filter report was given: the rules and their counts are unknown.\n"
    records, kept = report.get("records_in", 0), report.get("kept", 0)
    rows = [(f"`{rule}`", f"{n:,}", f"{report.get('failed_by_rule', {}).get(rule, 0):,}")
            for rule, n in (report.get("rejected_by") or {}).items()]
    share = f" ({100 * kept / records:.1f}%)" if records else ""
    return (f"## Filtering\n\n{kept:,} of {records:,} teacher samples kept{share}. Rules ran in this order; a "
            "rejected sample is charged to the first rule that rejected it (\"rejected\"); \"failed\" counts the samples "
            "each rule failed (more than \"rejected\" only where the filter evaluated every rule, `--all-verdicts`).\n\n"
            + markdown_table(("rule", "rejected", "failed"), rows) + "\n")


def _decontamination_section(report: dict[str, Any] | None) -> str:
    title = "## Decontamination\n\n"
    if report is None:
        return title + "Unknown (no filter report).\n"
    if "decontaminate" not in (report.get("rules") or []):
        return title + "None: the `decontaminate` rule did not run, so the problems were not checked against benchmarks.\n"
    settings = report.get("decontamination")
    if not settings:
        return title + "The `decontaminate` rule ran; its benchmarks are not recorded in this (older) filter report.\n"
    names = [Path(str(path)).name for path in settings.get("benchmarks") or []]
    if not names:
        return title + "The `decontaminate` rule ran without benchmarks: nothing was checked.\n"
    removed = (report.get("rejected_by") or {}).get("decontaminate", 0)
    return (title + f"Samples whose problem shares a word {settings.get('ngram')}-gram with a problem of "
            + ", ".join(f"`{n}`" for n in names) + f" were removed ({removed:,}).\n")


def _languages_section(stats: DataStats) -> str:
    rows = [(lang, f"{n:,}", f"{100 * n / stats.total:.1f}%") for lang, n in stats.languages.most_common()]
    domains = ", ".join(f"{d} {100 * n / stats.total:.1f}%" for d, n in stats.domains.most_common())
    return ("## Languages\n\nThe prompt's language, per row (the language rule kept only reasoning in that language):\n\n"
            + markdown_table(("language", "rows", "share"), rows) + f"\n\nDomains: {domains}.\n")


def _lengths_section(stats: DataStats, histogram: bool) -> str:
    unit, values = stats.lengths()
    ordered = sorted(values)
    if not ordered:
        return ""
    row = (f"{sum(ordered) / len(ordered):,.1f}", *(f"{_percentile(ordered, q):,}" for q in (0.1, 0.5, 0.9)), f"{ordered[-1]:,}")
    picture = f"\n\n![completion lengths]({HISTOGRAM})" if histogram else ""
    return (f"## Lengths\n\nCompletion length in {unit} (reasoning and answer):\n\n"
            + markdown_table(("mean", "p10", "p50", "p90", "max"), [row]) + picture + "\n")


def plot_lengths(stats: DataStats, path: Path) -> bool:
    """A histogram of completion lengths as a PNG; False when there is nothing to plot."""
    unit, values = stats.lengths()
    if not values:
        return False
    import matplotlib

    matplotlib.use("Agg")  # no display where data is published
    import matplotlib.pyplot as plt

    ordered = sorted(values)
    figure, axis = plt.subplots(figsize=(6, 3.5), dpi=100)
    axis.hist(ordered, bins=min(50, max(10, len(set(ordered)))), color="#4c72b0")
    for q, style in ((0.5, "-"), (0.9, "--")):
        axis.axvline(_percentile(ordered, q), color="black", linestyle=style, linewidth=1, label=f"p{int(q * 100)}")
    axis.set_xlabel(f"completion length ({unit})")
    axis.set_ylabel("samples")
    axis.set_title(f"{len(ordered):,} kept samples")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, metadata={"Software": "distill"})
    plt.close(figure)
    return True
