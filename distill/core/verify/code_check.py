"""Code answers: the program of the final answer run against the record's tests in the sandbox."""

from __future__ import annotations

import re

from distill.core.r1_format import Delimiters
from distill.core.records import Trace, Verdict
from distill.core.verify.extract import final_part
from distill.core.verify.options import VerifyOptions
from distill.core.workers import set_deadline

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)


def extract_program(final: str) -> str | None:
    """The last fenced Python block of the final answer (else the last fenced block of any kind)."""
    blocks = _FENCE.findall(final)
    python = [code for lang, code in blocks if lang.lower() in ("python", "py", "python3")]
    chosen = python or [code for _lang, code in blocks]
    return chosen[-1] if chosen else None


def check_code(trace: Trace, options: VerifyOptions, delimiters: Delimiters | None = None) -> Verdict:
    from distill.core.sandbox import Limits, run_tests

    program = extract_program(final_part(trace.completion, delimiters))
    if program is None:
        return Verdict(passed=False, reason="no fenced code block in the final answer", score=0.0)
    cases = len(trace.tests) if isinstance(trace.tests, list) else 1
    set_deadline(cases * (options.code_timeout + 2) + 10)
    limits = Limits(wall_s=options.code_timeout, cpu_s=options.code_timeout, memory_mb=options.code_memory_mb)
    result = run_tests(program, trace.tests, limits)
    return Verdict(passed=result.passed, reason=result.reason, score=result.fraction)
