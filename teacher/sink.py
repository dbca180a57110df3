"""The record sink: where the sampling layer hands samples that become trace records in a JSONL file.

Backends only call `emit`, `skip`, `retried` and `failed`; what a record looks like, how the file is
resumed (a re-run samples only the ids it lacks, see teacher.store) and how progress is shown stays
here, the same for every backend. (`teacher.sampler.MemorySink` is the in-memory sink.)
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from distill.core import logprobs
from distill.core.cost import money_text
from distill.core.records import Trace, sample_id
from teacher.sampler import Job
from teacher.store import AppendWriter, OutputState, mend, scan_output


@dataclass
class TraceSink:
    """Samples as trace records appended to `path` (and, with `side`, their log-probabilities to its side file)."""

    path: Path
    teacher: dict[str, Any]  # every record's `teacher` field
    side: bool = False
    console: Console = field(default_factory=lambda: Console(stderr=True))
    state: OutputState = field(init=False)  # what the file holds already (read when the sink is made; nothing written)
    writer: AppendWriter | None = None
    total_prompts: int = 0
    total_samples: int = 0
    samples: int = 0
    prompts_done: int = 0
    tokens: int = 0  # completion tokens written by this run
    logprob_bytes: int = 0  # side-file bytes written (the teacher's log-probabilities)
    prompt_tokens: int = 0
    # (prompt tokens, completion tokens) written so far -> why the budget is reached, or None;
    # once it says so, `stopped` holds the reason and the backends start no new sample.
    limit: Callable[[int, int], str | None] | None = None
    stopped: str | None = None
    retries: int = 0
    errors: int = 0
    skipped: Counter = field(default_factory=Counter)
    skipped_samples: int = 0
    finish: Counter = field(default_factory=Counter)
    _left: dict[str, int] = field(default_factory=dict)
    _skipped_ids: set[str] = field(default_factory=set)
    _start: float = field(default_factory=time.monotonic)
    _end: float | None = None

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.state = scan_output(self.path)  # not ours: InputError, and the file is left alone
        self.progress = Progress(
            TextColumn("[bold]generate"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("samples, {task.fields[prompts]}/{task.fields[total_prompts]} prompts"),
            TextColumn("{task.fields[rate]} tok/s, retries {task.fields[retries]}, errors {task.fields[errors]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(compact=True),
            console=self.console,
            transient=False,
            refresh_per_second=2,  # enough for people; the redraw thread competes with the engine loop for the GIL
        )
        self._task = self.progress.add_task("generate", total=0, prompts=0, total_prompts=0, rate="0", retries=0, errors=0)

    def missing(self, jobs: list[Job]) -> list[Job]:
        """The jobs with the samples the file holds already left out (a re-run resumes)."""
        out = []
        for job in jobs:
            indices = [i for i in job.indices if sample_id(job.key, i) not in self.state.done]
            if indices:
                out.append(replace(job, indices=indices))
        return out

    def start(self, jobs: list[Job]) -> None:
        """Mend the file (a torn last line cut, a missing newline added: only now, so a run refused
        earlier leaves it as it was), open it for appending, show progress."""
        mend(self.path, self.state)
        if self.side:
            logprobs.mend(logprobs.side_path(self.path), self.state.done)
        self.writer = AppendWriter(self.path, side=self.side)
        self.total_prompts, self.total_samples = len(jobs), sum(len(job.indices) for job in jobs)
        self.progress.update(self._task, total=self.total_samples, total_prompts=self.total_prompts)
        self._left = {job.key: len(job.indices) for job in jobs}
        self._start = time.monotonic()
        self.progress.start()

    def stop(self) -> None:
        self._end = time.monotonic()  # engine shutdown after this is not part of the run's speed
        self._refresh()
        self.progress.stop()
        if self.writer is not None:
            self.writer.close()

    @property
    def written(self) -> int:
        return self.writer.count if self.writer is not None else 0

    def emit(self, job: Job, index: int, completion: str, finish_reason: str | None, tokens: int | None,
             prompt_tokens: int | None = None, token_logprobs: logprobs.TokenLogprobs | None = None) -> None:
        """One finished sample: written at once, so a crash after this line cannot lose it."""
        self.emit_many(job, [(index, completion, finish_reason, tokens, token_logprobs)], prompt_tokens=prompt_tokens)

    def emit_many(self, job: Job, samples: list[tuple], prompt_tokens: int | None = None) -> None:
        """Samples of one prompt: (index, completion, finish_reason, tokens[, TokenLogprobs]) each; `prompt_tokens`
        is the prompt's size, counted once per sample."""
        problem = job.problem
        records, frames = [], []
        for index, completion, finish_reason, tokens, *extra in samples:
            if extra and extra[0] is not None:
                frames.append(logprobs.encode(sample_id(problem.problem_id, index), extra[0]))
                self.logprob_bytes += len(frames[-1])
            reason = finish_reason if finish_reason in ("stop", "length") else None
            self.finish[finish_reason or "unknown"] += 1
            records.append(
                Trace(
                    **problem.model_dump(),
                    id=sample_id(problem.problem_id, index),
                    sample_index=index,
                    completion=completion,
                    finish_reason=reason,
                    completion_tokens=tokens,
                    prompt_tokens=prompt_tokens,
                    teacher=self.teacher,
                )
            )
            self.tokens += tokens or 0
            self.prompt_tokens += prompt_tokens or 0
        self.writer.write(records, frames)
        self.samples += len(records)
        if self.limit is not None and self.stopped is None:
            self.stopped = self.limit(self.prompt_tokens, self.tokens)
        self._count_down(job, len(records))

    def skip(self, job: Job, reason: str, samples: int) -> None:
        """Samples that will not be produced (prompt too long for the context...), with a reason."""
        if job.key not in self._skipped_ids:  # counted once per prompt, not per sample
            self._skipped_ids.add(job.key)
            self.skipped[reason] += 1
        self.skipped_samples += samples
        self._count_down(job, samples)

    def retried(self) -> None:
        self.retries += 1
        self._refresh()

    def failed(self) -> None:
        self.errors += 1
        self._refresh()

    def _count_down(self, job: Job, samples: int) -> None:
        left = self._left.get(job.key, samples) - samples
        self._left[job.key] = left
        if left <= 0:
            self.prompts_done += 1
        self._refresh()

    def _refresh(self) -> None:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        self.progress.update(
            self._task, completed=self.samples + self.skipped_samples, prompts=self.prompts_done,
            rate=f"{self.tokens / elapsed:,.0f}", retries=self.retries, errors=self.errors,
        )

    def elapsed(self) -> float:
        return (self._end or time.monotonic()) - self._start


def summary_table(summary: dict[str, Any]) -> Table:
    """The closing summary the CLI prints."""
    table = Table(title="distill generate", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("output", summary["output"]),
        ("prompts", f"{summary['prompts']:,} ({summary['prompts_with_work']:,} needing samples)"),
        ("samples written", f"{summary['samples_written']:,}"),
        ("already there (resumed)", f"{summary['samples_existing']:,}"),
        ("prompt / completion tokens", f"{summary['prompt_tokens']:,} / {summary['completion_tokens']:,}"),
        ("tokens/s", f"{summary['tokens_per_s']:,.1f}"),
        ("finish reasons", ", ".join(f"{k} {v}" for k, v in summary["finish_reasons"].items()) or "-"),
        ("retries / errors", f"{summary['retries']} / {summary['errors']}"),
        ("elapsed", f"{summary['elapsed_s']:.1f} s"),
    ]
    if summary.get("cost") is not None:
        rows.append(("cost (this run)", money_text(summary["cost"])))
    if summary.get("samples_existing") and "spent_cost" in summary:
        rows.append(("cost (whole output)", money_text(summary["spent_cost"])))
    if summary.get("stopped"):
        rows.append(("stopped", summary["stopped"]))
    if summary["skipped_prompts"]:
        rows.append(("skipped prompts", ", ".join(f"{v} {k}" for k, v in summary["skipped_prompts"].items())))
    if summary.get("torn_bytes_dropped"):
        rows.append(("torn last line dropped", f"{summary['torn_bytes_dropped']} bytes"))
    if summary.get("logprobs_file"):
        per_token = summary["logprobs_bytes_per_token"]
        rows.append(("log-probabilities", summary["logprobs_file"] + (f" ({per_token} bytes/token)" if per_token else "")))
    for name, value in rows:
        table.add_row(name, str(value))
    return table
