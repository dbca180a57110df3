"""Code grading on the shapes correct programs take: agreement with the known verdicts.

The set: bench/data/code_shapes.jsonl, written for this project (not copied from a dataset): 26
problems in the shapes of public sets (MBPP asserts, HumanEval `check(candidate)`, LeetCode's
`class Solution` and design classes, APPS/Codeforces stdin programs), each with a right and a wrong
program. The shapes are the ones the harness once got wrong: a function named like a builtin or a
name the harness or its prelude uses, a class the tests instantiate (with or without `__init__`),
`Solution().method` entry points, programs that define `print`, `input`, `exit` or `len`, and a
`main` called under `if __name__ == "__main__"`. Each program is the final answer of an R1-style
completion and goes through `distill.core.verify.check` (real sandboxes).

Agreement: right programs kept plus wrong ones rejected, over all 52 programs; every miss is listed.
Run: python bench/bench_code_shapes.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distill.core.code_test_formats import TestsError, canonical_tests  # noqa: E402
from distill.core.records import Trace  # noqa: E402
from distill.core.verify import VerifyOptions, check  # noqa: E402


def grade(problem: dict, program: str) -> tuple[bool, str]:
    try:
        tests = canonical_tests(problem["tests"])
    except TestsError as exc:  # a checkout that cannot read the tests keeps nothing
        return False, f"tests refused: {exc}"
    trace = Trace(problem_id=problem["id"], problem=problem["shape"], id=problem["id"], sample_index=0, domain="code",
                  tests=tests, completion=f"<think>\nok\n</think>\n\n```python\n{program}```\n")
    verdict = check(trace, VerifyOptions(code_timeout=5))
    return verdict.passed, verdict.reason


def main() -> None:
    problems = [json.loads(line) for line in ROOT.joinpath("bench/data/code_shapes.jsonl").read_text().splitlines()]
    agree, misses = 0, []
    print(f"{'problem':<22} {'shape':<42} right  wrong")
    for problem in problems:
        right, right_reason = grade(problem, problem["right"])
        wrong, wrong_reason = grade(problem, problem["wrong"])
        agree += right + (not wrong)
        print(f"{problem['id']:<22} {problem['shape'][:42]:<42} {'kept' if right else 'LOST':<6} {'KEPT' if wrong else 'rejected'}")
        misses += [f"{problem['id']} right: {right_reason}"] * (not right) + [f"{problem['id']} wrong: {wrong_reason}"] * wrong
    total = 2 * len(problems)
    print(f"\nagreement: {agree}/{total} = {agree / total:.3f}")
    for miss in misses:
        print("  miss:", miss[:200])


if __name__ == "__main__":
    main()
