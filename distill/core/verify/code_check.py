"""Code answers: the program of the final answer, run against the record's tests in the sandbox.

Which code block is graded, when the final answer has several (a solution, then "Example usage"):
- function tests (call, assert): the last block that defines the tested functions (the entry
  point, or the functions the asserts call), counting methods of a class (LeetCode's `Solution`);
- stdin tests: the last complete program, i.e. the last block that compiles and reads stdin;
- otherwise the last block that compiles, else the last block.
Python-tagged and untagged blocks are considered (other languages only when there is nothing
else). The verdict's reason says which block was graded.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from distill.core.r1_format import Delimiters
from distill.core.records import Trace, Verdict
from distill.core.test_formats import called_names
from distill.core.verify.extract import final_part
from distill.core.verify.options import VerifyOptions
from distill.core.workers import set_deadline

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_READS_STDIN = re.compile(r"\binput\s*\(|\bstdin\b|\bopen\s*\(\s*0\b|\bfileinput\b")


@dataclass
class Program:
    code: str
    index: int  # 1-based, among the blocks considered
    count: int
    why: str

    def describe(self) -> str:
        if self.count == 1:
            return "graded the answer's only code block"
        return f"graded code block {self.index} of {self.count} ({self.why})"


_PYTHON = ("python", "py", "python3", "")


def code_blocks(final: str) -> list[str]:
    """The fenced Python (or untagged) blocks of the final answer, else its fenced blocks of any kind."""
    blocks = _FENCE.findall(final)
    python = [code for lang, code in blocks if lang.lower() in _PYTHON]
    return python or [code for _lang, code in blocks]


def extract_program(final: str) -> str | None:
    """The last code block of the final answer (what is graded when nothing says otherwise)."""
    blocks = code_blocks(final)
    return blocks[-1] if blocks else None


def _parse(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError):
        return None


def _defined(tree: ast.Module) -> set[str]:
    """Top-level functions and classes, and the methods of top-level classes."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names |= {n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        if isinstance(node, ast.Assign):  # f = lambda ...: ...
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def choose_program(final: str, tests: dict[str, Any]) -> Program | None:
    """The block to grade against `tests` (module docstring), or None when there is none."""
    blocks = code_blocks(final)
    if not blocks:
        return None
    count = len(blocks)
    trees = [_parse(code) for code in blocks]
    if tests["type"] in ("call", "assert"):
        wanted = [tests["entry_point"]] if tests.get("entry_point") else called_names(tests.get("code") or "")
        scored = [(len(set(wanted) & _defined(tree)), index) for index, tree in enumerate(trees) if tree is not None]
        if wanted and scored and max(scored)[0] > 0:
            _, index = max(scored)
            names = ", ".join(f"{name}()" for name in wanted if name in _defined(trees[index]))
            return Program(blocks[index], index + 1, count, f"defines {names}")
    else:
        complete = [i for i, tree in enumerate(trees) if tree is not None and _READS_STDIN.search(blocks[i])]
        if complete:
            return Program(blocks[complete[-1]], complete[-1] + 1, count, "the last complete program: it reads stdin")
    parsed = [i for i, tree in enumerate(trees) if tree is not None]
    if parsed:
        return Program(blocks[parsed[-1]], parsed[-1] + 1, count, "the last block that compiles")
    return Program(blocks[-1], count, count, "the last block")


def check_code(trace: Trace, options: VerifyOptions, delimiters: Delimiters | None = None) -> Verdict:
    from distill.core.verify.code_tests import run_code_tests, time_budget

    tests = trace.tests or {}
    program = choose_program(final_part(trace.completion, delimiters), tests)
    if program is None:
        return Verdict(passed=False, reason="no fenced code block in the final answer", score=0.0)
    set_deadline(time_budget(tests, options.code_timeout) + 30)
    outcome = run_code_tests(program.code, tests, options.code_timeout, options.code_memory_mb, options.code_float_tolerance)
    return Verdict(passed=outcome.passed, reason=f"{outcome.reason}; {program.describe()}", score=outcome.fraction)
