"""Multiple-choice answers (GPQA): the letter a completion chose, and its verdict.

The letter is read from the final answer (the text after the reasoning; the whole completion
when the reasoning never closed, as for math), trying these forms in order and taking the last
occurrence of the first form found:
1. a boxed letter: `\\boxed{C}`, `\\boxed{\\text{C}}`, `\\boxed{(C)}`, `\\boxed{C) text}`;
2. an answer phrase: "Answer: C", "**Answer:** (C)", "the answer is C", "final answer: C)";
3. a letter in parentheses: "(C)";
4. a line that is only the letter, or the letter with its bracket: "C", "C)", "C.";
5. the text of exactly one option (compared without case, spacing or a trailing full stop).
A completion with none of these has no answer (graded wrong, counted in `no answer`).
"""

from __future__ import annotations

import re

from distill.core.r1_format import Delimiters, last_boxed
from distill.core.records import Verdict
from distill.core.verify.extract import final_part

LETTERS = "ABCD"
_LETTER = r"\(?\s*([A-D])\s*\)?"
_BOXED = re.compile(r"^\s*(?:\\text(?:bf)?\{)?\s*\(?\s*([A-D])\s*\)?\s*\}?(?:[).:\s].*)?$", re.S)
# the phrase in any case, the letter in capitals ("the answer: a reaction" names no option)
_PHRASE = re.compile(r"(?i:answer|correct\s+option|correct\s+choice)(?:\s+is)?\s*[:：]?\s*\**\s*" + _LETTER + r"(?![A-Za-z])")
_PARENS = re.compile(r"\(([A-D])\)")
_BARE = re.compile(r"^\s*\**\s*" + _LETTER + r"\s*[.:]?\s*\**\s*$", re.M)


def _plain(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".")


def extract_choice(text: str, options: dict[str, str] | None = None) -> str | None:
    """The letter `text` (a final answer) chose, or None (the order of tries: module docstring)."""
    boxed = last_boxed(text)
    if boxed is not None:
        match = _BOXED.match(boxed)
        if match:
            return match.group(1)
        if options:  # \boxed{the option's text}
            named = [letter for letter, option in options.items() if _plain(option) == _plain(boxed)]
            if len(named) == 1:
                return named[0]
    for pattern in (_PHRASE, _PARENS, _BARE):
        found = pattern.findall(text)
        if found:
            return found[-1].upper()
    if options:
        plain = _plain(text)
        named = [letter for letter, option in options.items() if _plain(option) and _plain(option) in plain]
        if len(named) == 1:
            return named[0]
    return None


def check_choice(gold: str, completion: str, options: dict[str, str] | None = None, delimiters: Delimiters | None = None) -> Verdict:
    """A completion's verdict against the gold letter."""
    chosen = extract_choice(final_part(completion, delimiters), options)
    if chosen is None:
        return Verdict(passed=False, reason="no option letter in the final answer", score=0.0)
    passed = chosen == gold.strip().upper()
    return Verdict(passed=passed, reason=f"chose {chosen}" + ("" if passed else f", the answer is {gold}"), score=float(passed))
