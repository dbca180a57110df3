"""Where the backends hand their results: the record writer, the counters and the progress bar.

Backends only call `emit`, `skip`, `retried` and `failed`; what a record looks like and how
progress is shown stays here, the same for every backend.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
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
from distill.core.records import Problem, Trace, sample_id
from teacher.store import AppendWriter


@dataclass
class Job:
    """One prompt and the sample indices it still needs."""

    problem: Problem
    indices: list[int]


@dataclass
class Sink:
    writer: AppendWriter
    teacher: dict[str, Any]
    total_prompts: int
    total_samples: int
    console: Console = field(default_factory=lambda: Console(stderr=True))
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
        self._task = self.progress.add_task(
            "generate", total=self.total_samples, prompts=0, total_prompts=self.total_prompts, rate="0", retries=0, errors=0
        )

    def start(self, jobs: list[Job]) -> None:
        self._left = {job.problem.problem_id: len(job.indices) for job in jobs}
        self._start = time.monotonic()
        self.progress.start()

    def stop(self) -> None:
        self._end = time.monotonic()  # engine shutdown after this is not part of the run's speed
        self._refresh()
        self.progress.stop()

    def emit(self, problem: Problem, index: int, completion: str, finish_reason: str | None, tokens: int | None,
             prompt_tokens: int | None = None, token_logprobs: logprobs.TokenLogprobs | None = None) -> None:
        """One finished sample: written at once, so a crash after this line cannot lose it."""
        self.emit_many(problem, [(index, completion, finish_reason, tokens, token_logprobs)], prompt_tokens=prompt_tokens)

    def emit_many(self, problem: Problem, samples: list[tuple], prompt_tokens: int | None = None) -> None:
        """Samples of one prompt: (index, completion, finish_reason, tokens[, TokenLogprobs]) each; `prompt_tokens`
        is the prompt's size, counted once per sample."""
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
        self._count_down(problem, len(records))

    def skip(self, problem: Problem, reason: str, samples: int) -> None:
        """Samples that will not be produced (prompt too long for the context...), with a reason."""
        if problem.problem_id not in self._skipped_ids:  # counted once per prompt, not per sample
            self._skipped_ids.add(problem.problem_id)
            self.skipped[reason] += 1
        self.skipped_samples += samples
        self._count_down(problem, samples)

    def retried(self) -> None:
        self.retries += 1
        self._refresh()

    def failed(self) -> None:
        self.errors += 1
        self._refresh()

    def _count_down(self, problem: Problem, samples: int) -> None:
        left = self._left.get(problem.problem_id, samples) - samples
        self._left[problem.problem_id] = left
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
