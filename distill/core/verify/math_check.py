"""Math answers: light normalisation for an exact match, then math-verify (reference first: its
comparison is asymmetric), in a worker whose deadline is announced before the risky call."""

from __future__ import annotations

import re

from distill.core.records import Verdict
from distill.core.verify.options import VerifyOptions
from distill.core.workers import set_deadline

_NORMALISE = [
    (re.compile(r"\\\$"), ""),  # an escaped dollar sign ("\$36") is a currency mark, not math
    (re.compile(r"\\(?:left|right|displaystyle|!|,|;|:|quad|qquad)(?![a-zA-Z])"), ""),
    (re.compile(r"\\[dt]frac"), r"\\frac"),
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



def check_math(reference: str, predicted: str | None, options: VerifyOptions) -> Verdict:
    """Compare an extracted answer with the reference (exact after normalisation, then math-verify)."""
    if predicted is None:
        return Verdict(passed=False, reason="no final answer found", score=0.0)
    predicted = _CONDITION.split(predicted, 1)[0].strip().rstrip(",")
    if normalise(predicted) == normalise(reference) or _close_decimals(reference, predicted):
        return Verdict(passed=True, reason=f"answer {_short(predicted)} = reference {_short(reference)}", score=1.0)
    from math_verify import parse, verify

    # math-verify's own SIGALRM timeouts are the soft layer; the worker's kill is the hard one.
    soft = max(1, int(options.timeout / 3))
    set_deadline(options.timeout)
    gold = parse(_as_math(reference), parsing_timeout=soft)
    pred = parse(_as_math(predicted), parsing_timeout=soft)
    equal = bool(gold) and bool(pred) and verify(gold, pred, float_rounding=options.float_rounding, timeout_seconds=soft)
    if equal:
        return Verdict(passed=True, reason=f"answer {_short(predicted)} = reference {_short(reference)}", score=1.0)
    return Verdict(passed=False, reason=f"answer {_short(predicted)} != reference {_short(reference)}", score=0.0)
