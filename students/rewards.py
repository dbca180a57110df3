"""R1's rewards for `distill grpo`, computed by the code that filters and evaluates.

- accuracy: the verifier (`distill.core.verify.check`: math answers, code in the sandbox), 1 or 0;
- format: the filter's `format` rule (one closed reasoning block, an answer, not cut off), 1 or 0;
- language: R1's language consistency, the share of target-language words in the reasoning
  (the filter's `language` measure, on the reasoning only, as R1 defines it);
- length: DAPO's overlong penalty, 0 until the last `length_buffer` of the completion budget,
  then down to -1 at the limit (a cut-off completion gets -1).

Every completion of a step is graded once, in the filter's worker processes (a hung or exploding
verification is killed there, never in the trainer), and TRL reads each named reward from that
one grading. TRL weights them (`reward_weights`) and logs each as `rewards/<name>/mean`.
"""

from __future__ import annotations

import functools
import json
import time
from types import SimpleNamespace
from typing import Any

from distill.core.r1_format import with_think_open
from distill.core.records import Trace
from distill.core.verify import VerifyOptions, check, failure_verdict
from distill.core.workers import Failure, WorkerPool
from distill.filters.rules.format import FormatOptions, check_format, parts_of
from distill.filters.rules.language import (
    LanguageOptions,
    check_language,
    score_text,
    target_language,
    words_of,
)

# The rules read their options off a filter configuration; these are the filter's defaults.
RULES = SimpleNamespace(delimiters="r1", format=FormatOptions(), language=LanguageOptions())


def grade(trace: Trace, options: VerifyOptions) -> dict[str, Any]:
    """One completion's rewards (runs in a worker process)."""
    parts = parts_of(trace, RULES)
    has_reference = bool(trace.tests) or bool((trace.answer or "").strip())
    accuracy = float(check(trace, options).passed) if has_reference else None
    target = target_language(trace, RULES.language)
    exempt = frozenset(word.lower() for word, _ in words_of(trace.problem))
    share, _, _ = score_text(parts.reasoning, target, RULES.language, exempt)
    return {"accuracy": accuracy, "format": float(check_format(trace, parts, RULES).passed), "language": share,
            "mixed": not check_language(trace, parts, RULES).passed}


def _failed(verdict: Failure, options: VerifyOptions) -> dict[str, Any]:
    """A completion whose worker was killed: wrong, and nothing else known about it."""
    return {"accuracy": failure_verdict(verdict, options).score, "format": 0.0, "language": None, "mixed": None}


class Rewards:
    """The reward functions TRL calls, one per name, all read from one grading per step.

    TRL calls them one after another with the same completions; the first call grades the batch
    in the pool and the others read its results. Each method's name is the reward's name in TRL's
    logs (`rewards/accuracy/mean`, ...)."""

    def __init__(self, pool: WorkerPool, max_completion_length: int, length_buffer: float, options: VerifyOptions | None = None):
        self.pool, self.options = pool, options or VerifyOptions()
        self.max_length, self.buffer = max_completion_length, max(1, round(length_buffer * max_completion_length))
        self._key: tuple | None = None
        self._grades: list[dict[str, Any]] = []
        self.graded, self.seconds = 0, 0.0  # completions graded and the wall time it took (reward throughput)

    def functions(self) -> list:
        return [self.accuracy, self.format, self.language, self.length]

    def _graded(self, completions, completion_ids, problem, answer, tests, domain, language, log_metric=None, **_) -> list[dict]:
        key = (id(completions), len(completions), tuple(map(len, completion_ids)))
        if key == self._key:
            return self._grades
        traces = [Trace(id=f"rollout#{i}", sample_index=i, problem_id=f"rollout{i}", problem=problem[i],
                        answer=answer[i], tests=json.loads(tests[i]) if tests[i] else None, domain=domain[i], language=language[i],
                        completion=with_think_open(_text(completion)),
                        finish_reason="length" if len(completion_ids[i]) >= self.max_length else "stop")
                  for i, completion in enumerate(completions)]
        task = functools.partial(grade, options=self.options)
        started = time.perf_counter()
        self._grades = [_failed(result, self.options) if isinstance(result, Failure) else result
                        for result in self.pool.imap(task, traces)]
        self._key = key
        self.graded, self.seconds = self.graded + len(traces), self.seconds + time.perf_counter() - started
        if log_metric is not None:  # the share of completions the language filter would reject
            mixed = [g["mixed"] for g in self._grades if g["mixed"] is not None]
            log_metric("mixing", sum(mixed) / len(mixed) if mixed else 0.0)
        return self._grades

    def accuracy(self, completions, completion_ids, **columns) -> list[float | None]:
        return [g["accuracy"] for g in self._graded(completions, completion_ids, **columns)]

    def format(self, completions, completion_ids, **columns) -> list[float]:
        return [g["format"] for g in self._graded(completions, completion_ids, **columns)]

    def language(self, completions, completion_ids, **columns) -> list[float | None]:
        return [g["language"] for g in self._graded(completions, completion_ids, **columns)]

    def length(self, completions, completion_ids, **columns) -> list[float]:
        """0 up to max - buffer tokens, then linearly down to -1 at the limit."""
        start = self.max_length - self.buffer
        return [max(-1.0, min(0.0, (start - len(ids)) / self.buffer)) for ids in completion_ids]


def _text(completion: Any) -> str:
    """TRL hands a conversational prompt's completion as [{"role": "assistant", "content": ...}]."""
    if isinstance(completion, list):
        return "".join(turn.get("content") or "" for turn in completion)
    return completion
