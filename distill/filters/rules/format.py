"""The `format` rule: one closed reasoning block, a non-empty answer, not cut off at the token limit.

Records of the domains in `allow_empty_reasoning_for` (default: `general`) may have an empty
reasoning block (`<think>\n\n</think>\n\nHello!`, how the R1 distills answer simple queries), or
none at all (a non-reasoning source such as a chat data set): the filter reads the latter as an
empty block (`parts_of`), and writes its SFT messages in that R1 form. Other domains must reason."""

from __future__ import annotations

from pydantic import Field

from distill.core.r1_format import DELIMITER_PRESETS, Parts, split_completion
from distill.core.records import Trace, Verdict
from distill.filters.registry import RuleOptions, rule


class FormatOptions(RuleOptions):
    allow_empty_reasoning_for: list[str] = Field(
        default=["general"], description="Domains whose records may have an empty reasoning block (simple queries)."
    )


def parts_of(trace: Trace, config) -> Parts:
    """The completion split at its reasoning block; a record allowed to skip reasoning that has no
    block at all is all answer, as if its reasoning block were empty."""
    d = DELIMITER_PRESETS[config.delimiters]
    parts = split_completion(trace.completion, d)
    if (parts.closes == 0 and trace.domain in config.format.allow_empty_reasoning_for
            and d.think_open not in trace.completion and trace.completion.strip()):
        return Parts(reasoning="", answer=trace.completion.strip(), closes=1)
    return parts


@rule("format", FormatOptions, order=10)
def check_format(trace: Trace, parts: Parts, config) -> Verdict:
    """Not exactly one closing reasoning tag, empty reasoning or answer, truncated."""
    if trace.finish_reason == "length":
        return Verdict(passed=False, reason="truncated (finish_reason: length)")
    if parts.closes == 0:
        return Verdict(passed=False, reason=f"no closing reasoning tag ({config.delimiters} delimiters)")
    if parts.closes > 1:
        return Verdict(passed=False, reason=f"{parts.closes} closing reasoning tags (exactly one allowed)")
    if not parts.reasoning and trace.domain not in config.format.allow_empty_reasoning_for:
        return Verdict(passed=False, reason="empty reasoning")
    if not parts.answer:
        return Verdict(passed=False, reason="empty final answer after the reasoning")
    d = DELIMITER_PRESETS[config.delimiters]
    if d.answer_close and d.answer_close not in trace.completion:
        return Verdict(passed=False, reason=f"final answer not closed by {d.answer_close} (truncated)")
    return Verdict(passed=True, reason="well formed")
