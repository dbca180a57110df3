"""Code tests in the formats public datasets use, read through the field mapping into the canonical
shape, validated at load (one line: file, line, field), and graded for real in the sandbox."""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import zlib

import pytest

from distill.core import code_test_formats
from distill.core.data import FieldMap, read_problems
from distill.core.errors import InputError
from distill.core.records import Trace
from distill.core.verify import check

# Rows shaped like each dataset's published card (the problems themselves are made up here).
HUMANEVAL = {
    "task_id": "Demo/0",
    "prompt": 'def add(a: int, b: int) -> int:\n    """Return a + b."""\n',
    "canonical_solution": "    return a + b\n",
    "test": "METADATA = {}\n\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-4, 4) == 0\n",
    "entry_point": "add",
}
MBPP = {
    "task_id": 7,
    "text": "Write a function to find the largest of three numbers.",
    "code": "def largest(a, b, c):\n    return max(a, b, c)",
    "test_list": ["assert largest(1, 2, 3) == 3", "assert largest(9, 2, 3) == 9", "assert math.isclose(largest(0.5, 0.25, 0), 0.5)"],
    "test_setup_code": "",
    "test_imports": ["import math"],
}
APPS_STDIN = {"question": "Read two integers, print their sum.", "input_output": json.dumps({"inputs": ["1 2\n", "5 7\n"], "outputs": ["3\n", "12\n"]})}
APPS_CALL = {"question": "Return the doubled list.", "input_output": json.dumps({"fn_name": "double", "inputs": [[[1, 2]], [[]]], "outputs": [[[2, 4]], [[]]]})}


def lcb_private(cases: list[dict]) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()


LCB_FUNCTIONAL = {
    "question_content": "Given nums and k, return the sum of nums plus k.",
    "public_test_cases": json.dumps([{"input": "[1, 2, 3]\n4", "output": "10", "testtype": "functional"}]),
    "private_test_cases": lcb_private([{"input": "[]\n0", "output": "0", "testtype": "functional"},
                                       {"input": "[5]\n-5", "output": "0", "testtype": "functional"}]),
    "metadata": json.dumps({"func_name": "sumPlus"}),
}
LCB_STDIN = {
    "question_content": "Print the maximum of the numbers on the second line.",
    "public_test_cases": json.dumps([{"input": "3\n1 5 2\n", "output": "5\n", "testtype": "stdin"}]),
    "private_test_cases": lcb_private([{"input": "1\n-7\n", "output": "-7\n", "testtype": "stdin"}]),
    "metadata": "{}",
}
CODECONTESTS = {
    "description": "Print the input reversed.",
    "public_tests": {"input": ["abc\n"], "output": ["cba\n"]},
    "private_tests": {"input": ["x\n"], "output": ["x\n"]},
    "generated_tests": {"input": ["hello\n"], "output": ["olleh\n"]},
}


def write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def load(tmp_path, row, **fields):
    problems = list(read_problems(write_rows(tmp_path / "data.jsonl", [row]), FieldMap(**fields)))
    assert len(problems) == 1
    return problems[0]


def grade(problem, program: str, text: str = "") -> Trace:
    completion = f"<think>\nworking\n</think>\n\n{text}```python\n{program}\n```"
    trace = Trace(**problem.model_dump(), id=f"{problem.problem_id}#0", sample_index=0, completion=completion)
    return check(trace)


def test_humaneval_check_is_called_with_the_entry_point(tmp_path):
    problem = load(tmp_path, HUMANEVAL, problem="prompt")
    assert problem.domain == "code"
    assert problem.tests == {"type": "assert", "code": HUMANEVAL["test"], "entry_point": "add"}
    assert grade(problem, HUMANEVAL["prompt"] + HUMANEVAL["canonical_solution"]).passed
    # The test code only defines check(): if nobody called it, every program would pass.
    wrong = grade(problem, "def add(a, b):\n    return a - b\n")
    assert not wrong.passed and "AssertionError at tests line 5: assert candidate(1, 2) == 3" in wrong.reason


def test_mbpp_asserts_with_imports(tmp_path):
    problem = load(tmp_path, MBPP, problem="text")
    assert problem.tests["type"] == "assert" and problem.tests["entry_point"] == "largest"
    assert problem.tests["code"].startswith("import math\n")
    assert grade(problem, MBPP["code"]).passed
    assert not grade(problem, "def largest(a, b, c):\n    return a").passed


def test_apps_stdin_and_call_based(tmp_path):
    stdin = load(tmp_path, APPS_STDIN, problem="question")
    assert stdin.tests == {"type": "stdin", "cases": [{"input": "1 2\n", "output": "3\n"}, {"input": "5 7\n", "output": "12\n"}]}
    assert grade(stdin, "a, b = map(int, input().split())\nprint(a + b)").passed
    call = load(tmp_path, APPS_CALL, problem="question")
    assert call.tests["type"] == "call" and call.tests["unwrap"] is True
    assert grade(call, "def double(xs):\n    return [2 * x for x in xs]").passed  # [x] expected, x returned: APPS accepts
    assert not grade(call, "def double(xs):\n    return xs").passed


def test_livecodebench_functional_with_compressed_private_tests(tmp_path):
    problem = load(tmp_path, LCB_FUNCTIONAL, problem="question_content")
    assert problem.tests == {"type": "call", "entry_point": "sumPlus",
                             "cases": [{"input": [[1, 2, 3], 4], "output": 10}, {"input": [[], 0], "output": 0}, {"input": [[5], -5], "output": 0}]}
    leetcode = "class Solution:\n    def sumPlus(self, nums: List[int], k: int) -> int:\n        return sum(nums) + k\n"
    verdict = grade(problem, leetcode)
    assert verdict.passed, verdict.reason
    wrong = grade(problem, leetcode.replace("+ k", "+ k + (k < 0)"))
    assert not wrong.passed and wrong.reason.startswith("test 3/3: expected 0, got 1")


def test_livecodebench_stdin_and_codecontests(tmp_path):
    lcb = load(tmp_path, LCB_STDIN, problem="question_content")
    assert [c["output"] for c in lcb.tests["cases"]] == ["5\n", "-7\n"]
    assert grade(lcb, "input()\nprint(max(map(int, input().split())))").passed
    contests = load(tmp_path, CODECONTESTS, problem="description")
    assert [c["input"] for c in contests.tests["cases"]] == ["abc\n", "x\n", "hello\n"]
    assert grade(contests, "print(input()[::-1])").passed
    assert not grade(contests, "print(input())").passed


def test_renamed_columns_through_the_field_mapping(tmp_path):
    row = {"q": "Add.", "checks": HUMANEVAL["test"], "fn": "add"}
    problem = load(tmp_path, row, problem="q", test_code="checks", entry_point="fn")
    assert problem.tests["entry_point"] == "add"
    forced = load(tmp_path, {"q": "x", "io": APPS_STDIN["input_output"]}, problem="q", input_output="io", test_format="apps")
    assert forced.tests["type"] == "stdin"


@pytest.mark.parametrize(
    "row, field, message",
    [
        ({"problem": "x", "tests": [{"input": "1", "expected_output": "2"}]}, "tests", "[0]: unknown key 'expected_output' (did you mean 'output'?)"),
        ({"problem": "x", "tests": {"type": "stdin", "cases": [{"input": "1"}]}}, "tests", "cases[0]: missing 'output'"),
        ({"problem": "x", "tests": {"type": "call", "entry_point": "f", "cases": [{"input": 1, "output": 2}]}}, "tests", "cases[0].input: expected the list of arguments"),
        ({"problem": "x", "input_output": '{"inputs": ["1"], "output": ["2"]}'}, "input_output", "unknown key 'output' (did you mean 'outputs'?)"),
        ({"problem": "x", "input_output": '{"inputs": ["1"], "outputs": []}'}, "input_output", "inputs and outputs must be lists of the same length"),
        ({"problem": "x", "input_output": "{not json"}, "input_output", "malformed JSON"),
        ({"problem": "x", "test": "def check(candidate):\n    assert candidate(1) ==\n", "entry_point": "f"}, "test", "test code does not compile"),
        ({"problem": "x", "test": "def check(c): pass", "entry_point": "not a name"}, "entry_point", "expected a function name"),
        ({"problem": "x", "test_list": ["assert f(1) == 1", ""]}, "test_list", "[1]: expected an assert statement"),
        ({"problem": "x", "public_test_cases": '[{"input": "1", "outputs": "1", "testtype": "stdin"}]'}, "public_test_cases", "[0]: unknown key 'outputs'"),
        ({"problem": "x", "public_test_cases": '[{"input": "1", "output": "1", "testtype": "functional"}]', "metadata": "{}"}, "metadata", "functional tests need metadata with func_name"),
        ({"problem": "x", "public_tests": {"input": ["1"], "output": []}}, "public_tests", "input and output must be lists of the same length"),
        ({"problem": "x", "tests": "assert f(1)", "input_output": APPS_STDIN["input_output"]}, None, "holds tests in two formats (tests, apps)"),
    ],
)
def test_malformed_tests_are_one_line_at_load(tmp_path, row, field, message):
    path = write_rows(tmp_path / "data.jsonl", [{"problem": "fine", "tests": "assert f(1) == 1"}, row])
    with pytest.raises(InputError) as error:
        list(read_problems(path))
    text = str(error.value)
    assert text.startswith(f"{path}:2: ") and message in text and "\n" not in text
    if field:
        assert f"field '{field}'" in text


def test_misspelled_key_in_traces_stops_filter_before_writing(tmp_path):
    traces = tmp_path / "traces.jsonl"
    row = {"problem_id": "p", "problem": "x", "id": "p#0", "sample_index": 0, "completion": "<think>\nx\n</think>\n\n```python\nprint(1)\n```",
           "tests": [{"input": "", "expected_output": "1"}]}
    traces.write_text(json.dumps(row) + "\n")
    result = subprocess.run([sys.executable, "-m", "cli", "filter", str(traces), "-o", str(tmp_path / "kept.jsonl")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "traces.jsonl:1: field 'tests': [0]: unknown key 'expected_output' (did you mean 'output'?)" in result.stderr
    assert not (tmp_path / "kept.jsonl").exists()


def test_malformed_native_tests_stop_generate_before_writing(tmp_path):
    prompts = write_rows(tmp_path / "apps.jsonl", [APPS_STDIN, {"question": "q", "input_output": '{"inputs": ["1"], "expected_outputs": ["2"]}'}])
    out = tmp_path / "traces.jsonl"
    result = subprocess.run([sys.executable, "-m", "cli", "generate", str(prompts), "--field-problem", "question",
                             "--teacher", "t", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "-o", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "apps.jsonl:2: field 'input_output': unknown key 'expected_outputs' (did you mean 'outputs'?)" in result.stderr
    assert not out.exists()


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickled_tests_never_run_code(tmp_path):
    marker = tmp_path / "pwned"
    evil = base64.b64encode(zlib.compress(pickle.dumps(_Exploit(marker)))).decode()
    row = {"problem": "x", "public_test_cases": "[]", "private_test_cases": evil, "metadata": "{}"}
    with pytest.raises(InputError, match="field 'private_test_cases': not a plain-data pickle .*refused posix.system"):
        list(read_problems(write_rows(tmp_path / "lcb.jsonl", [row])))
    assert not marker.exists()
    assert code_test_formats.plain_unpickle(pickle.dumps({"a": [1, 2.5, (3, None)], "b": {True, b"x"}})) == {"a": [1, 2.5, (3, None)], "b": {True, b"x"}}


def test_compressed_tests_have_a_size_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(code_test_formats, "MAX_DECOMPRESSED", 1000)
    bomb = lcb_private([{"input": "1" * 5000, "output": "1", "testtype": "stdin"}])
    with pytest.raises(code_test_formats.TestsError, match="inflate to more than"):
        code_test_formats.decode_compressed(bomb)


def test_older_shapes_still_read():
    assert code_test_formats.canonical_tests([{"input": "1", "output": 2}]) == {"type": "stdin", "cases": [{"input": "1", "output": "2"}]}
    assert code_test_formats.canonical_tests("assert f(1) == 2") == {"type": "assert", "code": "assert f(1) == 2"}
    canonical = {"type": "call", "entry_point": "f", "cases": [{"input": [1], "output": [2]}], "unwrap": False}
    assert code_test_formats.canonical_tests(canonical) == canonical
