"""The `length` rule: completions outside a minimum and maximum length (tokens or characters)."""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import Field

from distill.core.errors import InputError
from distill.core.r1_format import Parts
from distill.core.records import Trace, Verdict
from distill.filters.registry import RuleOptions, rule


class LengthOptions(RuleOptions):
    unit: Literal["tokens", "chars"] = Field(default="tokens", description="Measure completions in tokens or characters.")
    min: int | None = Field(default=None, ge=0, description="Minimum completion length (none: no minimum).",
                             json_schema_extra={"flags": ["--min-completion-length"], "old_flags": ["--min-length"]})
    max: int | None = Field(default=None, ge=1, description="Maximum completion length (none: no maximum).",
                             json_schema_extra={"flags": ["--max-completion-length"], "old_flags": ["--max-length"]})
    tokenizer: str | None = Field(
        default=None, description="Tokenizer (path or hub id) for unit=tokens; default: the record's completion_tokens.", json_schema_extra={"flags": ["--tokenizer"]})


@functools.cache
def _tokenizer(name: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load tokenizer ({exc})".splitlines()[0], field="length.tokenizer") from None


def completion_length(trace: Trace, config) -> int:
    options = config.length
    if options.unit == "chars":
        return len(trace.completion)
    if options.tokenizer:
        return len(_tokenizer(options.tokenizer)(trace.completion, add_special_tokens=False)["input_ids"])
    if trace.completion_tokens is None:
        raise InputError("missing: needed to measure length in tokens (give length.tokenizer or unit=chars)", field="completion_tokens")
    return trace.completion_tokens


@rule("length", LengthOptions, order=20)
def check_length(trace: Trace, parts: Parts, config) -> Verdict:
    """Completions outside --length-min / --length-max."""
    options = config.length
    if options.min is None and options.max is None:
        return Verdict(passed=True, reason="no length limits set")
    size = completion_length(trace, config)
    unit = options.unit
    if options.min is not None and size < options.min:
        return Verdict(passed=False, reason=f"{size} {unit} < minimum {options.min}", score=size)
    if options.max is not None and size > options.max:
        return Verdict(passed=False, reason=f"{size} {unit} > maximum {options.max}", score=size)
    return Verdict(passed=True, reason=f"{size} {unit}", score=size)
