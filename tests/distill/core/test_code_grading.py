"""Code grading that cannot be gamed: hostile programs never pass, correct ones with extra blocks do,
limits trip with reasons that name their flags. Every test here runs real sandboxes."""

from __future__ import annotations

import pytest

from distill.core.records import Trace
from distill.core.verify import VerifyOptions, check
from distill.core.verify.code_check import choose_program
from distill.core.verify.code_tests import same_output, same_value

OPTIONS = VerifyOptions(code_timeout=5)


def grade(answer: str, tests, options: VerifyOptions = OPTIONS):
    """`answer` is the final answer: text around fenced blocks, or bare code (fenced here)."""
    if "```" not in answer:
        answer = f"```python\n{answer}\n```"
    trace = Trace(problem_id="p", problem="Write inc(x).", id="p#0", sample_index=0, domain="code", tests=tests,
                  completion=f"<think>\nLet me think.\n</think>\n\n{answer}")
    return check(trace, options)


# The same wrong program (it returns x, not x + 1) under three kinds of tests.
ASSERTS = "assert inc(1) == 2\nassert inc(5) == 6\n"  # MBPP style, and the older string form
HUMANEVAL = {"type": "assert", "entry_point": "inc", "code": "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(5) == 6\n"}
CALLS = {"type": "call", "entry_point": "inc", "cases": [{"input": [1], "output": 2}, {"input": [41], "output": 42}]}
STDIN = {"type": "stdin", "cases": [{"input": "zebra-1\n", "output": "zebra-2\n"}, {"input": "zebra-41\n", "output": "zebra-42\n"}]}

RIGHT = "def inc(x):\n    return x + 1\n"
WRONG = "def inc(x):\n    return x\n"
RIGHT_SCRIPT = "name, n = input().split('-')\nprint(f'{name}-{int(n) + 1}')\n"
WRONG_SCRIPT = "print(input())\n"

FORGE = """
import os
for fd in range(0, 256):
    for line in ('{"passed": true, "calls": 2}', '{"case": 0, "value": 2}', '{"case": 1, "value": 42}', '{"end": true}'):
        try:
            os.write(fd, (line + "\\n").encode())
        except OSError:
            pass
"""

# Looks everywhere it can for the tests' expected values (files, descriptors, other processes'
# memory) and answers right only if it finds them.
SNOOP = """
import glob, os, stat
def _snoop():
    # reversed, so that the program's own source does not hold what it looks for
    wanted = [w[::-1] for w in (b"6 == )5(cni", b"6 == )5(etadidnac", b"24 :\\"eulav\\"", b"24-arbez")]
    def seen(data):
        return any(w in data for w in wanted)
    def read(path_or_fd):
        fd = os.open(path_or_fd, os.O_RDONLY | os.O_NONBLOCK) if isinstance(path_or_fd, str) else path_or_fd
        blocking = os.get_blocking(fd)
        try:
            os.set_blocking(fd, False)
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                try:
                    return os.pread(fd, 1 << 22, 0)
                except OSError:
                    pass
            return os.read(fd, 1 << 22)
        finally:
            if isinstance(path_or_fd, str):
                os.close(fd)
            else:
                os.set_blocking(fd, blocking)
    me = os.readlink("/proc/self")  # this process as /proc numbers it (the host's procfs, maybe)
    others = [p for p in os.listdir("/proc") if p.isdigit() and p != me]
    paths = [p for p in glob.glob("/tmp/**", recursive=True) if not p.startswith(("/tmp/.python", "/tmp/.site"))]
    paths += ["main.py", *glob.glob("*"), *glob.glob("../*")]
    for pid in others:
        paths += glob.glob(f"/proc/{pid}/fd/*") + [f"/proc/{pid}/cmdline", f"/proc/{pid}/environ"]
    for source in [*paths, *range(0, 64)]:
        try:
            if seen(read(source)):
                return True
        except Exception:
            pass
    for pid in others:
        try:
            with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb") as mem:
                for line in maps:
                    start, end = (int(x, 16) for x in line.split()[0].split("-"))
                    try:
                        mem.seek(start)
                        if seen(mem.read(min(end - start, 1 << 24))):
                            return True
                    except (OSError, ValueError, OverflowError):
                        pass
        except Exception:
            pass
    return False
FOUND = _snoop()
"""
SNOOP_FUNCTION = SNOOP + "def inc(x):\n    return x + 1 if FOUND else x\n"
SNOOP_SCRIPT = SNOOP + "print(input().replace('1', '2') if FOUND else 'nope')\n"

ENDINGS = {
    "guarded sys.exit(0)": "if __name__ == '__main__':\n    import sys\n    sys.exit(0)\n",
    "sys.exit(0) at the end": "import sys\nsys.exit(0)\n",
    "raise SystemExit at the end": "raise SystemExit\n",
    "os._exit(0) at the end": "import os\nos._exit(0)\n",
    "atexit hook": "import atexit, os\natexit.register(lambda: os._exit(0))\n",
    "patched AssertionError": "import builtins\nclass Never(BaseException):\n    pass\nbuiltins.AssertionError = Never\n",
    "patched builtins": "import builtins\nbuiltins.isinstance = lambda *a: True\nbuiltins.len = lambda x: 0\nbuiltins.print = lambda *a, **k: None\n",
    "prints a pass and exits": "print('all asserts passed')\nprint('passed 2/2 tests')\nimport os\nos._exit(0)\n",
    "kills its parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
    "forges report lines": FORGE,
}
HACKED_FUNCTIONS = {
    **{name: WRONG + ending for name, ending in ENDINGS.items()},
    "always-equal object": "class Same:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\ndef inc(x):\n    return Same()\n",
    "int subclass equal to anything": "class Int(int):\n    def __eq__(self, other):\n        return True\n    __ne__ = lambda s, o: False\n    __hash__ = int.__hash__\ndef inc(x):\n    return Int(x)\n",
    "kills its parent when called": "import os, signal\ndef inc(x):\n    os.kill(os.getppid(), signal.SIGKILL)\n    return x\n",
    "patches the tests' helpers": "import math\nmath.isclose = lambda *a, **k: True\n" + WRONG,
    "reads the tests": SNOOP_FUNCTION,
}
HACKED_SCRIPTS = {
    **{name: WRONG_SCRIPT + ending for name, ending in ENDINGS.items()},
    "exits before answering": "import sys\nsys.exit(0)\n" + RIGHT_SCRIPT,
    "reads the tests": SNOOP_SCRIPT,
    "leaves a daemon behind": "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(0.5)\n    print('zebra-42')\n    os._exit(0)\n" + WRONG_SCRIPT,
}


@pytest.mark.parametrize("tests", [ASSERTS, HUMANEVAL, CALLS], ids=["asserts", "humaneval", "calls"])
@pytest.mark.parametrize("name", HACKED_FUNCTIONS)
def test_a_wrong_function_cannot_make_itself_pass(name, tests):
    verdict = grade(HACKED_FUNCTIONS[name], tests)
    assert not verdict.passed, verdict.reason


def test_a_program_cannot_replace_the_builtins_the_tests_use():
    tests = "assert abs(inc(1) - 2) < 1e-9\nassert len(str(inc(5))) == 1 and sorted([inc(5)]) == [6]\n"
    shadow = "def abs(x):\n    return 0\ndef len(x):\n    return 1\ndef sorted(x):\n    return [6]\n"
    assert grade(RIGHT, tests).passed
    verdict = grade(shadow + WRONG, tests)
    assert not verdict.passed and verdict.reason.startswith("AssertionError at tests line 1"), verdict.reason


@pytest.mark.parametrize("name", HACKED_SCRIPTS)
def test_a_wrong_script_cannot_make_itself_pass(name):
    verdict = grade(HACKED_SCRIPTS[name], STDIN)
    assert not verdict.passed, verdict.reason


@pytest.mark.parametrize("tests", [ASSERTS, HUMANEVAL, CALLS], ids=["asserts", "humaneval", "calls"])
@pytest.mark.parametrize("ending", ["guarded sys.exit(0)", "sys.exit(0) at the end", "atexit hook"])
def test_a_right_function_with_an_exit_at_the_end_passes(ending, tests):
    verdict = grade(RIGHT + ENDINGS[ending], tests)
    assert verdict.passed, verdict.reason


def test_right_answers_pass_and_the_reason_says_what_was_graded():
    assert grade(RIGHT, ASSERTS).reason == "all asserts passed (2 calls of the program); graded the answer's only code block"
    assert grade(RIGHT, CALLS).reason == "passed 2/2 tests; graded the answer's only code block"
    assert grade(RIGHT_SCRIPT, STDIN).passed
    wrong = grade(WRONG, HUMANEVAL)
    assert wrong.reason.startswith("AssertionError at tests line 2: assert candidate(1) == 2")


def test_check_code_that_is_never_called_fails():
    # A HumanEval `test` given without its entry point: check(candidate) is defined, never called.
    verdict = grade(WRONG, {"type": "assert", "code": HUMANEVAL["code"]})
    assert not verdict.passed and verdict.reason.startswith("the tests never called the program")


def test_program_errors_and_non_data_results_are_reasons():
    raised = grade("def inc(x):\n    raise ValueError('no')\n", CALLS)
    assert not raised.passed and raised.reason.startswith("test 1/2: the program raised ValueError: no")
    generator = grade("def inc(x):\n    yield x + 1\n", HUMANEVAL)
    assert not generator.passed and "inc() returned a generator, not plain data" in generator.reason
    missing = grade("def dec(x):\n    return x - 1\n", CALLS)
    assert missing.reason.startswith("test 1/2: the program does not define inc()")


# ---------------------------------------------------------------------------- which block is graded

USAGE = "\n\nExample usage:\n\n```python\nprint(inc(3))  # 4\n```\n"


@pytest.mark.parametrize("tests", [ASSERTS, HUMANEVAL, CALLS], ids=["asserts", "humaneval", "calls"])
def test_an_example_usage_block_after_the_solution_does_not_fail_it(tests):
    verdict = grade(f"Here is the solution:\n\n```python\n{RIGHT}```{USAGE}", tests)
    assert verdict.passed and verdict.reason.endswith("graded code block 1 of 2 (defines inc())"), verdict.reason


def test_the_block_that_defines_the_entry_point_wins_wherever_it_is():
    usage_first = grade(f"```python\nprint(inc(3))\n```\n\nThe function:\n\n```python\n{RIGHT}```", HUMANEVAL)
    assert usage_first.passed and "graded code block 2 of 2" in usage_first.reason
    draft_then_final = grade(f"```python\n{WRONG}```\nFixed:\n```python\n{RIGHT}```{USAGE}", HUMANEVAL)
    assert draft_then_final.passed and "graded code block 2 of 3" in draft_then_final.reason
    leetcode = "class Solution:\n    def inc(self, x: int) -> int:\n        return x + 1\n"
    verdict = grade(f"```python\n{leetcode}```\n```python\nprint(Solution().inc(1))\n```", CALLS)
    assert verdict.passed and "graded code block 1 of 2 (defines inc())" in verdict.reason


def test_stdin_tests_grade_the_last_complete_program():
    answer = ("```python\ndef bump(s):\n    name, n = s.split('-')\n    return f'{name}-{int(n) + 1}'\n\nprint(bump(input()))\n```\n"
              "Example:\n```python\nprint(bump('zebra-1'))\n```\nRun it:\n```bash\npython solution.py < input.txt\n```")
    verdict = grade(answer, STDIN)
    assert verdict.passed and "graded code block 1 of 2 (the last complete program: it reads stdin)" in verdict.reason


def test_blocks_that_need_each_other_are_graded_together():
    # The solution only defines solve(); the "usage" block after it runs it.
    answer = ("```python\nimport sys\nsys.setrecursionlimit(10000)\n\ndef solve():\n    name, n = input().split('-')\n"
              "    print(f'{name}-{int(n) + 1}')\n```\nUsage:\n```python\nsolve()\n```")
    verdict = grade(answer, STDIN)
    assert verdict.passed and "graded code block 2 of 2 (the last block that runs something, with definitions from block 1)" in verdict.reason
    # A complete program, then an example that calls its function on stdin: the complete one is graded.
    complete = "```python\ndef bump(s):\n    name, n = s.split('-')\n    return f'{name}-{int(n) + 1}'\n\nprint(bump(input()))\n```\n"
    verdict = grade(complete + "For example:\n```python\nprint(bump(input()))  # zebra-1 -> zebra-2\n```", STDIN)
    assert verdict.passed and "graded code block 1 of 2 (the last complete program" in verdict.reason
    # A helper in one block, the entry point in the next.
    helper = "```python\ndef step(x):\n    return 1\n\nprint(step(0))\n```\n```python\ndef inc(x):\n    return x + step(x)\n```"
    verdict = grade(helper, HUMANEVAL)
    assert verdict.passed and "graded code block 2 of 2 (defines inc(), with definitions from block 1)" in verdict.reason


def test_choose_program_for_asserts_without_an_entry_point():
    final = f"```python\n{RIGHT}```\n```python\ndef helper():\n    pass\n```"
    chosen = choose_program(final, {"type": "assert", "code": ASSERTS})
    assert chosen.index == 1 and chosen.why == "defines inc()"


# ---------------------------------------------------------------------------- limits and comparison


def test_time_and_memory_limits_name_their_flags():
    fast = VerifyOptions(code_timeout=1, code_memory_mb=256)
    loop = grade("while True:\n    pass\n", STDIN, fast)
    assert loop.reason.startswith("test 1/2: ") and "1s" in loop.reason and "(--code-timeout" in loop.reason
    hung = grade("def inc(x):\n    while True:\n        pass\n", CALLS, fast)
    assert hung.reason.startswith("test 1/2: inc() did not finish within 1s (--code-timeout 1)")
    hog = grade("x = bytearray(2 * 1024 ** 3)\nprint(len(x))\n", STDIN, fast)
    assert hog.reason.startswith("test 1/2: ran out of memory (limit 256 MiB, --code-memory)")
    big = grade("def inc(x):\n    return len(bytearray(2 * 1024 ** 3))\n", HUMANEVAL, fast)
    assert big.reason.startswith("inc() ran out of memory (limit 256 MiB, --code-memory)")


def test_stdout_rule():
    assert same_output("3  \n\n\n", "3")
    assert same_output("1\r\n2\r\n", "1\n2\n")
    assert not same_output(" 3", "3")
    assert not same_output("1\n\n2", "1\n2")
    assert not same_output("yes", "YES")
    assert not same_output("0.333333", "0.3333333333")
    assert same_output("0.333333 x\n2", "0.3333333333 x\n2.0000001", tolerance=1e-5)
    assert not same_output("0.3333 x", "0.3333333333 x", tolerance=1e-5)
    assert not same_output("1e9", "1000000001", tolerance=1e-12)


def test_value_rule():
    assert same_value((1, [2, (3,)]), [1, [2, [3]]])
    assert not same_value({1, 2}, [1, 2])
    assert same_value(5, [5], unwrap=True) and not same_value(5, [5])
    assert same_value([0.1 + 0.2], [0.3], tolerance=1e-9) and not same_value([0.1 + 0.2], [0.3])


def test_float_tolerance_option_reaches_the_sandbox():
    tests = {"type": "stdin", "cases": [{"input": "", "output": "0.3333333333\n"}]}
    assert not grade("print(round(1 / 3, 6))", tests).passed
    assert grade("print(round(1 / 3, 6))", tests, VerifyOptions(code_float_tolerance=1e-5)).passed


def test_code_limits_are_flags_and_recipe_keys(tmp_path):
    import subprocess
    import sys

    def distill(*args):
        result = subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    shown = distill("filter", "in.jsonl", "-o", "out.jsonl", "--code-timeout", "2", "--code-memory", "300", "--code-float-tolerance", "1e-6", "--print-config")
    assert "  code_timeout: 2.0\n  code_memory_mb: 300\n  code_float_tolerance: 1.0e-06\n" in shown
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("eval:\n  model: m\n  benchmarks: [b.jsonl]\n  code_timeout: 3\n  code_memory_mb: 512\n")
    shown = distill("eval", "--recipe", str(recipe), "--code-memory", "700", "--print-config")
    assert "code_timeout: 3.0\n" in shown and "code_memory_mb: 700\n" in shown


def test_scripts_run_as_python_would_run_them():
    tests = {"type": "stdin", "cases": [{"input": "7\n", "output": "True 7\n"}]}
    for program in ("print(__name__ == '__main__', input())\nexit()", "import sys\nprint(True, input())\nsys.exit(0)",
                    "import sys\nprint(sys.argv == ['solution.py'], sys.stdin.read().strip())\nquit()"):
        verdict = grade(program, tests)
        assert verdict.passed, (program, verdict.reason)


def test_test_code_can_import_distills_own_packages():
    # HumanEval+ tests import numpy; the sandbox's interpreter may not have it, distill's environment does.
    tests = {"type": "assert", "entry_point": "inc", "code": "import typer, pydantic\n\ndef check(candidate):\n    assert candidate(1) == 2\n"}
    verdict = grade(RIGHT, tests)
    assert verdict.passed, verdict.reason


def test_assert_tests_read_the_programs_variables_as_plain_data():
    tests = "assert total == 6\n"
    assert grade("total = sum([1, 2, 3])\n", tests).passed
    assert not grade("total = 5\n", tests).passed
    fake = grade("class Same:\n    def __eq__(self, other):\n        return True\ntotal = Same()\n", tests)
    assert not fake.passed and fake.reason.startswith("total is a Same, not plain data")


# Correct programs whose shapes the harness once got wrong: each runs in its own namespace, and the tests
# find its names there (a builtin's name, a class, an entry point that is a method).
SHAPES = {
    "a function named like a builtin (MBPP asserts)": ("def sum(a, b):\n    return a + b\n", "assert sum(1, 2) == 3\nassert sum(5, 5) == 10\n"),
    "len defined, asserts": ("def len(x):\n    n = 0\n    for _ in x:\n        n += 1\n    return n\n", "assert len([1, 2, 3]) == 3\n"),
    "LeetCode class, asserts": (
        "from typing import List\n\nclass Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
        "        seen = {}\n        for i, x in enumerate(nums):\n            if target - x in seen:\n"
        "                return [seen[target - x], i]\n            seen[x] = i\n",
        "assert Solution().twoSum([2, 7, 11, 15], 9) == [0, 1]\nassert Solution().twoSum([3, 3], 6) == [0, 1]\n"),
    "LeetCode class, entry Solution().method": (
        "class Solution:\n    def addOne(self, x: int) -> int:\n        return x + 1\n",
        {"type": "assert", "entry_point": "Solution().addOne", "code": "def check(candidate):\n    assert candidate(x=1) == 2\n"}),
    "a class with __init__ the tests instantiate": (
        "class MinStack:\n    def __init__(self):\n        self.items = []\n    def push(self, x):\n        self.items.append(x)\n"
        "    def getMin(self):\n        return min(self.items)\n",
        "s = MinStack()\ns.push(3)\ns.push(1)\nassert s.getMin() == 1\nassert s.items == [3, 1]\n"),
    "print and input defined, stdin": ("import sys\ndef print(*a):\n    sys.stdout.write(' '.join(map(str, a)) + '\\n')\n"
                                       "def input():\n    return sys.stdin.readline().rstrip()\nname, n = input().split('-')\nprint(f'{name}-{int(n) + 1}')\nexit()\n", STDIN),
    "main under __main__, stdin": ("def main():\n    name, n = input().split('-')\n    print(f'{name}-{int(n) + 1}')\n\n"
                                   "if __name__ == '__main__':\n    main()\n", STDIN),
    "main under __main__, asserts": ("def inc(x):\n    return x + 1\n\ndef main():\n    print(inc(int(input())))\n\n"
                                     "if __name__ == '__main__':\n    main()\n", ASSERTS),
}


@pytest.mark.parametrize("name", SHAPES)
def test_correct_programs_of_every_shape_pass(name):
    program, tests = SHAPES[name]
    if isinstance(tests, dict):
        from distill.core.code_test_formats import canonical_tests

        tests = canonical_tests(tests)
    verdict = grade(program, tests)
    assert verdict.passed, verdict.reason


def test_wrong_classes_and_builtin_names_still_fail():
    assert not grade("def sum(a, b):\n    return a - b\n", "assert sum(1, 2) == 3\n").passed
    assert not grade("class Solution:\n    def twoSum(self, nums, target):\n        return [0, 0]\n",
                     "assert Solution().twoSum([2, 7], 9) == [0, 1]\n").passed
    fake = "class Same:\n    def __eq__(self, other):\n        return True\nclass Solution:\n    def twoSum(self, nums, target):\n        return Same()\n"
    verdict = grade(fake, "assert Solution().twoSum([2, 7], 9) == [0, 1]\n")
    assert not verdict.passed and "not plain data" in verdict.reason, verdict.reason
    # the program's `sum` is the function under test; its `abs` never replaces the tests' own
    verdict = grade("def abs(x):\n    return 0\ndef sum(a, b):\n    return a - b + 10\n", "assert abs(sum(1, 2) - 3) < 1e-9\n")
    assert not verdict.passed, verdict.reason


def test_the_block_that_defines_a_builtin_named_function_is_graded():
    answer = "```python\ndef sum(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total\n```\n\nExample:\n\n```python\nprint(sum([1, 2]))\n```\n"
    verdict = grade(answer, "assert sum([1, 2, 3]) == 6\n")
    assert verdict.passed and "graded code block 1 of 2" in verdict.reason, verdict.reason
