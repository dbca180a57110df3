"""The cheap per-record rules: format, length, readability and repetition.

Each rule is a plain function `(trace, parts, config) -> Verdict`; `parts` is the completion
split at its reasoning delimiters (see `distill.answers.split_completion`).
"""

from __future__ import annotations

import functools
import re
from collections import Counter

from distill.answers import DELIMITER_PRESETS, Parts
from distill.errors import InputError
from distill.filters.config import FilterConfig
from distill.records import Trace, Verdict


def check_format(trace: Trace, parts: Parts, config: FilterConfig) -> Verdict:
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


@functools.cache
def _tokenizer(name: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load tokenizer ({exc})".splitlines()[0], field="length.tokenizer") from None


def completion_length(trace: Trace, config: FilterConfig) -> int:
    options = config.length
    if options.unit == "chars":
        return len(trace.completion)
    if options.tokenizer:
        return len(_tokenizer(options.tokenizer)(trace.completion, add_special_tokens=False)["input_ids"])
    if trace.completion_tokens is None:
        raise InputError("missing: needed to measure length in tokens (give length.tokenizer or unit=chars)", field="completion_tokens")
    return trace.completion_tokens


def check_length(trace: Trace, parts: Parts, config: FilterConfig) -> Verdict:
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


_PARAGRAPH = re.compile(r"\n\s*\n")


def check_readability(trace: Trace, parts: Parts, config: FilterConfig) -> Verdict:
    options = config.readability
    if trace.domain not in options.domains:
        return Verdict(passed=True, reason=f"not applied to {trace.domain}")
    if not options.allow_code_fences and "```" in parts.reasoning:
        return Verdict(passed=False, reason="code fence in the reasoning")
    longest = max((len(p) for p in _PARAGRAPH.split(parts.reasoning)), default=0)
    if longest > options.max_paragraph_chars:
        return Verdict(passed=False, reason=f"paragraph of {longest} chars > {options.max_paragraph_chars}", score=longest)
    return Verdict(passed=True, reason=f"longest paragraph {longest} chars", score=longest)


def _tail_period(text: str, window: int) -> int | None:
    """Smallest period p <= window/3 such that the last `window` chars repeat with period p."""
    tail = text[-window:]
    if len(tail) < window:
        return None
    for period in range(1, window // 3 + 1):
        if tail[period:] == tail[:-period]:
            return period
    return None


def check_repetition(trace: Trace, parts: Parts, config: FilterConfig) -> Verdict:
    options = config.repetition
    text = trace.completion
    lines = Counter(line.strip() for line in text.splitlines() if len(line.strip()) >= 20)
    if lines:
        line, count = lines.most_common(1)[0]
        if count > options.max_line_repeats:
            return Verdict(passed=False, reason=f"line repeated {count} times: {line[:50]!r}", score=count)
    words = text.split()
    n = options.ngram
    if len(words) >= n * options.max_ngram_repeats:
        grams = Counter(zip(*(words[i:] for i in range(n)), strict=False))
        gram, count = grams.most_common(1)[0]
        if count > options.max_ngram_repeats:
            shown = " ".join(gram)[:50]
            return Verdict(passed=False, reason=f"{n}-gram repeated {count} times: {shown!r}", score=count)
    period = _tail_period(text.rstrip(), options.tail_loop_chars)
    if period is not None:
        return Verdict(passed=False, reason=f"ends in a loop (period {period} chars)", score=period)
    return Verdict(passed=True, reason="no degenerate repetition")
