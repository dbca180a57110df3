"""The `correctness` rule: the shared checker (`distill.core.verify`), plus what to do with records
that have nothing to check against.

- A record of a domain whose answers no rule can check (`general`: chat, writing, R1's
  non-reasoning data) and without a reference is kept as "not checkable" (counted in the
  report), or decided by the judge when one is configured (`distill.filters.judge_requests`).
- A record of a checkable domain (math, code, science) without a reference follows
  `no_reference`: reject (the default), keep unchecked, or a majority vote among the problem's
  samples, tallied by the stage before judging (see `distill.filters.majority`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from distill.core.r1_format import DELIMITER_PRESETS, Parts
from distill.core.records import Trace, Verdict
from distill.core.verify import VerifyOptions, check
from distill.filters.registry import RuleOptions, rule


class CorrectnessOptions(VerifyOptions, RuleOptions):
    no_reference: Literal["reject", "keep", "majority"] = Field(
        default="reject",
        description="Math, code and science records without a reference answer or tests: reject, keep unchecked, or vote among "
                    "the problem's samples (general records without one are kept as not checkable, or judged).",
        json_schema_extra={"flags": ["--no-reference"]})
    majority_min_votes: int = Field(
        default=2, ge=1, description="no_reference=majority: votes the winning answer needs (a strict plurality is also required)."
    )


UNCHECKABLE_DOMAINS = ("general",)  # answers no rule can check: kept as not checkable, or judged
NOT_CHECKABLE = "not checkable"  # the reason's first words (the report counts these)


def has_reference(trace: Trace) -> bool:
    return bool(trace.tests) or (trace.answer is not None and bool(str(trace.answer).strip()))


def checkable(trace: Trace) -> bool:
    """Does the no_reference policy (and the majority vote) apply to this record?"""
    return trace.domain not in UNCHECKABLE_DOMAINS


@rule("correctness", CorrectnessOptions, order=70)
def check_correctness(trace: Trace, parts: Parts, config) -> Verdict:
    """Math: the final answer against the reference; code: the program against its tests."""
    if not has_reference(trace):
        if not checkable(trace):
            return Verdict(passed=True, reason=f"{NOT_CHECKABLE}: a {trace.domain} record without a reference answer (kept; "
                                               "a judge decides these when one is configured)")
        if config.correctness.no_reference == "keep":
            return Verdict(passed=True, reason="no reference answer (kept unchecked)")
        if config.correctness.no_reference == "reject":
            return Verdict(passed=False, reason="no reference answer or tests")
        # The vote needs every sample of the problem: the stage tallies it first (see majority.py).
        return Verdict(passed=False, reason="no reference answer (majority vote runs only in the filter stage)")
    return check(trace, config.correctness, DELIMITER_PRESETS[config.delimiters])
