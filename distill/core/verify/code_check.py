"""Code answers: the program of the final answer, run against the record's tests in the sandbox.

Which code is graded, when the final answer has several blocks (a solution, then "Example usage"):
- function tests (call, assert): the last block that defines the tested functions (the entry
  point, or the functions the asserts call), counting methods of a class (LeetCode's `Solution`);
- stdin tests: the last complete program, i.e. the last block that reads stdin, does something
  when run (not only definitions) and defines every function it calls; else the last block that
  does something when run;
- otherwise the last block that compiles, else the last block.
A chosen block that calls functions only other blocks define gets their definitions (and those
blocks' imports) in front of it, never their statements. Python-tagged and untagged blocks are
considered (other languages only when there is nothing else). The verdict's reason says which
block was graded.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from distill.core.code_test_formats import called_names
from distill.core.r1_format import Delimiters
from distill.core.records import Trace, Verdict
from distill.core.verify.extract import final_part
from distill.core.verify.options import VerifyOptions
from distill.core.workers import set_deadline

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_READS_STDIN = re.compile(r"\binput\s*\(|\bstdin\b|\bopen\s*\(\s*0\b|\bfileinput\b")
_PYTHON = ("python", "py", "python3", "")
_SETUP_CALLS = {"setrecursionlimit", "stack_size", "set_int_max_str_digits", "seed"}  # calls that do not run a program
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


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
        if isinstance(node, _DEFINITIONS):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names |= {n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        if isinstance(node, ast.Assign):  # f = lambda ...: ...
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _acts(tree: ast.Module) -> bool:
    """Does running the block do something (call anything but setup) outside its definitions?"""
    for statement in tree.body:
        if isinstance(statement, (*_DEFINITIONS, ast.Import, ast.ImportFrom)):
            continue
        for node in ast.walk(statement):
            if isinstance(node, ast.Call):
                callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if callee not in _SETUP_CALLS:
                    return True
    return False


def _setup(node: ast.stmt) -> bool:
    """`sys.setrecursionlimit(...)` and the like: lent along with definitions."""
    call = node.value if isinstance(node, ast.Expr) else None
    return isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr in _SETUP_CALLS


def _borrow(index: int, blocks: list[str], trees: list[ast.Module | None]) -> tuple[str, list[int]]:
    """The block's code, preceded by the definitions (and imports) of other blocks that it calls but lacks."""
    code, lent = blocks[index], []
    provided = _defined(trees[index])
    missing = set(called_names(code)) - provided
    # The nearest block before this one first, then those after it.
    order = list(range(index - 1, -1, -1)) + list(range(index + 1, len(blocks)))
    pieces: list[str] = []
    while missing:
        donor = next((i for i in order if trees[i] is not None and i not in lent and missing & _defined(trees[i])), None)
        if donor is None:
            break
        lent.append(donor)
        lines = blocks[donor].splitlines()
        for node in trees[donor].body:
            if isinstance(node, (ast.Import, ast.ImportFrom)) or (isinstance(node, _DEFINITIONS) and node.name in missing) or _setup(node):
                start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
                piece = "\n".join(lines[start - 1: node.end_lineno])
                pieces.append(piece)
                if isinstance(node, _DEFINITIONS):
                    provided.add(node.name)
                    missing = (missing | set(called_names(piece))) - provided
    return ("\n\n".join(pieces) + "\n\n" + code if pieces else code), lent


def _called_builtins(code: str) -> list[str]:
    tree = _parse(code)
    calls = [node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)] if tree else []
    return list(dict.fromkeys(calls))


def choose_program(final: str, tests: dict[str, Any]) -> Program | None:
    """The code to grade against `tests` (module docstring), or None when there is none."""
    blocks = code_blocks(final)
    if not blocks:
        return None
    trees = [_parse(code) for code in blocks]
    parsed = [i for i, tree in enumerate(trees) if tree is not None]
    index, why = (parsed[-1], "the last block that compiles") if parsed else (len(blocks) - 1, "the last block")
    if tests["type"] in ("call", "assert"):
        wanted = [tests["entry_point"]] if tests.get("entry_point") else called_names(tests.get("code") or "")
        wanted = wanted or _called_builtins(tests.get("code") or "")  # MBPP's `def sum(...)`: a builtin's name under test
        scored = [(len(set(wanted) & _defined(trees[i])), i) for i in parsed]
        if wanted and scored and max(scored)[0] > 0:
            index = max(scored)[1]
            why = "defines " + ", ".join(f"{name}()" for name in wanted if name in _defined(trees[index]))
    else:
        running = [i for i in parsed if _acts(trees[i])]
        complete = [i for i in running if _READS_STDIN.search(blocks[i]) and not set(called_names(blocks[i])) - _defined(trees[i])]
        if complete:
            index, why = complete[-1], "the last complete program: it reads stdin"
        elif running:
            index, why = running[-1], "the last block that runs something"
    if trees[index] is None:
        return Program(blocks[index], index + 1, len(blocks), why)
    code, lent = _borrow(index, blocks, trees)
    if lent:
        why += ", with definitions from block " + ", ".join(str(i + 1) for i in sorted(lent))
    return Program(code, index + 1, len(blocks), why)


def check_code(trace: Trace, options: VerifyOptions, delimiters: Delimiters | None = None) -> Verdict:
    from distill.core.verify.code_tests import run_code_tests, time_budget

    tests = trace.tests or {}
    program = choose_program(final_part(trace.completion, delimiters), tests)
    if program is None:
        return Verdict(passed=False, reason="no fenced code block in the final answer", score=0.0)
    set_deadline(time_budget(tests, options.code_timeout) + 30)
    outcome = run_code_tests(program.code, tests, options.code_timeout, options.code_memory_mb, options.code_float_tolerance)
    return Verdict(passed=outcome.passed, reason=f"{outcome.reason}; {program.describe()}", score=outcome.fraction)
