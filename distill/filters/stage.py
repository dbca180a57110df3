"""The `filter` stage: stream raw records to worker processes in chunks; write results in input order.

The parent does as little as possible, so that throughput scales with `workers`: it reads raw
JSONL lines (rows, for other formats), ships them in chunks, and for each record merges the
`dedup` verdict (the one rule that needs the records before it) into the verdicts the worker
computed, then writes the line the worker already serialised. Workers parse, run every other
rule, and are killable and memory-capped (see distill.core.workers: a hung verification costs one
record, never the rest of its chunk). Output order and bytes are the same whatever the worker
count. Kept and rejected files are written atomically.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

from distill.core import logprobs
from distill.core.data import RecordWriter, atomic_path, input_kind, iter_rows
from distill.core.errors import InputError, Interrupted, StageError
from distill.core.ids import UniqueIds
from distill.core.jsonl import read_lines
from distill.core.paths import Out, check_io, named_paths, scratch_dir, write_text
from distill.core.prompt_stats import PromptStats, is_correct, pass_rate, write_rows
from distill.core.stage import Command, Selects, Stage
from distill.core.trace_layout import PRESETS, trace_rows
from distill.core.workers import WorkerPool
from distill.filters import judge_requests, selection
from distill.filters.config import FilterConfig
from distill.filters.majority import tally
from distill.filters.registry import RULES, ParentRule
from distill.filters.report import LengthStats, Report, print_report
from distill.filters.selection import Selector
from distill.filters.worker import Judged, judge_chunk

PRELOAD = ("distill.core.verify", "distill.filters.worker")  # imported once in the fork server
CHUNK_RECORDS = 16  # records per chunk: large enough to amortise IPC, small enough to balance workers
CHUNK_BYTES = 1 << 20


def raw_chunks(config: FilterConfig) -> Iterator[list[tuple[str, Any]]]:
    """(location, raw JSONL line as bytes | row dict | record values) in chunks; the workers parse them.

    A public layout is mapped here: one of its rows may hold several samples (OpenR1's
    generations), and a work item must be one record, so that a hung verification costs
    that record alone. Mapping is cheap next to judging; validation stays in the workers."""
    source = config.input
    if not PRESETS[config.preset].own:
        rows: Iterator[tuple[str, Any]] = trace_rows(source, config)
    elif input_kind(source) != "jsonl":  # Parquet, JSON, datasets: rows are read here, validated there
        rows = iter_rows(source)
    else:
        rows = ((f"{source}:{line.number}", line.raw) for line in read_lines(source))
    chunk: list[tuple[str, Any]] = []
    size = 0
    seen_any = False
    for where, raw in rows:
        seen_any = True
        chunk.append((where, raw))
        size += len(raw) if isinstance(raw, bytes) else 0
        if len(chunk) >= CHUNK_RECORDS or size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk
    if not seen_any:
        raise InputError("empty file (no records)", where=source)


class Output:
    """Kept or rejected records: JSONL lines as the workers wrote them, or Parquet rows; atomic."""

    def __init__(self, path: str):
        self.path = path
        self.jsonl = not path.endswith(".parquet")

    def __enter__(self) -> Output:
        from distill.core.secrets import scrubber

        self._scrub = scrubber()
        if self.jsonl:
            self._atomic = atomic_path(self.path)
            self._handle = open(self._atomic.__enter__(), "w", encoding="utf-8")
        else:
            self._writer = RecordWriter(self.path).__enter__()
        return self

    def write(self, line: str) -> None:
        if self.jsonl:
            self._handle.write(self._scrub(line) + "\n")
        else:
            self._writer.write(json.loads(line))

    def __exit__(self, *exc_info) -> None:
        if not self.jsonl:
            self._writer.__exit__(*exc_info)
            return
        try:
            self._handle.close()  # flushes: a full disk can fail here
        except OSError:
            self._atomic.__exit__(*sys.exc_info())  # the temporary goes, the old output stays
            raise
        self._atomic.__exit__(*exc_info)


def finish(judged: Judged, config: FilterConfig, parents: dict[str, ParentRule]) -> tuple[str, dict[str, dict], str | None]:
    """Merge the parent-side verdicts in rule order, charge the first rejection: (JSON line, verdicts, rejected_by)."""
    merged: dict[str, dict[str, Any]] = {}
    rejected_by = None
    for name in config.rules:
        if name in parents:
            verdict = parents[name].check(judged.problem_id, judged.keys[name]).model_dump(mode="json", exclude_none=True)
        else:
            verdict = judged.verdicts.get(name)
        if verdict is None:  # the worker stopped at an earlier rejection
            break
        merged[name] = verdict
        if not verdict["passed"] and rejected_by is None:
            rejected_by = name
            if not config.all_verdicts:
                break
    if "judge" in judged.verdicts and "judge" not in merged:  # an audited record an earlier rule rejected
        merged["judge"] = judged.verdicts["judge"]
    # Trace's field order: ..., verdicts, rejected_by, reason, messages (as RecordWriter writes it).
    if rejected_by is None:
        for name, parent in parents.items():  # only kept records count as seen
            parent.remember(judged.problem_id, judged.keys[name])
        tail = json.dumps({"verdicts": merged}, ensure_ascii=False)[1:-1] + ', "messages": ' + (judged.messages or "[]")
    else:
        tail = json.dumps({"verdicts": merged, "rejected_by": rejected_by, "reason": merged[rejected_by]["reason"]}, ensure_ascii=False)[1:-1]
    return f"{judged.head}, {tail}}}", merged, rejected_by


OUTPUT_FIELDS = ("output", "rejected", "report", "prompt_stats")


def _check_outputs(config: FilterConfig) -> None:
    """Before anything is read: output formats, and outputs that are inputs, one file, or unwritable."""
    for path in (config.output, config.rejected):
        if path is not None and not path.endswith((".jsonl", ".parquet")):
            raise InputError("output must end in .jsonl or .parquet", where=path)
    if config.prompt_stats is not None and not config.prompt_stats.endswith(".jsonl"):
        raise InputError("per-prompt statistics are JSONL: the file must end in .jsonl", where=config.prompt_stats, field="prompt_stats")
    outputs = [Out(getattr(config, name), name) for name in OUTPUT_FIELDS]
    outputs += [Out(logprobs.side_path(getattr(config, name)), name) for name in ("output", "rejected") if getattr(config, name)]
    inputs = [*named_paths(config, skip=OUTPUT_FIELDS), logprobs.side_path(config.input)]
    judge_requests.check_settings(config)
    if judge_requests.active(config):  # the verdict cache is appended to: an output, never an input
        outputs.append(Out(config.judge.cache, "judge.cache"))
        inputs = [path for path in inputs if path != config.judge.cache]
    check_io(outputs, inputs)


def run(config: FilterConfig) -> dict[str, Any]:
    """Filter `config.input` into `config.output` (and `config.rejected`); returns the report."""
    start = time.perf_counter()
    _check_outputs(config)
    detected = config.detect_delimiters(config.input)
    if detected:
        sys.stderr.write(f"filter: {detected}\n")
    try:
        return _filter(config, start)
    except KeyboardInterrupt:
        raise Interrupted("nothing written (outputs appear whole or not at all); re-run the same command") from None


def _filter(config: FilterConfig, start: float) -> dict[str, Any]:
    from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    parents = {name: RULES[name].make(getattr(config, name)) for name in config.rules if RULES[name].make is not None}
    report = Report(config.rules)
    columns = [SpinnerColumn(), TextColumn("filter"), MofNCompleteColumn(), TextColumn("kept {task.fields[kept]}"), TimeElapsedColumn()]
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(WorkerPool(config.workers, memory_mb=config.correctness.memory_mb, preload=PRELOAD))
        votes_path = judge_path = None
        scratch = stack.enter_context(scratch_dir("filter"))
        if judge_requests.active(config):
            judge_path = scratch / "judge.json"
            report.judge = judge_requests.prepare(config, pool, raw_chunks(config), judge_path)
        # Records without a reference go to the judge when it decides, not to the vote.
        if config.correctness.no_reference == "majority" and "correctness" in config.rules and not judge_requests.decides(config):
            votes_path = scratch / "votes.json"
            tally(config, pool, raw_chunks(config), votes_path)
        kept_out = stack.enter_context(Output(config.output))
        rejected_out = stack.enter_context(Output(config.rejected)) if config.rejected else None
        # the teacher's log-probabilities follow their records (entered last: renamed before the records)
        side = logprobs.scan(logprobs.side_path(config.input)) if input_kind(config.input) in ("jsonl", "json", "parquet") else None
        kept_frames = stack.enter_context(logprobs.FrameCopier(config.output))
        rejected_frames = stack.enter_context(logprobs.FrameCopier(config.rejected)) if config.rejected else None
        progress = stack.enter_context(Progress(*columns, transient=True))
        bar = progress.add_task("filter", total=None, kept=0)
        task = functools.partial(judge_chunk, config, str(votes_path) if votes_path else None, str(judge_path) if judge_path else None)
        ids = UniqueIds()
        per_prompt: dict[str, PromptStats] = {}
        selector = Selector(config) if selection.active(config) else None
        if selector is not None:  # the rules' kept records wait here for the selection (second pass)
            report.rejected_by.update({selection.BAND: 0, selection.SELECTION: 0})
            before_selection = Output(str(scratch / "kept-by-rules.jsonl")).__enter__()
        for results in pool.imap_chunks(task, raw_chunks(config)):
            for judged in results:
                if not isinstance(judged, Judged):  # the chunk function itself failed twice on a record
                    raise StageError(f"a filter worker failed: {judged.detail}")
                if judged.error is not None:
                    raise InputError(judged.error)
                ids.see(judged.id, judged.where)
                line, verdicts, rejected_by = finish(judged, config, parents)
                report.add(judged, verdicts, rejected_by)
                if selector is not None:
                    selector.seen(judged.problem_id, is_correct(verdicts, rejected_by is None))
                if config.prompt_stats:
                    kept = rejected_by is None
                    per_prompt.setdefault(judged.problem_id, PromptStats(judged.problem_id)).add(
                        judged.id, kept, is_correct(verdicts, kept), judged.prompt_tokens, judged.tokens, judged.chars)
                if rejected_by is None and selector is not None:
                    before_selection.write(line)
                    selector.add(judged.problem_id, judged.chars, judged.tokens)
                elif rejected_by is None:
                    kept_out.write(line)
                    if side is not None:
                        kept_frames.copy(side, judged.id)
                elif rejected_out is not None:
                    rejected_out.write(line)
                    if side is not None:
                        rejected_frames.copy(side, judged.id)
            progress.update(bar, advance=len(results), kept=report.kept)
        if selector is not None:
            before_selection.__exit__(None, None, None)
            sides = (side, kept_frames, rejected_frames)
            select(selector, before_selection.path, report, kept_out, rejected_out, sides)
        summary = report.as_dict(
            rules=config.rules, workers=pool.size, seconds=round(time.perf_counter() - start, 2),
            input=config.input, output=config.output, rejected_file=config.rejected,
            # what a dataset card states (distill publish-data): the benchmarks the problems were checked against
            decontamination={"benchmarks": list(config.decontaminate.benchmarks), "ngram": config.decontaminate.ngram}
            if "decontaminate" in config.rules else None,
        )
        if selector is not None:
            summary["selection"] = selector.summary()
        if kept_frames.count:
            summary["logprobs"] = {"file": str(kept_frames.path), "records": kept_frames.count, "tokens": kept_frames.tokens}
        if config.prompt_stats:
            summary["prompt_stats"] = write_rows(config.prompt_stats, per_prompt.values())
        if config.report:
            write_text(config.report, json.dumps(summary, indent=2) + "\n")
    # The progress bar is transient: this line is what stays on the terminal, and in a run's log.txt.
    print(f"filter: kept {summary['kept']:,} of {summary['records_in']:,} records ({100 * summary['kept_fraction']:.1f}%) "
          f"in {config.output}" + (f", {summary['rejected']:,} rejected in {config.rejected}" if config.rejected else ""),
          file=sys.stderr, flush=True)
    return summary


def select(selector: Selector, path: str, report: Report, kept_out: Output, rejected_out: Output | None, sides: tuple) -> None:
    """The second pass: the rules' kept records (in `path`) to the kept file, or to the rejected one
    charged to the band or the selection (distill.filters.selection); the report's kept figures follow."""
    side, kept_frames, rejected_frames = sides
    fate = selector.choose()
    report.after = LengthStats()
    config = selector.config
    with open(path, encoding="utf-8") as lines:
        for position, line in enumerate(lines):
            line = line.rstrip("\n")
            row = json.loads(line)
            if fate[position] == 0:
                tokens = selector.tokens[position]
                report.after.add(selector.chars[position], tokens if tokens >= 0 else None)
                kept_out.write(line)
                if side is not None:
                    kept_frames.copy(side, row["id"])
                continue
            by = selection.BAND if fate[position] == 1 else selection.SELECTION
            report.drop(row["domain"], by)
            if rejected_out is None:
                continue
            index = selector.prompts[row["problem_id"]]
            rate = pass_rate(*selector.counts(index))
            reason = (f"pass rate {rate:.3g} outside [{config.pass_rate_min:g}, {config.pass_rate_max:g}]" if by == selection.BAND
                      else f"not among the {config.per_prompt} kept by --select {config.select}")
            row.pop("messages", None)
            rejected_out.write(json.dumps({**row, "rejected_by": by, "reason": reason}, ensure_ascii=False))
            if side is not None:
                rejected_frames.copy(side, row["id"])


STAGES = (
    Stage(
        name="filter", section="filter", default_run=True, config=FilterConfig, run=run, check=_check_outputs, reads={"input": "traces", "pass_rates": "prompt_stats"},
        writes={"output": "kept.jsonl", "rejected": "rejected.jsonl", "report": "report.json", "prompt_stats": "prompts.jsonl"},
        produces={"kept": "kept.jsonl", "rejected": "rejected.jsonl", "filter_report": "report.json", "prompt_stats": "prompts.jsonl"},
        # a price changes what the report says the judge cost, not which records are kept
        operational=("workers", "judge.price_in", "judge.price_out", "judge.concurrency"),
        command=Command("Judge traces with named rules; write kept (SFT-ready) and rejected records and a report.", ("input",),
                        lambda summary, config: print_report(summary)),
        selects=Selects(outputs=lambda config: (str(config.output), str(config.rejected) if config.rejected else None)),
    ),
)
