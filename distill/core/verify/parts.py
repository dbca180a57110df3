r"""Answers with several parts: when a reference has them, how they are read and matched.

A reference has several parts when, outside any bracket, it lists them: separated by commas,
semicolons, `\quad`, "and" / "or" (as words, inside `\text{}`, or between formulas:
`4$ and $6$ and $9`); or it is one set (`\{2, 5, 11\}`, `x \in \{2, 5, 11\}`); or a part holds
one `\pm` (two parts); or it is one parenthesised tuple (`(2, 9)`, `(x, y) = (1, 2)`), whose
components are its parts. Every other reference is single-part and keeps the single-answer
reading (`extract_answer`: the last box, compared whole): an interval `[1, 3)`, a union, a
number with thousands separators (`10,000`, `10,\!000`, never split: a digit run is a number
when its groups after the first have three digits) and an earlier boxed intermediate value
stay as they were. Why: most answers are one value, and splitting them (or reading every box)
would turn intermediate values and intervals into parts.

Against a reference with several parts, the final answer is read as a list of parts (every
box of the final answer section, a label written before a box included; see
`extract.answer_readings`), each box or formula split the same way as the reference, and
- sets and `\pm` are expanded on both sides (`\{1 \pm \sqrt 5, -2\}` has three parts);
- labels (`x =`, `a_3 =`, `b_{12} =`, `f(x) =`, `(x, y) =`, `\text{Area} =`, `x \in`) are read
  on both sides; an unlabelled part after a labelled one inherits its label (`(m, n) = (2, 9)
  and (9, 2)`, `x = 1, 2`). When both sides label every part with the same labels (compared
  without spaces and braces: `b_{12}` is `b_12`), parts are matched label to label: a label
  the answer writes is a claim, and `b_{12} = 4, b_2 = 7` fails against `b_2 = 4, b_{12} = 7`.
  Otherwise labels are dropped on both sides and only values are compared;
- order: a reference that lists alternatives (unlabelled parts, a set, `\pm`, one label
  repeated, or a numbered family `x_1, x_2, ...` of one letter, which names interchangeable
  solutions such as roots) is compared as an unordered collection, each part matched once;
  one tuple, or parts with distinct labels (`p = 13, q = 4`: a system's unknowns), are
  compared in order once labels are dropped (`13, 4` passes, `4, 13` does not);
- a missing or an extra part fails, except that alternatives compare as sets: a value written
  twice on either side (`\{1, 1, 2\}` against `1, 2`) counts once (each part must equal one of
  the other side's, both ways); values are compared by the single-answer checker
  (`math_check`), so each part gets the exact match, the decimal tolerance and math-verify.
  math-verify never compares the whole lists (it reads a list as a set: `4, 13` would equal
  `p = 13, q = 4`). The readings of the final answer (every box, the trailing run of boxes,
  the last box; without a box, the sentence's value and its run of formulas) are tried in
  turn, and one that matches passes: each is a whole answer, all of whose parts must match.
A one-tuple reference may be an open interval, `(2, 9)`: the single-answer comparison runs
first and the part-wise one only when it fails (math-verify pairs a tuple with `y = 1, x = 2`
by position, so when both sides label every component the labels decide, part-wise, alone).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

_GREEK = ("alpha|beta|gamma|delta|epsilon|varepsilon|zeta|eta|theta|vartheta|iota|kappa|lambda|mu|nu|xi|pi|rho|sigma|"
          "tau|upsilon|phi|varphi|chi|psi|omega|Gamma|Delta|Theta|Lambda|Xi|Pi|Sigma|Phi|Psi|Omega")
# One named quantity: a letter, a Greek letter, AB, \text{Area}, \angle ABC; primes, a subscript, arguments (f(x)).
_NAME = (rf"(?:[A-Z]{{2,3}}|[A-Za-z]|\\(?:{_GREEK})(?![A-Za-z])|\\(?:text|mathrm|operatorname)\{{[A-Za-z ]+\}}"
         r"|\\angle\s*[A-Z]{1,3})'*(?:_\s*(?:\{[^{}]*\}|[A-Za-z0-9]))?(?:\s*\([^()=]*\))?")
LABEL = rf"(?:{_NAME}|\(\s*{_NAME}(?:\s*,\s*{_NAME})+\s*\))"
_LABELLED = re.compile(rf"\s*(?P<label>{LABEL})\s*(?:=|\\in(?![A-Za-z]))\s*(?P<value>.+?)\s*", re.DOTALL)

_MATH_MARKS = re.compile(r"\\\$|\\left\.|\\right\.|\\(?:left|right|[bB]igg?[lr]?)(?![A-Za-z])|\\[()\[\]]|\$")
# A digit run whose later groups have three digits is one number (10,000; 11,\! 111,\! 100; 10{,}000).
_THOUSANDS = re.compile(r"(?<![\d.])\d{1,3}(?:(?:,(?:\\!\s*)?|\{,\}|\\,)\d{3})+(?!\d|,\d)")
_TEXT = r"\\(?:text|textrm|mathrm|mbox|textbf|textit)\s*\{"
_SEPARATOR = re.compile(
    rf"(?:[,;]|\\q?quad(?![A-Za-z])|\\\\|{_TEXT}\s*(?:,\s*(?:and|or)?|and|or)\s*,?\s*\}}|(?<![A-Za-z\\])(?:and|or)(?![A-Za-z]))\s*"
)
_SPACING = re.compile(r"\\[,;:! ]|~")  # LaTeX spacing around a part
_SPACING_MARKS = ("\\,", "\\;", "\\:", "\\!", "~", "\\")  # at its end ("\\ " has lost its space)
_COMMAND = re.compile(r"\\(?:[A-Za-z]+|.)", re.DOTALL)
_OPEN, _CLOSE = {"(", "[", "{", "\\{", "\\langle", "\\begin"}, {")", "]", "}", "\\}", "\\rangle", "\\end"}
_CONDITION = re.compile(rf"{_TEXT}\s*(?:for|if|when|where|with)\b.*", re.DOTALL)
_PLUS_MINUS = re.compile(r"\\pm(?![A-Za-z])|\\mp(?![A-Za-z])|±|∓")
_MAX_MATCHED = 12  # above this many parts, compare in order only (an unordered match costs n² checks)


@dataclass(frozen=True)
class Part:
    value: str
    label: str | None = None  # normalised: no spaces or braces


@dataclass(frozen=True)
class Shape:
    """A reference with several parts: its parts, and whether they are compared in order."""

    parts: tuple[Part, ...]
    ordered: bool
    is_tuple: bool = False  # one tuple (may be an open interval): the whole comparison runs first


def _clean(text: str) -> str:
    text = _MATH_MARKS.sub(lambda m: " " if m.group() in ("$", "\\(", "\\)", "\\[", "\\]") else "", text)
    return " ".join(text.split())  # one space per run: keeps every regex below linear


def _trimmed(piece: str) -> str:
    """A part without the spaces and LaTeX spacing commands around it."""
    piece = piece.strip()
    while True:
        if m := _SPACING.match(piece):
            piece = piece[m.end():].strip()
        elif tail := next((mark for mark in _SPACING_MARKS if piece.endswith(mark)), None):
            piece = piece[:-len(tail)].strip()
        else:
            return piece


def _token(text: str, i: int) -> str:
    """The character at i, or the whole LaTeX command starting there (`\\{` counts as a bracket)."""
    command = _COMMAND.match(text, i) if text[i] == "\\" else None
    return command.group() if command else text[i]


def _scan(text: str, on_top: Callable[[int], int | None]) -> None:
    """Walk `text` tracking bracket depth (a thousands-separated number is one token); at depth 0,
    `on_top(i)` may return a position to jump to."""
    skip = {m.start(): m.end() for m in _THOUSANDS.finditer(text)}
    depth = i = 0
    while i < len(text):
        if i in skip:
            i = skip[i]
            continue
        if depth == 0:
            jump = on_top(i)
            if jump is not None:
                i = jump
                continue
        token = _token(text, i)
        depth += (token in _OPEN) - (token in _CLOSE and depth > 0)
        i += len(token)


def split_parts(text: str) -> list[str]:
    """The parts a text lists outside brackets (see the module docstring), math delimiters removed."""
    text = _clean(text)
    wrapper = re.match(_TEXT, text)
    inner = _enclosed(text, wrapper.group(), "}") if wrapper else None
    if inner is not None:  # \text{(3, 1) and (7, 4)}: words around the whole answer
        return split_parts(inner)
    cuts: list[tuple[int, int]] = []

    def separator(i: int) -> int | None:
        m = _SEPARATOR.match(text, i)
        if m:
            cuts.append((i, m.end()))
            return m.end()
        return None

    _scan(text, separator)
    bounds = [0] + [p for cut in cuts for p in cut] + [len(text)]
    pieces = (_trimmed(text[bounds[k]:bounds[k + 1]]) for k in range(0, len(bounds), 2))
    return [piece for piece in pieces if piece]


def _balanced(text: str) -> bool:
    """Whether every bracket of `text` closes one opened inside it."""
    depth = i = 0
    while i < len(text):
        token = _token(text, i)
        depth += (token in _OPEN) - (token in _CLOSE)
        if depth < 0:
            return False
        i += len(token)
    return depth == 0


def _enclosed(value: str, opening: str, closing: str) -> str | None:
    """The inside of `value` when one `opening ... closing` pair encloses all of it."""
    if value.startswith(opening) and value.endswith(closing) and len(value) >= len(opening) + len(closing):
        inner = value[len(opening):-len(closing)]
        return inner if _balanced(inner) else None
    return None


def label_key(label: str) -> str:
    label = re.sub(r"\\(?:text|mathrm|operatorname)\{([^{}]*)\}", r"\1", label)
    return re.sub(r"[\s{}]", "", label)


def _labelled(piece: str) -> tuple[str | None, str]:
    m = _LABELLED.fullmatch(piece)
    return (label_key(m.group("label")), m.group("value")) if m else (None, piece)


def _expanded(value: str, label: str | None) -> list[Part]:
    """Sets become their elements, one `\\pm` two values."""
    inner = _enclosed(value, "\\{", "\\}")
    if inner is None:  # {2, 5, 11}: braces written for a set
        inner = _enclosed(value, "{", "}")
    if inner is not None:
        return [p for element in split_parts(inner) for p in _expanded(*_inherit(_labelled(element), label))]
    if len(_PLUS_MINUS.findall(value)) == 1:
        return [Part(re.sub(r"^\s*\+\s*", "", _PLUS_MINUS.sub(sign, value)), label) for sign in ("+", "-")]
    return [Part(value, label)]


def _inherit(labelled: tuple[str | None, str], label: str | None) -> tuple[str, str | None]:
    own, value = labelled
    return value, own or label


def read_parts(text: str) -> list[Part]:
    """A text as a list of labelled parts (labels inherited, sets and `\\pm` expanded)."""
    parts: list[Part] = []
    label = None
    for piece in split_parts(text):
        piece = _CONDITION.sub("", piece).strip()
        if piece:
            value, label = _inherit(_labelled(piece), label)
            parts.extend(_expanded(value, label))
    return parts


def _components(part: Part) -> list[Part] | None:
    """The components of a tuple `(a, b, ...)`, labelled by a tuple label of the same arity."""
    inner = _enclosed(part.value.strip(), "(", ")")
    values = split_parts(inner) if inner is not None else []
    if len(values) < 2:
        return None
    names = part.label[1:-1].split(",") if part.label and part.label.startswith("(") else []
    labels = names if len(names) == len(values) else [None] * len(values)
    return [Part(value, label) for value, label in zip(values, labels, strict=True)]


def _numbered_family(labels: list[str]) -> bool:
    """x_1, x_2, ..., x_n: one letter numbered from 1 (interchangeable solutions, such as roots)."""
    found = [re.fullmatch(r"(.+?)_(\d+)", label) for label in labels]
    return all(found) and len({m.group(1) for m in found}) == 1 and sorted(int(m.group(2)) for m in found) == list(
        range(1, len(labels) + 1))


@functools.lru_cache(maxsize=4096)  # one reference is asked about several times per check
def reference_shape(reference: str) -> Shape | None:
    """The parts of a reference with several, or None for a single-part reference."""
    parts = read_parts(reference)
    if len(parts) == 1:
        components = _components(parts[0])
        return Shape(tuple(components), ordered=True, is_tuple=True) if components else None
    if len(parts) < 2:
        return None
    labels = [p.label for p in parts]
    distinct = all(labels) and len(set(labels)) == len(labels) and not _numbered_family(labels)
    return Shape(tuple(parts), ordered=distinct)


def predicted_parts(text: str, shape: Shape) -> list[Part]:
    """An answer's parts, read like the reference's (one tuple is split when the reference is ordered)."""
    parts = read_parts(text)
    if shape.ordered and len(parts) == 1 and len(shape.parts) > 1:
        components = _components(parts[0])
        if components and len(components) == len(shape.parts):
            return components
    return parts


def _perfect_matching(size: int, fits: Callable[[int, int], bool]) -> bool:
    """Whether every reference part i can be paired with its own answer part j (Kuhn's algorithm)."""
    owner: dict[int, int] = {}

    def place(i: int, seen: set[int]) -> bool:
        for j in range(size):
            if j not in seen and fits(i, j):
                seen.add(j)
                if j not in owner or place(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return all(place(i, set()) for i in range(size))


def labels_match(reference: tuple[Part, ...] | list[Part], answer: list[Part]) -> bool:
    """Both sides label every part, with the same labels: parts are then matched label to label."""
    parts = (*reference, *answer)
    return bool(parts) and all(p.label for p in parts) and Counter(p.label for p in reference) == Counter(p.label for p in answer)


def match_parts(shape: Shape, answer: list[Part], equal: Callable[[str, str], bool]) -> tuple[bool, str]:
    """(whether the answer's parts match the reference's, how they were compared)."""
    ref = shape.parts
    cache: dict[tuple[int, int], bool] = {}

    def same(i: int, j: int) -> bool:
        if (i, j) not in cache:
            cache[i, j] = equal(ref[i].value, answer[j].value)
        return cache[i, j]

    if len(answer) != len(ref):
        if shape.ordered or not answer or max(len(answer), len(ref)) > _MAX_MATCHED:
            return False, f"{len(answer)} part{'s' * (len(answer) != 1)} vs {len(ref)}"
        # alternatives are a set: a value written twice (`\{1, 1, 2\}`) is one element
        covered = all(any(same(i, j) for j in range(len(answer))) for i in range(len(ref)))
        return covered and all(any(same(i, j) for i in range(len(ref))) for j in range(len(answer))), (
            f"{len(answer)} parts vs {len(ref)}, as sets")
    if labels_match(ref, answer):
        how, fits = "by label", lambda i, j: ref[i].label == answer[j].label and same(i, j)
    elif shape.ordered or len(ref) > _MAX_MATCHED:
        return all(same(i, i) for i in range(len(ref))), f"{len(ref)} parts, in order"
    else:
        how, fits = "any order", same
    return _perfect_matching(len(ref), fits), f"{len(ref)} parts, {how}"


def joined(parts: list[str]) -> str:
    return ", ".join(p.strip() for p in parts if p.strip())
