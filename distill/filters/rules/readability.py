"""The `readability` rule (the R1 paper's): math reasoning with very long paragraphs or code fences."""

from __future__ import annotations

import re

from pydantic import Field

from distill.core.r1_format import Parts
from distill.core.records import Trace, Verdict
from distill.filters.registry import RuleOptions, rule

_PARAGRAPH = re.compile(r"\n\s*\n")


class ReadabilityOptions(RuleOptions):
    domains: list[str] = Field(default=["math"], description="Domains the rule applies to (the paper's rule is for math).")
    max_paragraph_chars: int = Field(default=6000, ge=100, description="Longest allowed paragraph of the reasoning, in characters.", json_schema_extra={"flags": ["--max-paragraph-chars"]})
    allow_code_fences: bool = Field(default=False, description="Allow ``` code fences in the reasoning.")


@rule("readability", ReadabilityOptions, order=50)
def check_readability(trace: Trace, parts: Parts, config) -> Verdict:
    """Math reasoning with very long paragraphs or code fences."""
    options = config.readability
    if trace.domain not in options.domains:
        return Verdict(passed=True, reason=f"not applied to {trace.domain}")
    if not options.allow_code_fences and "```" in parts.reasoning:
        return Verdict(passed=False, reason="code fence in the reasoning")
    longest = max((len(p) for p in _PARAGRAPH.split(parts.reasoning)), default=0)
    if longest > options.max_paragraph_chars:
        return Verdict(passed=False, reason=f"paragraph of {longest} chars > {options.max_paragraph_chars}", score=longest)
    return Verdict(passed=True, reason=f"longest paragraph {longest} chars", score=longest)
