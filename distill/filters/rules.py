"""The per-record rules as a plain registry, and `evaluate`: one record through them in order.

`evaluate` runs inside a worker process (see `distill.filters.chunks`); `dedup`, the one rule
that needs the records before this one, runs in the parent (see `stage.py`).
"""

from __future__ import annotations

from collections.abc import Callable

from distill.answers import DELIMITER_PRESETS, Parts
from distill.filters.basic import check_format, check_length, check_readability, check_repetition
from distill.filters.config import FilterConfig
from distill.filters.contamination import check_decontaminate
from distill.filters.language import check_language
from distill.records import Trace, Verdict
from distill.verify import check


def has_reference(trace: Trace) -> bool:
    return bool(trace.tests) or (trace.answer is not None and bool(str(trace.answer).strip()))


def check_correctness(trace: Trace, parts: Parts, config: FilterConfig) -> Verdict:
    if not has_reference(trace):
        if config.correctness.no_reference == "keep":
            return Verdict(passed=True, reason="no reference answer (kept unchecked)")
        if config.correctness.no_reference == "reject":
            return Verdict(passed=False, reason="no reference answer or tests")
        # The vote needs every sample of the problem: the stage tallies it first (see majority.py).
        return Verdict(passed=False, reason="no reference answer (majority vote runs only in the filter stage)")
    return check(trace, config.correctness, DELIMITER_PRESETS[config.delimiters])


Rule = Callable[[Trace, Parts, FilterConfig], Verdict]
RECORD_RULES: dict[str, Rule] = {
    "format": check_format,
    "length": check_length,
    "repetition": check_repetition,
    "readability": check_readability,
    "language": check_language,
    "correctness": check_correctness,
    "decontaminate": check_decontaminate,
}


def evaluate(trace: Trace, parts: Parts, config: FilterConfig, override: dict[str, Verdict] | None = None) -> dict[str, Verdict]:
    """Verdicts of the per-record rules in order, up to the first rejection (all with all_verdicts).

    `dedup` is skipped: it needs the records before this one and runs in the parent, which
    merges its verdict in rule order. `override` replaces a rule's verdict (a verification
    killed at its deadline, a majority vote). Bad input raises `InputError`.
    """
    verdicts: dict[str, Verdict] = {}
    for name in config.rules:
        rule = RECORD_RULES.get(name)
        if rule is None:
            continue
        verdict = (override or {}).get(name) or rule(trace, parts, config)
        verdicts[name] = verdict
        if not verdict.passed and not config.all_verdicts:
            break
    return verdicts


def r1_messages(trace: Trace, parts: Parts) -> list[dict[str, str]]:
    """The SFT conversation, with the completion rewritten in R1 form whatever its delimiters."""
    assistant = f"<think>\n{parts.reasoning}\n</think>\n\n{parts.answer}"
    return [{"role": "user", "content": trace.problem}, {"role": "assistant", "content": assistant}]
