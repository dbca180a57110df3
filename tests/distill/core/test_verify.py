"""The answer checker shared by filter and eval: extraction, math-verify in killable workers, code."""

from __future__ import annotations

import functools
import time

import pytest

from distill.core.records import Trace
from distill.core.verify import VerifyOptions, check_math, extract_answer, grade
from distill.core.workers import Failure, WorkerPool, map_items


def trace(completion: str, answer: str | None = "14", index: int = 0, **extra) -> Trace:
    return Trace(problem_id="p", id=f"p#{index}", sample_index=index, problem="What is 7+7?", answer=answer,
                 completion=completion, **extra)


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("<think>maybe \\boxed{3}</think>\n\nSo \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("<think>\\boxed{3}</think>\n\nThe final answer is $7$.", "7"),
        ("<think>x</think>\n\nWe get $x = 5$ in the end", "x = 5"),
        ("<think>x</think>\n\nIt is 12 apples.\n\nSo we have 13", "13"),
        ("<think>only \\boxed{3} inside</think>\n\nno answer here", None),
        ("no tags at all, \\boxed{9}", "9"),
        # closing remarks after the answer: the paragraphs before are searched (the real traces' style)
        ("So the total is 284.\n\nI think that's the final answer.", "284"),
        ("Profit: $93 - $15 = $78.\n\nEverything adds up. I think that's the right answer.", "78"),
        ("Therefore, the degree of \\( f(x) \\) is 3.", "3"),
        ("I think I've confirmed it. The value of \\( r \\) for \\( z = 1 + i \\) is 2.", "2"),
        ("The midpoint is (-1,6).", "(-1,6)"),
        ("Therefore, the value of \\( b \\) is indeed \\(\\frac{7}{4}\\).", "\\frac{7}{4}"),
        ("The frequency is \\(100\\) rad/s, and the damping ratio \\(\\zeta\\) is \\(0.05\\).", "0.05"),
        ("So the answer is three boxes contain neither pens nor pencils.", "3"),
    ],
)
def test_extract_answer_fallbacks(completion, expected):
    assert extract_answer(completion) == expected


def test_check_math_equivalences_and_reasons():
    options = VerifyOptions()
    assert check_math("\\frac{1}{2}", "0.5", options).passed
    assert check_math("3 \\pm 2\\sqrt{2}", "3 + 2\\sqrt{2}, 3 - 2\\sqrt{2}", options).passed
    assert check_math("\\$36", "36", options).passed
    assert check_math("\\frac{1}{4-\\omega^{2}}", "A = \\frac{1}{4-\\omega^2}, \\quad \\text{for } \\omega \\neq 2", options).passed
    wrong = check_math("14", "12", options)
    assert not wrong.passed and wrong.reason == "answer 12 != reference 14"
    assert check_math("14", None, options).reason == "no final answer found"
    assert check_math("4.03188", "4.031882", options).passed  # measured reference: relative 1e-4
    assert not check_math("0.5", "0.54", options).passed and not check_math("3", "3.0001", options).passed


def test_grade_keeps_order_with_two_workers():
    traces = [trace(f"<think>t</think>\n\n\\boxed{{{n}}}", index=n) for n in range(10, 20)]
    graded = list(grade(traces, workers=2))
    assert [t.id for t, _ in graded] == [t.id for t in traces]
    assert [v.passed for _, v in graded] == [n == 14 for n in range(10, 20)]


def test_grade_code_in_the_sandbox():
    good = "<think>t</think>\n\n```python\nprint(int(input()) * 2)\n```"
    bad = "<think>t</think>\n\n```python\nprint(int(input()) + 2)\n```"
    tests = [{"input": "3", "output": "6"}, {"input": "5", "output": "10"}]
    results = [v for _, v in grade([trace(good, None, 0, tests=tests, domain="code"), trace(bad, None, 1, tests=tests, domain="code")])]
    assert results[0].passed and not results[1].passed and results[1].reason.startswith("test 1/2: expected '6', got '5'; graded")


def test_hung_task_is_killed_and_the_pool_goes_on():
    start = time.monotonic()
    with WorkerPool(1, default_deadline_s=1.0) as pool:
        results = list(pool.imap(time.sleep, [0.01, 60, 0.01]))
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], Failure) and results[1].kind == "timeout"
    assert time.monotonic() - start < 40  # 60 s without the deadline


def test_a_hung_item_is_killed_and_the_rest_of_its_chunk_goes_on():
    with WorkerPool(2, default_deadline_s=1.0) as pool:
        chunks = list(pool.imap_chunks(functools.partial(map_items, str), [[1, 2, 3], ["60", 4, "60"], [5]]))
    assert chunks == [["1", "2", "3"], ["60", "4", "60"], ["5"]]
    with WorkerPool(1, default_deadline_s=1.0) as pool:  # results before a kill are kept, items after it run
        (chunk,) = pool.imap_chunks(functools.partial(map_items, time.sleep), [[0.01, 60, 0.02, 60, 0.03]])
    assert chunk[0] is None and chunk[2] is None and chunk[4] is None
    assert all(isinstance(chunk[i], Failure) and chunk[i].kind == "timeout" for i in (1, 3))


def test_memory_explosion_is_a_failure_not_a_crash():
    with WorkerPool(1, memory_mb=512) as pool:
        results = list(pool.imap(bytearray, [8 * 1024**3, 10]))
    assert isinstance(results[0], Failure) and "memory" in results[0].detail
    assert results[1] == bytearray(10)


def test_math_verify_blowup_becomes_a_timeout_verdict():
    # 9^9^9^9 makes sympy compute a gigantic power in C, which SIGALRM cannot interrupt.
    blowup = trace("<think>t</think>\n\n\\boxed{9^{9^{9^{9}}}}", answer="9^{9^{9^{9}}}+1")
    start = time.monotonic()
    (_, verdict), = grade([blowup], timeout=2)
    assert not verdict.passed and time.monotonic() - start < 45
