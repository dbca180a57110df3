"""A program against its tests (the canonical shape in `distill.core.records`), judged here.

One sandbox run per program: the harness (`distill.core.sandbox_harness`) runs the cases inside,
reports each case's output on a channel the program cannot reach, and this module compares it
with the expected output, which never enters the sandbox. For assert tests the harness reports the
test code's own verdict (see the harness for why that cannot be forged). A pass is a full report,
with the run's token on every line, in which every case matched; an exit code never is.

How outputs are compared:
- stdout (stdin tests): line by line, after removing each line's trailing whitespace and the
  trailing empty lines (so a missing final newline, a `\\r\\n` or spaces at line ends never fail a
  program; leading spaces, blank lines in between and letter case do). With a float tolerance X
  (`--code-float-tolerance`, APPS/TACO style), lines that still differ are compared token by token
  (split on whitespace): tokens equal as text, or both numbers with |got - expected| <= X * max(1, |expected|).
- values (call tests): as plain data rebuilt from the program's answer (a tuple counts as a
  list); with a float tolerance, numbers compare as above; `unwrap` accepts x for an expected [x].

Limits: each stdin case, each call of the program and its loading get `timeout` seconds (wall
clock; stdin cases also that much CPU time); an assert script gets 10 call limits in all; every
process gets `memory_mb` of address space. Verdict reasons name the flag of a limit that tripped.
"""

from __future__ import annotations

import json
import math
import secrets
import signal
from pathlib import Path
from typing import Any

from distill.core.sandbox import Harness, Limits, RunResult, TestOutcome, run_python
from distill.core.sandbox_harness import SCRIPT_CALLS, decode

HARNESS_SOURCE = Path(__file__).resolve().parents[1].joinpath("sandbox_harness.py").read_text(encoding="utf-8")
STARTUP_S = 15.0  # sandbox and interpreter start-up on a busy machine, on top of the tests' own limits


def time_budget(tests: dict[str, Any], timeout: float) -> float:
    """The wall-clock seconds a whole run may take."""
    units = SCRIPT_CALLS + 1 if tests["type"] == "assert" else len(tests["cases"]) + 1
    return STARTUP_S + units * (timeout + 0.5)


def run_code_tests(program: str, tests: dict[str, Any], timeout: float = 5.0, memory_mb: int = 1024,
                   float_tolerance: float | None = None) -> TestOutcome:
    """Run `program` against canonical `tests` in one sandbox; stops at the first failing case."""
    token = secrets.token_hex(16)
    cases = tests.get("cases") or []
    header = {"token": token, "entry_point": tests.get("entry_point"), "code": tests.get("code")}
    lines = [json.dumps(header)] + [json.dumps({"case": i, "input": case["input"]}) for i, case in enumerate(cases)]
    judge = _Judge(tests, token, timeout, memory_mb, float_tolerance)
    wall = time_budget(tests, timeout)
    harness = Harness(HARNESS_SOURCE, [tests["type"], repr(float(timeout))], ("\n".join(lines) + "\n").encode(), judge.feed)
    result = run_python(program, limits=Limits(wall_s=wall, cpu_s=wall, memory_mb=memory_mb), harness=harness)
    return judge.outcome(result, wall)


class _Judge:
    """Reads the harness's report line by line, compares, and decides."""

    def __init__(self, tests: dict[str, Any], token: str, timeout: float, memory_mb: int, tolerance: float | None):
        self.tests, self.token, self.timeout, self.memory_mb, self.tolerance = tests, token, timeout, memory_mb, tolerance
        self.cases = tests.get("cases") or []
        self.passed = 0
        self.failure: str | None = None
        self.finished = False
        self.script: dict[str, Any] | None = None  # assert tests: the harness's verdict

    def feed(self, line: bytes) -> bool:
        """One report line; False stops the run (a failure is known)."""
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict) or message.get("token") != self.token:
            self.failure = "the test report was corrupt or forged (a line without the run's token)"
            return False
        if message.get("end"):
            self.finished = True
        elif "kind" in message and not message.get("passed", False) and "case" in message:
            self.failure = self._where(message.get("case", 0)) + self._limit(message["kind"], str(message.get("detail")))
        elif "passed" in message:
            self.script = message
            if not message["passed"]:
                self.failure = self._limit(message.get("kind", "error"), str(message.get("detail")))
        elif "case" in message:
            self.failure = self._judge_case(message)
            self.passed += self.failure is None
        return self.failure is None

    def outcome(self, result: RunResult, wall: float) -> TestOutcome:
        total = len(self.cases)
        fraction = self.passed / total if total else 0.0
        if self.failure is not None:
            return TestOutcome(False, self.failure, fraction)
        if not self.finished:
            if result.timed_out:
                return TestOutcome(False, f"timed out after {wall:g}s in all (--code-timeout {self.timeout:g} per test)", fraction)
            error = _last_line(result.stderr)
            return TestOutcome(False, "the test harness stopped before the end" + (f" ({error})" if error else ""), fraction)
        if self.tests["type"] == "assert":
            if self.script is None or not self.script.get("passed"):
                return TestOutcome(False, "the tests reported no verdict", 0.0)
            return TestOutcome(True, f"all asserts passed ({self.script.get('calls', 0)} calls of the program)", 1.0)
        if self.passed != total:
            return TestOutcome(False, f"only {self.passed} of {total} tests reported", fraction)
        return TestOutcome(True, f"passed {total}/{total} tests", 1.0)

    def _where(self, index: Any) -> str:
        return f"test {int(index) + 1}/{len(self.cases)}: " if self.cases and isinstance(index, int) else ""

    def _limit(self, kind: str, detail: str) -> str:
        if kind == "timeout":
            return f"{detail} (--code-timeout {self.timeout:g})"
        if kind == "memory":
            return f"{detail} (limit {self.memory_mb} MiB, --code-memory)"
        return detail

    def _judge_case(self, message: dict[str, Any]) -> str | None:
        index = message["case"]
        if not isinstance(index, int) or not 0 <= index < len(self.cases) or index != self.passed:
            return "the test report was out of order"
        where, expected = self._where(index), self.cases[index]["output"]
        if self.tests["type"] == "call":
            try:
                got = decode(message["value"])
            except (KeyError, ValueError, TypeError, RecursionError):
                return f"{where}malformed value in the report"
            if same_value(got, expected, self.tolerance, self.tests.get("unwrap", False)):
                return None
            return f"{where}expected {_show(expected)}, got {_show(got)}"
        if message.get("timeout"):
            return f"{where}timed out after {self.timeout:g}s (--code-timeout)"
        code = message.get("code")
        if code == -signal.SIGXCPU:
            return f"{where}used more than {self.timeout:g}s of CPU time (--code-timeout)"
        if code != 0:
            error = _last_line(str(message.get("stderr", "")))
            if error.startswith("MemoryError"):
                return f"{where}ran out of memory (limit {self.memory_mb} MiB, --code-memory)"
            how = f"killed by {signal.Signals(-code).name}" if isinstance(code, int) and code < 0 else f"exit code {code}"
            return f"{where}{how}" + (f": {error}" if error else "")
        stdout = str(message.get("stdout", ""))
        if same_output(stdout, expected, self.tolerance):
            return None
        return f"{where}expected {_show(expected.strip())}, got {_show(stdout.strip())}"


# ---------------------------------------------------------------------------- comparison


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.rstrip().splitlines()]


def same_output(got: str, expected: str, tolerance: float | None = None) -> bool:
    """The stdout rule (module docstring)."""
    mine, theirs = _lines(got), _lines(expected)
    if mine == theirs:
        return True
    if tolerance is None or len(mine) != len(theirs):
        return False
    return all(a == b or _tokens_close(a.split(), b.split(), tolerance) for a, b in zip(mine, theirs, strict=True))


def _tokens_close(mine: list[str], theirs: list[str], tolerance: float) -> bool:
    return len(mine) == len(theirs) and all(a == b or _close(_number(a), _number(b), tolerance) for a, b in zip(mine, theirs, strict=True))


def _number(token: str) -> float | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _close(got: Any, expected: Any, tolerance: float) -> bool:
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (got, expected))
    return numbers and abs(got - expected) <= tolerance * max(1.0, abs(expected))


def _as_json(value: Any) -> Any:
    """Tuples as lists, all the way down (the expected values came from JSON)."""
    if isinstance(value, (list, tuple)):
        return [_as_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_json(item) for key, item in value.items()}
    return value


def same_value(got: Any, expected: Any, tolerance: float | None = None, unwrap: bool = False) -> bool:
    """The value rule (module docstring); `got` is plain data the harness rebuilt."""
    got = _as_json(got)
    if _equal(got, expected, tolerance):
        return True
    return unwrap and isinstance(expected, list) and len(expected) == 1 and _equal(got, expected[0], tolerance)


def _equal(got: Any, expected: Any, tolerance: float | None) -> bool:
    if tolerance is not None and _close(got, expected, tolerance):
        return True
    if isinstance(got, list) and isinstance(expected, list):
        return len(got) == len(expected) and all(_equal(a, b, tolerance) for a, b in zip(got, expected, strict=True))
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(_equal(got[k], expected[k], tolerance) for k in got)
    try:
        return bool(got == expected)
    except Exception:  # noqa: BLE001 - plain data compares; be safe anyway
        return False


def _show(value: Any) -> str:
    try:
        text = value if isinstance(value, str) else json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    text = text if len(text) <= 40 else text[:39] + "…"
    return repr(text) if isinstance(value, str) else text


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip()[:200] if lines else ""
