"""THE answer checker: the `correctness` filter rule and the `eval` stage both grade with it.

Math (and any record with a reference answer): the final answer is taken from the part after
the reasoning (see `extract_answer` for the order of fallbacks) and compared with the
reference by an exact match after light normalisation, then by math-verify (reference
first: its comparison is asymmetric). A reference with several parts is compared part by
part with every part of the final answer (`distill.core.verify.parts` has the rule). Code (a
record with `tests`): the last fenced Python block of the final answer runs against the tests
in `distill.core.sandbox`.

math-verify runs in worker processes (`distill.core.workers`) with a memory cap and a hard
wall-clock kill: a hang or an explosion becomes a failed verdict with a reason, never a
stuck run.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator

from distill.core.r1_format import DELIMITER_PRESETS, Delimiters
from distill.core.records import Trace, Verdict
from distill.core.verify.code_check import check_code, extract_program
from distill.core.verify.extract import extract_answer, final_part
from distill.core.verify.math_check import check_answer, check_math, normalise
from distill.core.verify.options import VerifyOptions
from distill.core.workers import Failure, WorkerPool

__all__ = ["VerifyOptions", "check", "check_answer", "check_code", "check_math", "extract_answer", "extract_program", "failure_verdict",
           "final_part", "grade", "normalise", "undecidable"]


def check(trace: Trace, options: VerifyOptions | None = None, delimiters: Delimiters | None = None) -> Verdict:
    """Grade one trace: code against its tests, anything else against its reference answer."""
    options = options or VerifyOptions()
    if trace.tests:
        return check_code(trace, options, delimiters)
    if trace.answer is None or not str(trace.answer).strip():
        return Verdict(passed=False, reason="no reference answer to check against", score=None)
    return check_answer(str(trace.answer), trace.completion, options, delimiters)


# Two plain words in a row once LaTeX commands are gone: a prose reference ("The mitochondria",
# "It increases because..."), which math-verify reads as a product of letters and no rule can compare.
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_PROSE = re.compile(r"[A-Za-z]{2,}[,;]?\s+[A-Za-z]{2,}")


def undecidable(trace: Trace, delimiters: Delimiters | None = None) -> str | None:
    """Why the checker cannot decide this trace, or None when it can: no reference answer or
    tests, a prose reference, or no final answer it can read (the cases a judge model decides)."""
    if trace.tests:
        return None
    if trace.answer is None or not str(trace.answer).strip():
        return "no reference answer"
    if _PROSE.search(_LATEX_COMMAND.sub(" ", str(trace.answer))):
        return "prose reference answer"
    if extract_answer(trace.completion, delimiters) is None:
        return "no final answer the checker can read"
    return None


def failure_verdict(failure: Failure, options: VerifyOptions) -> Verdict:
    """The verdict for a check whose worker was killed or died."""
    if failure.kind == "timeout":
        return Verdict(passed=False, reason=f"verifier timed out (killed after {options.timeout:g}s)", score=0.0)
    return Verdict(passed=False, reason=f"verifier failed: {failure.detail}", score=0.0)


def _check_one(trace: Trace, options: VerifyOptions, delimiters: Delimiters | None) -> Verdict:
    return check(trace, options, delimiters)


def grade(
    traces: Iterable[Trace],
    workers: int = 1,
    timeout: float | None = None,
    delimiters: str | Delimiters | None = None,
    options: VerifyOptions | None = None,
) -> Iterator[tuple[Trace, Verdict]]:
    """Grade traces in worker processes; yields (trace, verdict) in input order, streaming.

    `timeout` overrides `options.timeout`; `delimiters` is a preset name ("r1", "sky-t1") or a
    `Delimiters`. The same logic as the `correctness` filter rule.
    """
    options = options or VerifyOptions()
    if timeout is not None:
        options = options.model_copy(update={"timeout": timeout})
    if isinstance(delimiters, str):
        delimiters = DELIMITER_PRESETS[delimiters]
    task = functools.partial(_check_one, options=options, delimiters=delimiters)
    pending: list[Trace] = []

    def feed() -> Iterator[Trace]:
        for trace in traces:
            pending.append(trace)
            yield trace

    with WorkerPool(workers, memory_mb=options.memory_mb) as pool:
        for verdict in pool.imap(task, feed()):
            trace = pending.pop(0)
            if isinstance(verdict, Failure):
                verdict = failure_verdict(verdict, options)
            yield trace, verdict
