"""THE answer checker: the `correctness` filter rule and the `eval` stage both grade with it.

Math (and any record with a reference answer): the final answer is taken from the part after
the reasoning (see `extract_answer` for the order of fallbacks) and compared with the
reference by an exact match after light normalisation, then by math-verify (reference
first: its comparison is asymmetric). Code (a record with `tests`): the last fenced Python
block of the final answer runs against the tests in `distill.sandbox`.

math-verify runs in worker processes (`distill.workers`) with a memory cap and a hard
wall-clock kill: a hang or an explosion becomes a failed verdict with a reason, never a
stuck run.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator

from pydantic import BaseModel, ConfigDict, Field

from distill.answers import DELIMITER_PRESETS, Delimiters, last_boxed, split_completion
from distill.records import Trace, Verdict
from distill.workers import Failure, WorkerPool, set_deadline


class VerifyOptions(BaseModel):
    """How answers are checked (shared by `filter`'s correctness rule and by `eval`)."""

    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(default=10.0, gt=0, description="Seconds one math verification may take before its worker is killed.")
    memory_mb: int = Field(default=4096, ge=256, description="Address-space cap of a verification worker, in MiB.")
    float_rounding: int = Field(default=6, ge=0, description="Decimal places math-verify rounds floats to.")
    code_timeout: float = Field(default=5.0, gt=0, description="Wall-clock seconds per code test case.")
    code_memory_mb: int = Field(default=1024, ge=64, description="Address-space cap of a sandboxed program, in MiB.")


# ---------------------------------------------------------------------------- extraction

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


# ---------------------------------------------------------------------------- checking

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


_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)


def extract_program(final: str) -> str | None:
    """The last fenced Python block of the final answer (else the last fenced block of any kind)."""
    blocks = _FENCE.findall(final)
    python = [code for lang, code in blocks if lang.lower() in ("python", "py", "python3")]
    chosen = python or [code for _lang, code in blocks]
    return chosen[-1] if chosen else None


def check_code(trace: Trace, options: VerifyOptions, delimiters: Delimiters | None = None) -> Verdict:
    from distill.sandbox import Limits, run_tests

    program = extract_program(final_part(trace.completion, delimiters))
    if program is None:
        return Verdict(passed=False, reason="no fenced code block in the final answer", score=0.0)
    cases = len(trace.tests) if isinstance(trace.tests, list) else 1
    set_deadline(cases * (options.code_timeout + 2) + 10)
    limits = Limits(wall_s=options.code_timeout, cpu_s=options.code_timeout, memory_mb=options.code_memory_mb)
    result = run_tests(program, trace.tests, limits)
    return Verdict(passed=result.passed, reason=result.reason, score=result.fraction)


def check(trace: Trace, options: VerifyOptions | None = None, delimiters: Delimiters | None = None) -> Verdict:
    """Grade one trace: code against its tests, anything else against its reference answer."""
    options = options or VerifyOptions()
    if trace.tests:
        return check_code(trace, options, delimiters)
    if trace.answer is None or not str(trace.answer).strip():
        return Verdict(passed=False, reason="no reference answer to check against", score=None)
    return check_math(str(trace.answer), extract_answer(trace.completion, delimiters), options)


def failure_verdict(failure: Failure, options: VerifyOptions) -> Verdict:
    """The verdict for a check whose worker was killed or died."""
    if failure.kind == "timeout":
        return Verdict(passed=False, reason=f"verifier timed out (killed after {options.timeout:g}s)", score=0.0)
    return Verdict(passed=False, reason=f"verifier failed: {failure.detail}", score=0.0)


def _check_one(trace: Trace, options: VerifyOptions, delimiters: Delimiters | None) -> Verdict:
    return check(trace, options, delimiters)


def grade(
    traces: Iterable[Trace],
    workers: int = 1,
    timeout: float | None = None,
    delimiters: str | Delimiters | None = None,
    options: VerifyOptions | None = None,
) -> Iterator[tuple[Trace, Verdict]]:
    """Grade traces in worker processes; yields (trace, verdict) in input order, streaming.

    `timeout` overrides `options.timeout`; `delimiters` is a preset name ("r1", "sky-t1") or a
    `Delimiters`. The same logic as the `correctness` filter rule.
    """
    options = options or VerifyOptions()
    if timeout is not None:
        options = options.model_copy(update={"timeout": timeout})
    if isinstance(delimiters, str):
        delimiters = DELIMITER_PRESETS[delimiters]
    task = functools.partial(_check_one, options=options, delimiters=delimiters)
    pending: list[Trace] = []

    def feed() -> Iterator[Trace]:
        for trace in traces:
            pending.append(trace)
            yield trace

    with WorkerPool(workers, memory_mb=options.memory_mb) as pool:
        for verdict in pool.imap(task, feed()):
            trace = pending.pop(0)
            if isinstance(verdict, Failure):
                verdict = failure_verdict(verdict, options)
            yield trace, verdict
