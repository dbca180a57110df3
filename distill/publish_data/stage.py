"""`distill publish-data`: the kept traces as a dataset people can load and share.

Writes OUTPUT/data/{split}-NNNNN-of-NNNNN.parquet (a `messages` column for SFT and the
provenance columns), OUTPUT/README.md (the dataset card, written from the records and the filter
report) and OUTPUT/images/completion_lengths.png; pushes it as a dataset repo when asked. The
folder is built beside OUTPUT and moved into place whole (distill.core.publishing), with the same
secret rules as model publishing: a row or file holding a token from the environment is refused, and
so is a row holding a token-shaped string unless --allow-token-shapes is given. --test-fraction
holds out round(fraction x problems) problems (at least one), drawn by a seeded hash.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from distill.core.data import iter_rows, validate_record
from distill.core.errors import InputError
from distill.core.ids import UniqueIds
from distill.core.jsonl import read_json
from distill.core.paths import Out, check_io, named_paths
from distill.core.publishing import MARK, published_by, push, staged
from distill.core.records import Trace
from distill.core.secrets import redact
from distill.core.shards import ShardWriter
from distill.core.stage import Command, Stage


class PublishDataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str = Field(description="Kept traces (the filter's output: JSONL, JSON, Parquet or a saved dataset).")
    output: Path = Field(description="Folder to write the dataset into.", json_schema_extra={"flags": ["-o"]})
    filter_report: Path | None = Field(
        default=None, description="The filter report (JSON) of INPUT, for the card's figures (default: report.json "
        "beside INPUT when it reports INPUT as its output).")
    push: str | None = Field(default=None, description="Upload to this Hugging Face dataset repo id (token from HF_TOKEN or `hf auth login`).")
    private: bool = Field(default=False, description="Create the pushed repo as private.")
    license: str | None = Field(default=None, description="License id for the card when the prompts' dataset card names none (else 'unknown').")
    dataset_name: str | None = Field(default=None, description="Title of the card (default: repo id or folder name).", json_schema_extra={"flags": ["--name"]})
    test_fraction: float = Field(default=0.0, ge=0, lt=1, description="Share of problems held out as a 'test' split (all samples of a problem stay together).")
    seed: int = Field(default=0, description="Seed of the train/test assignment.")
    allow_token_shapes: bool = Field(default=False, description="Publish rows holding token-shaped strings (hf_..., sk-..., "
                                     "Bearer ..., private key blocks) you know are no secrets; a token from the environment is refused always.")
    max_shard_size: str = Field(default="500MB", description="Largest Parquet shard (before compression).")
    overwrite: bool = Field(default=False, description="Replace an existing dataset folder written by publish-data.")

    @field_validator("max_shard_size")
    @classmethod
    def _size(cls, value: str) -> str:
        shard_bytes(value)
        return value


def shard_bytes(text: str) -> int:
    from datasets.utils.py_utils import convert_file_size_to_int

    try:
        size = convert_file_size_to_int(text)
    except (ValueError, TypeError):
        raise ValueError(f"not a size: {text!r} (e.g. 500MB)") from None
    if size <= 0:
        raise ValueError("must be positive")
    return size


def check(config: PublishDataConfig) -> None:
    """Cheap checks before anything is read: where the folder goes, and what it would replace."""
    output = config.output
    check_io([Out(output, "output", kind="dir", replace=True)], named_paths(config, skip=("output",)))
    if output.exists() and any(output.iterdir()):
        if not config.overwrite:
            raise InputError("output exists and is not empty (use --overwrite to replace it)", where=str(output))
        if not published_by(output, "publish-data"):  # --overwrite replaces what publish-data wrote, never anything else
            raise InputError(f"holds files that are not a dataset written by publish-data (no {MARK}); "
                             "publish-data replaces only its own folders", where=str(output), field="output")


def run(config: PublishDataConfig, api=None) -> dict[str, Any]:
    """Write the dataset folder (and push it if asked); returns a summary.

    `api` is the huggingface_hub client for --push (default: a new `HfApi()`).
    """
    from rich.console import Console
    from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from distill.publish_data.card import HISTOGRAM, plot_lengths, render_card
    from distill.publish_data.rows import DataStats, SecretCheck, row_of, schema

    check(config)
    report, report_path = _filter_report(config)
    stats, secrets, ids, arrow = DataStats(), SecretCheck(config.allow_token_shapes), UniqueIds(), schema()
    test, held_out = _test_split(config)
    max_bytes = shard_bytes(config.max_shard_size)
    columns = [SpinnerColumn(), TextColumn("publish-data"), MofNCompleteColumn(), TimeElapsedColumn()]
    with staged(config.output, "publish-data") as staging:
        with Progress(*columns, transient=True, console=Console(stderr=True)) as progress, contextlib.ExitStack() as shards:
            bar = progress.add_task("rows", total=None)
            writers: dict[str, ShardWriter] = {}  # split -> its shards, opened when its first row comes
            for where, raw in iter_rows(config.input):
                trace = validate_record(Trace, raw, where)
                ids.see(trace.id, where)
                secrets(trace, where)
                row = row_of(trace, where, stats.language(trace))
                split = "test" if trace.problem_id in test else "train"
                if split not in writers:
                    writers[split] = shards.enter_context(ShardWriter(staging / "data", split, arrow, max_bytes))
                writers[split].write(row)
                stats.add(trace, row, split)
                progress.advance(bar)
        stats.arrow_bytes = {split: writer.nbytes for split, writer in writers.items()}
        stats.parquet_bytes = sum(path.stat().st_size for writer in writers.values() for path in writer.paths)
        if report is not None and report.get("kept") not in (None, stats.total):
            raise InputError(f"the filter report counts {report['kept']:,} kept samples, the input has {stats.total:,}; "
                             "give the report of this file", where=str(report_path), field="filter_report")
        license_, note = _license(config, stats.sources)
        histogram = plot_lengths(stats, staging / HISTOGRAM)
        name = config.dataset_name or config.push or config.output.name
        card = render_card(name, config.push, config.output.name, stats, report, license_, note, histogram)
        (staging / "README.md").write_text(redact(card), encoding="utf-8")
    summary: dict[str, Any] = {
        "output": str(config.output), "rows": {split: stats.rows[split] for split in sorted(stats.rows, key=lambda s: s != "train")}, "problems": {s: len(p) for s, p in stats.problems.items()},
        "languages": dict(stats.languages), "license": license_, "test_split": held_out,
        "files": sorted(p.relative_to(config.output).as_posix() for p in config.output.rglob("*") if p.is_file()),
    }
    if config.push:
        summary["url"] = push(config.output, config.push, config.private, api=api, repo_type="dataset")
    return summary


def summary_line(summary: dict[str, Any]) -> str:
    rows = ", ".join(f"{split} {n:,}" for split, n in summary["rows"].items())
    split = summary.get("test_split") or {}
    held = (f"; test split {split['test_problems']} of {split['problems']} problems ({split['realised']:.0%}, requested "
            f"{split['requested']:.0%})") if split.get("requested") else ""
    return (f"published {rows} rows to {summary['output']} ({len(summary['files'])} files, license {summary['license']}){held}"
            + (f"; pushed to {summary['url']}" if summary.get("url") else ""))


def _test_split(config: PublishDataConfig) -> tuple[set[str], dict[str, Any]]:
    """The problems of the test split, drawn from all of INPUT's problems (a first pass), and its report."""
    from distill.publish_data.rows import split_report, test_problems

    if config.test_fraction <= 0:
        return set(), {}
    problems = list(dict.fromkeys(validate_record(Trace, raw, where).problem_id for where, raw in iter_rows(config.input)))
    test = test_problems(problems, config.test_fraction, config.seed)
    if len(test) >= len(problems):
        raise InputError(f"{len(problems)} problem(s): --test-fraction {config.test_fraction:g} would hold out every one, "
                         "leaving no train split; lower it", field="test_fraction")
    return test, split_report(test, len(problems), config.test_fraction)


def _filter_report(config: PublishDataConfig) -> tuple[dict[str, Any] | None, Path | None]:
    """The report given, else report.json beside INPUT when it names INPUT as the filter's output."""
    path = config.filter_report
    if path is None:
        beside = Path(config.input).parent / "report.json"
        if not beside.is_file():
            return None, None
        report = read_json(beside)
        output = report.get("output") if isinstance(report, dict) else None
        same = isinstance(output, str) and Path(output).exists() and Path(output).resolve() == Path(config.input).resolve()
        return (report, beside) if same else (None, None)
    report = read_json(path)
    if not isinstance(report, dict) or "kept" not in report:
        raise InputError("not a filter report (no 'kept' count)", where=str(path), field="filter_report")
    return report, path


# ---------------------------------------------------------------------------- license


def _license(config: PublishDataConfig, sources: set[str]) -> tuple[str, str]:
    """(license id, where it comes from): the prompts' dataset card where one names it, else --license."""
    found = {}
    for source in sorted(sources):
        license_ = _card_license(source)
        if license_:
            found[license_] = source
    if len(found) == 1:
        license_, source = next(iter(found.items()))
        return license_, f"from the dataset card of the prompts' source ({Path(source).name if not source.startswith('hf:') else source})"
    if len(found) > 1:
        return "other", "the prompts come from datasets with different licenses: " + ", ".join(f"{lic} ({src})" for lic, src in found.items())
    if config.license:
        return config.license, "as given by the publisher (the prompts' source names no license)"
    return "unknown", "neither the prompts' source nor the publisher named a license"


def _card_license(source: str) -> str | None:
    """The `license` of the dataset card of a prompts source: a hub id (the cached card only: no download
    here), a dataset folder (README.md or dataset_info.json), or a data file inside a hub snapshot."""
    from huggingface_hub import metadata_load, try_to_load_from_cache

    from distill.core.hub import is_hub_id

    name = source.removeprefix("hf://").removeprefix("hf:")
    cards: list[Path] = []
    path = Path(source)
    if source.startswith("hf:") or is_hub_id(source):
        cached = try_to_load_from_cache(name, "README.md", repo_type="dataset")
        cards = [Path(cached)] if isinstance(cached, str) else []
    elif path.is_dir():
        cards = [path / "README.md", path / "dataset_info.json"]
    elif path.is_file():  # data/train.parquet of a snapshot: the card is one or two folders up
        cards = [path.parent / "README.md", path.parent.parent / "README.md"]
    for card in cards:
        try:
            if card.name == "dataset_info.json" and card.is_file():
                value = json.loads(card.read_text(encoding="utf-8")).get("license")
            else:
                value = (metadata_load(card) or {}).get("license") if card.is_file() else None
        except Exception:  # an unreadable or malformed card names no license
            continue
        if isinstance(value, list):
            value = value[0] if len(value) == 1 else None
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


STAGES = (
    Stage(
        name="publish-data", section="publish_data", config=PublishDataConfig, run=run, check=check,
        reads={"input": "kept", "filter_report": "filter_report"},
        writes={"output": "dataset"}, produces={"dataset": "dataset"},
        in_run={"overwrite": True},  # the pipeline owns RUN_DIR/publish-data: a re-run replaces it
        command=Command("Publish kept traces as a dataset: Parquet shards with `messages` and a card written from the run; optionally push.",
                        ("input",), lambda summary, config: print(summary_line(summary))),
    ),
)
