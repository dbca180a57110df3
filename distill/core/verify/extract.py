"""The final answer of a completion: the part after the reasoning, its last box, or the fallbacks
`extract_answer` lists (used by the checker, the majority vote, `eval` and `inspect`); against a
reference with several parts, the final answer read as a list of parts (`answer_readings`; the
rule is in `distill.core.verify.parts`)."""

from __future__ import annotations

import re

from distill.core.r1_format import Delimiters, boxed_spans, last_boxed, split_completion
from distill.core.verify.parts import LABEL, joined, predicted_parts, reference_shape

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


def extract_answer(text: str, delimiters: Delimiters | None = None, reference: str | None = None,
                   every_part: bool = False) -> str | None:
    """The final answer of a completion, or None.

    With a `reference` that has several parts (`parts.reference_shape`), the final answer read
    as a list of parts: the first of `answer_readings` with as many parts as the reference
    (else the first), its parts joined by ", ". With `every_part` and no such reference (the
    majority vote has none to go by), the trailing run of boxes (the last box and those only
    connectives separate from it: `\\boxed{2} and \\boxed{5}` is "2, 5"). Otherwise, and when
    there is no box for `every_part`, the single-answer reading:

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
    shape = reference_shape(reference) if reference else None
    if shape is not None:
        readings = answer_readings(text, delimiters)
        fitting = [r for r in readings if len(predicted_parts(r, shape)) == len(shape.parts)]
        return (fitting or readings or [None])[0]
    final = final_part(text, delimiters)
    boxes = _boxes(final) if every_part else []
    if boxes:
        return joined([box for _, _, box in _trailing_run(boxes, final)])
    boxed = last_boxed(final)
    if boxed:
        return boxed
    paragraphs = [p for p in re.split(r"\n\s*\n", final.strip()) if p.strip()]
    for paragraph in reversed(paragraphs[-FALLBACK_PARAGRAPHS:]):
        answer = _paragraph_answer(paragraph)
        if answer:
            return answer
    return None


# ---------------------------------------------------------------------------- several parts

# Between two boxes (or formulas) of one answer: only punctuation, math delimiters, spacing,
# "and"/"or" (bare or in \text{}), line breaks and the next part's label (`$ and $f_2 = `).
_CONNECTIVE = re.compile(
    rf"(?:\s|[$,;.:&*]|\\[()\[\]]|\\q?quad(?![A-Za-z])|\\\\|\\[,;:! ]|\\(?:text|textrm|mathrm|mbox|textbf)\s*\{{\s*,?\s*(?:and|or)?\s*,?\s*\}}"
    rf"|(?<![A-Za-z])(?:and|or)(?![A-Za-z])|\n\s*(?:[-•]|\d{{1,2}}[.)])(?=\s)|{LABEL}\s*=)*"
)
_MAX_GAP = 200
# A label written just before a box: `$f_1 = \boxed{...}$`, `and x_2 = \boxed{...}`, `we get p = \boxed{13}`.
_LABEL_BEFORE = re.compile(rf"(?P<label>{LABEL})\s*=\s*$")
_LABEL_BOUNDARY = re.compile(r"(?:^|[$,;:(.*]|\\[(\[]|\\q?quad|\\\\|\\(?:text|textrm|mathrm|mbox)\{[^{}]*\}|(?:^|\s)[A-Za-z]{2,})$")


def _labelled_box(before: str, content: str) -> str:
    """The box's content, preceded by the label written right before it, if any."""
    m = _LABEL_BEFORE.search(before[-120:])
    if m and _LABEL_BOUNDARY.search(before[-120:][:m.start()].rstrip()):
        return f"{m.group('label').strip()} = {content}"
    return content


def _boxes(final: str) -> list[tuple[int, int, str]]:
    """The boxes of the final answer section, each with the label written right before it."""
    spans = boxed_spans(final)
    return [(start, end, _labelled_box(final[spans[k - 1][1] if k else 0:start], content))
            for k, (start, end, content) in enumerate(spans)]


def _trailing_run(spans: list[tuple[int, int, str]], text: str) -> list[tuple[int, int, str]]:
    """The last span and the ones before it that only connective text separates from it."""
    run = spans[-1:]
    for previous in reversed(spans[:-1]):
        gap = text[previous[1]:run[0][0]]
        if len(gap) > _MAX_GAP or not _CONNECTIVE.fullmatch(gap):
            break
        run.insert(0, previous)
    return run


def _formula_spans(text: str) -> list[tuple[int, int, str]]:
    spans = []
    for m in _INLINE_MATH.finditer(text):
        value = next(g for g in m.groups() if g is not None).strip()
        if value:
            spans.append((m.start(), m.end(), value))
    return spans


def answer_readings(text: str, delimiters: Delimiters | None = None) -> list[str]:
    """Ways to read the final answer as a list of parts, preferred first, without repeats.

    With boxes: every box of the final answer section (only when the reasoning is closed: the
    reasoning's boxes are not answers), then the trailing run of boxes (the last one and those
    only connectives separate from it: an earlier intermediate box drops out), then the last
    box alone (the single-answer reading). Without boxes: the single-answer fallback (`The
    final answer is $30,12,8$`), then the trailing run of formulas of the last paragraphs
    (`the values are $4$, $6$, and $9$`). A label written right before a box belongs to it.
    """
    parts = split_completion(text, delimiters)
    final = parts.answer if parts.closes else text
    boxes = _boxes(final)
    readings: list[str | None] = []
    if boxes:
        if parts.closes:
            readings.append(joined([box for _, _, box in boxes]))
        readings += [joined([box for _, _, box in _trailing_run(boxes, final)]), last_boxed(final)]
    else:
        readings.append(extract_answer(text, delimiters))
        paragraphs = [p for p in re.split(r"\n\s*\n", final.strip()) if p.strip()]
        for paragraph in reversed(paragraphs[-FALLBACK_PARAGRAPHS:]):
            formulas = _formula_spans(paragraph)
            if formulas:
                readings.append(joined([value for _, _, value in _trailing_run(formulas, paragraph)]))
                break
    return list(dict.fromkeys(r for r in readings if r))
