"""The final answer of a completion: the part after the reasoning, its last box, or the fallbacks
`extract_answer` lists (used by the checker, the majority vote, `eval` and `inspect`)."""

from __future__ import annotations

import re

from distill.core.r1_format import Delimiters, last_boxed, split_completion

_ANSWER_PHRASE = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:)\s*[:\s]*(?P<value>\$[^$]+\$|\\\(.+?\\\)|[^\n.]+)", re.IGNORECASE
)
# "Therefore, the degree of \( f(x) \) is 3." / "The midpoint is (-1,6).": the value that ends the
# paragraph's last sentence after "is"/"are"/"=" (an optional unit word may follow it).
_CONCLUSION = re.compile(
    r"(?:\bis|\bare|\bequals|=)\s+(?:equal to\s+|approximately\s+|about\s+|indeed\s+)?(?:\\?\$(?=\d))?"
    r"(?P<value>\$[^$]+\$|\\\((?:(?!\\\)).)+\\\)|\\\[(?:(?!\\\]).)+\\\]|\([^()\n]*\)|-?\d[\d,]*(?:\.\d+)?(?:/\d+)?)"
    r"\s*(?:[a-zA-Z°%]+)?\s*[.!]?\s*$",
    re.DOTALL,
)
_INLINE_MATH = re.compile(r"\$\$(.+?)\$\$|\$([^$]+)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
    "eighteen nineteen twenty".split())}
# Closing remarks ("I think that's the answer.") often follow the stated answer: the fallbacks
# look at this many last paragraphs, the last one first.
FALLBACK_PARAGRAPHS = 3


def final_part(completion: str, delimiters: Delimiters | None = None) -> str:
    """The text after the reasoning (the whole completion when it has no closing tag)."""
    parts = split_completion(completion, delimiters)
    return parts.answer if parts.closes else completion


def _unwrap(value: str) -> str:
    value = value.strip().strip("$").strip()
    for opening, closing in (("\\(", "\\)"), ("\\[", "\\]")):
        if value.startswith(opening) and value.endswith(closing):
            value = value[len(opening):-len(closing)]
    return value.strip()


def _paragraph_answer(paragraph: str) -> str | None:
    phrases = list(_ANSWER_PHRASE.finditer(paragraph))
    if phrases:
        value = _unwrap(phrases[-1].group("value"))
        first = value.split(maxsplit=1)[0].lower().strip(",;:") if value else ""
        if first in _NUMBER_WORDS:  # "the answer is three boxes ..."
            return _NUMBER_WORDS[first]
        if value:
            return value
    conclusion = _CONCLUSION.search(paragraph)
    if conclusion and _unwrap(conclusion.group("value")):
        return _unwrap(conclusion.group("value"))
    formulas = list(_INLINE_MATH.finditer(paragraph))
    if formulas:
        value = next(g for g in formulas[-1].groups() if g is not None).strip()
        if value:
            return value
    numbers = _NUMBER.findall(paragraph)
    return numbers[-1] if numbers else None


def extract_answer(text: str, delimiters: Delimiters | None = None) -> str | None:
    """The final answer of a completion, or None.

    Looked for in the final part (after the reasoning; the whole text when it has no closing
    tag), in this order:
    1. the last `\\boxed{...}` (or `\\fbox{...}`);
    2. else in the last paragraph, then in the one before (up to `FALLBACK_PARAGRAPHS`, since
       closing remarks such as "I think that's the answer." follow the answer), the first of:
       a. the value after the last "final answer is" / "answer:" phrase (a leading number
          word, "three boxes", becomes 3);
       b. the value that ends the last sentence after "is"/"are"/"=" ("the degree of
          \\(f(x)\\) is 3."): a number, a formula or a parenthesised tuple;
       c. the last inline formula (`$...$`, `\\(...\\)`, `\\[...\\]`);
       d. the last number.
    When there is a closing tag the reasoning itself is never searched: an answer the model
    did not state after thinking is not an answer.
    """
    final = final_part(text, delimiters)
    boxed = last_boxed(final)
    if boxed:
        return boxed
    paragraphs = [p for p in re.split(r"\n\s*\n", final.strip()) if p.strip()]
    for paragraph in reversed(paragraphs[-FALLBACK_PARAGRAPHS:]):
        answer = _paragraph_answer(paragraph)
        if answer:
            return answer
    return None
