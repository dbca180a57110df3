"""Math answers: light normalisation for an exact match, then math-verify (reference first: its
comparison is asymmetric), in a worker whose deadline is announced before the risky call.

A reference with several parts (`distill.core.verify.parts`, where the rule and its reasons are
written down) is compared part by part, each part with the same single-answer comparison, and
`check_answer` reads the final answer every way `extract.answer_readings` offers until one
matches; a single-part reference keeps the single-answer reading (`extract_answer`)."""

from __future__ import annotations

import re

from distill.core.r1_format import Delimiters
from distill.core.records import Verdict
from distill.core.verify.extract import answer_readings, extract_answer
from distill.core.verify.options import VerifyOptions
from distill.core.verify.parts import Shape, labels_match, match_parts, predicted_parts, reference_shape
from distill.core.workers import set_deadline

_NORMALISE = [
    (re.compile(r"\\\$"), ""),  # an escaped dollar sign ("\$36") is a currency mark, not math
    (re.compile(r"\\(?:left|right|displaystyle|!|,|;|:|quad|qquad)(?![a-zA-Z])"), ""),
    (re.compile(r"\\[dt]frac"), r"\\frac"),
    (re.compile(r"([_^])\{(\w)\}"), r"\1\2"),  # x_{1} is x_1, x^{2} is x^2 (one character: x_{12} is not x_12)
    (re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox)\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\^\{?\\circ\}?|°"), ""),
    (re.compile(r"\\%|%"), ""),
    (re.compile(r"[\s$]|\\ "), ""),
]


def normalise(answer: str) -> str:
    """Light, safe normalisation for the exact-match shortcut (never makes unequal things equal)."""
    text = answer
    for pattern, replacement in _NORMALISE:
        text = pattern.sub(replacement, text)
    return text.rstrip(".").lower()


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# "A = x, \quad \text{for } y \neq 2": what follows \quad or a \text{for/if/when} is a condition.
_CONDITION = re.compile(r"\\q?quad|\\text\{\s*(?:for|if|when|where)\b")


def _as_math(text: str) -> str:
    text = text.replace("\\$", "")
    if "$" in text or "\\boxed" in text or "\\(" in text or "\\[" in text:
        return text
    return f"${text}$"


_DECIMAL = re.compile(r"-?\d+\.\d+|-?\d+")
RELATIVE_TOLERANCE = 1e-4


def _close_decimals(reference: str, predicted: str) -> bool:
    """4.031882 for a reference of 4.03188: a measured (non-integer) reference is matched within a
    relative 1e-4, as graders of physics answers do; integers stay exact (math-verify)."""
    ref, pred = normalise(reference).replace(",", ""), normalise(predicted).replace(",", "")
    if "." not in ref or not _DECIMAL.fullmatch(ref) or not _DECIMAL.fullmatch(pred):
        return False
    return abs(float(pred) - float(ref)) <= RELATIVE_TOLERANCE * abs(float(ref))



def _same(reference: str, predicted: str, options: VerifyOptions) -> bool:
    """One value against one value: exact after normalisation, decimal tolerance, math-verify."""
    if normalise(predicted) == normalise(reference) or _close_decimals(reference, predicted):
        return True
    from math_verify import parse, verify

    # math-verify's own SIGALRM timeouts are the soft layer; the worker's kill is the hard one.
    soft = max(1, int(options.timeout / 3))
    set_deadline(options.timeout)
    gold = parse(_as_math(reference), parsing_timeout=soft)
    pred = parse(_as_math(predicted), parsing_timeout=soft)
    return bool(gold) and bool(pred) and verify(gold, pred, float_rounding=options.float_rounding, timeout_seconds=soft)


def _verdict(passed: bool, reference: str, predicted: str, detail: str = "") -> Verdict:
    relation = "=" if passed else "!="
    detail = f" ({detail})" if detail else ""
    return Verdict(passed=passed, reason=f"answer {_short(predicted)} {relation} reference {_short(reference)}{detail}",
                   score=float(passed))


def _check_parts(reference: str, shape: Shape, predicted: str, options: VerifyOptions) -> Verdict:
    answer = predicted_parts(predicted, shape)
    passed, how = match_parts(shape, answer, lambda ref, pred: _same(ref, pred, options))
    return _verdict(passed, reference, predicted, how)


def check_math(reference: str, predicted: str | None, options: VerifyOptions) -> Verdict:
    """Compare an extracted answer with the reference (exact after normalisation, then math-verify;
    part by part when the reference has several parts)."""
    if predicted is None:
        return Verdict(passed=False, reason="no final answer found", score=0.0)
    shape = reference_shape(reference)
    if shape is not None and not shape.is_tuple:
        if normalise(predicted) == normalise(reference):
            return _verdict(True, reference, predicted)
        return _check_parts(reference, shape, predicted, options)
    if shape is not None and labels_match(shape.parts, predicted_parts(predicted, shape)):
        return _check_parts(reference, shape, predicted, options)  # (x, y) = (1, 2): the labels decide
    whole = _CONDITION.split(predicted, 1)[0].strip().rstrip(",")
    verdict = _verdict(_same(reference, whole, options), reference, whole)
    if verdict.passed or shape is None:
        return verdict
    # one tuple: the whole comparison failed (it also knows open intervals); now part by part
    return _check_parts(reference, shape, predicted, options)


def check_answer(reference: str, completion: str, options: VerifyOptions, delimiters: Delimiters | None = None) -> Verdict:
    """Grade a completion's final answer: the single-answer reading; against a reference with
    several parts, every reading of the final answer as parts until one matches (the verdict of
    the preferred reading when none does)."""
    single = extract_answer(completion, delimiters)
    if reference_shape(reference) is None:
        return check_math(reference, single, options)
    preferred = extract_answer(completion, delimiters, reference=reference)
    readings = dict.fromkeys(r for r in (preferred, single, *answer_readings(completion, delimiters)) if r)
    verdicts = []
    for reading in readings:
        verdict = check_math(reference, reading, options)
        if verdict.passed:
            return verdict
        verdicts.append(verdict)
    return verdicts[0] if verdicts else check_math(reference, None, options)
