"""The `repetition` rule: degenerate loops (a line, an n-gram or the tail repeating)."""

from __future__ import annotations

from collections import Counter

from pydantic import Field

from distill.core.r1_format import Parts
from distill.core.records import Trace, Verdict
from distill.filters.registry import RuleOptions, rule


class RepetitionOptions(RuleOptions):
    max_line_repeats: int = Field(default=12, ge=2, description="A line of 20+ characters may occur at most this many times.")
    ngram: int = Field(default=16, ge=4, description="Word n-gram size for loop detection.")
    max_ngram_repeats: int = Field(default=12, ge=2, description="An n-gram may occur at most this many times.")
    tail_loop_chars: int = Field(
        default=600, ge=50, description="Reject when the last this-many characters repeat one short period (a stuck loop)."
    )


def _tail_period(text: str, window: int) -> int | None:
    """Smallest period p <= window/3 such that the last `window` chars repeat with period p."""
    tail = text[-window:]
    if len(tail) < window:
        return None
    for period in range(1, window // 3 + 1):
        if tail[period:] == tail[:-period]:
            return period
    return None


@rule("repetition", RepetitionOptions, order=40)
def check_repetition(trace: Trace, parts: Parts, config) -> Verdict:
    """Degenerate loops (repeated lines or n-grams, a looping tail)."""
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

