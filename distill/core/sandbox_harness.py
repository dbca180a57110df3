"""The test harness: runs INSIDE the sandbox as main.py, next to the program (solution.py).

Trusted code, standard library only (it runs under the sandbox's base interpreter, `-I`). The host
(`distill.core.verify.code_tests`) also imports this module for `decode`. Started as
`main.py PLAN_FD REPORT_FD MODE SITE PIDNS`; the plan is JSON lines (a header, then one line per
case), the report is JSON lines, each carrying the run's token.

Why a wrong program cannot make itself pass:
- stdin and call tests: the expected outputs never enter the sandbox. The harness only sends back
  what the program printed or returned; the host compares. An early exit, a patched builtin or an
  atexit hook changes nothing but the program's own answer.
- assert tests (HumanEval, MBPP) need the expected values next to the program's functions: the
  test code runs in THIS process, the program in a child forked before the plan was read (the test
  code was never in its memory) and imported as a module (`__name__ == "solution"`, so a
  `__main__` block does not run). Each call crosses a pipe; the value comes back as tagged JSON of
  plain data and is rebuilt here from builtin types, so no object the program built (an `__eq__`
  that always says True) reaches the tests, and nothing it patches exists in this process.
- this process makes itself non-dumpable first: a same-user program can neither ptrace it nor
  open its memory or descriptors under /proc. The plan comes on a descriptor of an unlinked file,
  the report leaves on a pipe only this process holds. A program can still kill or stop this
  process: then the report is incomplete, and the host fails an incomplete report.
"""

import builtins
import json
import os
import select
import signal
import struct
import subprocess
import sys
import time
import types

# Imports LeetCode-style solutions assume (List, Optional, collections...), as LiveCodeBench's harness provides.
PRELUDE = (
    "from typing import *\nimport bisect, collections, functools, heapq, itertools, math, re, string, sys\n"
    "from collections import Counter, defaultdict, deque\nfrom functools import lru_cache, reduce\n"
    "from heapq import heapify, heappop, heappush\nfrom bisect import bisect_left, bisect_right\n"
    "from itertools import accumulate, combinations, permutations, product\nfrom math import gcd, inf, sqrt\n"
)
MAX_MESSAGE = 1 << 28
SCRIPT_CALLS = 10  # an assert script may run for this many per-call time limits in all
_TAGS = {"tuple": tuple, "set": set, "frozenset": frozenset}


class NotPlain(Exception):
    """A value that is not plain data (lists, tuples, sets, dicts, strings, bytes, numbers, None)."""


class CallTimeout(BaseException):
    """A call of the program, or the whole script, ran out of time (not an Exception: tests cannot catch it)."""


class ProgramGone(BaseException):
    """The program's process died or answered garbage."""


class ProgramError(Exception):
    """An exception the program raised whose type is not a builtin one."""


def encode(value, depth=0):
    """Plain data as JSON: lists and scalars as themselves, other containers tagged."""
    if depth > 200:
        raise NotPlain("nested more than 200 levels")
    if value is None or isinstance(value, bool):
        return None if value is None else bool(value)
    if isinstance(value, int):
        number = int.__int__(value)
        return {"$": "int", "v": hex(number)} if number.bit_length() > 10000 else number
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (bytes, bytearray)):
        return {"$": "bytes", "v": bytes(value).hex()}
    if isinstance(value, complex):
        return {"$": "complex", "v": [value.real, value.imag]}
    if isinstance(value, list):
        return [encode(item, depth + 1) for item in value]
    for name, kind in _TAGS.items():
        if isinstance(value, kind):
            return {"$": name, "v": [encode(item, depth + 1) for item in value]}
    if isinstance(value, dict):
        return {"$": "dict", "v": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return encode(value.tolist(), depth + 1)
    raise NotPlain(f"a {type(value).__name__}, not plain data")


def decode(node, depth=0):
    """The inverse of `encode`, building nothing but builtin plain types; ValueError on anything else."""
    if depth > 250:
        raise ValueError("nested too deeply")
    kind = type(node)
    if node is None or kind in (bool, int, float, str):
        return node
    if kind is list:
        return [decode(item, depth + 1) for item in node]
    if kind is not dict or set(node) != {"$", "v"}:
        raise ValueError(f"not an encoded value: {kind.__name__}")
    tag, value = node["$"], node["v"]
    if tag in _TAGS and type(value) is list:
        return _TAGS[tag](decode(item, depth + 1) for item in value)
    if tag == "dict" and type(value) is list and all(type(p) is list and len(p) == 2 for p in value):
        return {decode(k, depth + 1): decode(v, depth + 1) for k, v in value}
    if tag == "bytes" and type(value) is str:
        return bytes.fromhex(value)
    if tag == "int" and type(value) is str:
        return int(value, 16)
    if tag == "complex" and type(value) is list and len(value) == 2 and all(type(p) in (int, float) for p in value):
        return complex(value[0], value[1])
    raise ValueError(f"not an encoded value: tag {tag!r}")


# ---------------------------------------------------------------------------- messages


def send(fd, message):
    data = json.dumps(message).encode()
    data = struct.pack(">I", len(data)) + data
    while data:
        data = data[os.write(fd, data):]


def receive(fd, deadline=None):
    """One message; None when the writer is gone. Raises CallTimeout at the deadline."""
    header = _read_exactly(fd, 4, deadline)
    if header is None:
        return None
    size = struct.unpack(">I", header)[0]
    if size > MAX_MESSAGE:
        raise ProgramGone(f"sent a message of {size >> 20} MiB")
    data = _read_exactly(fd, size, deadline)
    if data is None:
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise ProgramGone("answered with malformed data") from None


def _read_exactly(fd, size, deadline):
    chunks, left = [], size
    while left:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise CallTimeout()
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------------------- the program's process


def serve(requests, responses):
    """Import the program as a module, then run the calls the harness asks for. Never returns."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    module = types.ModuleType("solution")
    module.__file__ = os.path.abspath("solution.py")
    sys.modules["solution"] = module
    sys.argv = ["solution.py"]
    namespace = module.__dict__
    status = {"error": None}
    try:
        exec(compile(PRELUDE, "<prelude>", "exec"), namespace)
        with open("solution.py", encoding="utf-8") as handle:
            exec(compile(handle.read(), "solution.py", "exec"), namespace)
    except SystemExit:
        pass  # an exit at the end of the program: its functions are defined, the tests decide
    except BaseException as exc:  # noqa: BLE001 - whatever the program raises is reported
        status["error"] = f"{type(exc).__name__}: {exc}"[:300]
    mine = {name: value for name, value in namespace.items() if getattr(value, "__module__", None) == "solution"}
    status["functions"] = sorted(name for name, value in mine.items() if callable(value) and not isinstance(value, type))
    status["classes"] = sorted(name for name, value in mine.items() if isinstance(value, type))
    solution = namespace.get("Solution")
    status["methods"] = sorted(n for n in dir(solution) if not n.startswith("__")) if isinstance(solution, type) else []
    status["variables"] = sorted(name for name, value in namespace.items() if not name.startswith("__") and not callable(value)
                                 and not isinstance(value, types.ModuleType))
    send(responses, status)
    objects = []  # instances the tests made (`Solution()`, `MinStack()`): they live here, the tests hold their index
    while True:
        request = receive(requests)
        if request is None:
            os._exit(0)
        try:
            reply = _serve_one(request, namespace, objects)
        except NotPlain as exc:
            reply = {"not_plain": str(exc)}
        except BaseException as exc:  # noqa: BLE001 - SystemExit included: a call does not end the program
            reply = {"raised": [type(exc).__name__, str(exc)[:300]]}
        send(responses, reply)


def _serve_one(request, namespace, objects):
    """One request of the tests, answered in the program's own namespace."""
    owner = objects[request["object"]] if request.get("object") is not None else None
    if request.get("get"):  # a variable (or an object's attribute) the tests read: its value as it is now
        value = namespace[request["name"]] if owner is None else getattr(owner, request["name"])
        return {"callable": True} if owner is not None and callable(value) else {"value": encode(value)}
    if owner is not None:
        target = getattr(owner, request["name"])
    elif request["method"]:
        target = getattr(namespace["Solution"](), request["name"])
    else:
        target = namespace[request["name"]]
    args = [decode(arg) for arg in request["args"]]
    kwargs = {key: decode(value) for key, value in request["kwargs"]}
    value = target(*args, **kwargs)
    if request.get("new"):  # a class the tests instantiate: the instance stays here
        objects.append(value)
        return {"object": len(objects) - 1}
    return {"value": encode(value)}


class Program:
    """The harness's handle on the program's process: calls across a pipe, each with a time limit."""

    def __init__(self, per_call):
        self.per_call = per_call
        self.calls = 0
        self.status = None
        self.broken = None  # (kind, detail) once the process can take no more calls
        requests_r, self.requests = os.pipe()
        self.responses, responses_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the harness
            for fd in (PLAN_FD, REPORT_FD, self.requests, self.responses):
                os.close(fd)
            try:
                serve(requests_r, responses_w)
            finally:
                os._exit(0)
        os.close(requests_r)
        os.close(responses_w)

    def start(self):
        """Wait for the program to load: {functions, methods, error}."""
        self.status = self._reply("loading the program")
        return self.status

    def call(self, name, args, kwargs=None, method=False, get=False, owner=None, new=False):
        """The program's `name(*args, **kwargs)` (`get`: the value of its variable `name`), as plain data.

        `owner`: the index of an object the tests made, whose method or attribute `name` is; `new`: `name`
        is a class, and the answer is the index of the instance (kept in the program's process)."""
        if self.broken:
            raise ProgramGone(self.broken[1])
        self.calls += 1
        what = name if get else f"{name}()"
        try:
            send(self.requests, {"name": name, "method": method, "get": get, "object": owner, "new": new,
                                 "args": [encode(a) for a in args], "kwargs": [[k, encode(v)] for k, v in (kwargs or {}).items()]})
        except NotPlain as exc:
            raise TypeError(f"an argument of {name}() is not plain data ({exc})") from None
        except OSError:
            raise self._break(*self._ended(what)) from None
        reply = self._reply(what)
        if owner is not None and get and reply.get("callable") is True:
            return Proxy(self, name, owner=owner)
        if new and type(reply.get("object")) is int:
            return ObjectProxy(self, reply["object"])
        if "value" in reply:
            try:
                return decode(reply["value"])
            except (ValueError, TypeError, RecursionError) as exc:
                raise self._break("error", f"{what} answered with malformed data ({exc})") from None
        if "not_plain" in reply:  # not catchable by the tests: a value that is not data never passes
            raise self._break("error", f"{what} {'is' if get else 'returned'} {reply['not_plain']}"[:300])
        kind, message = [str(part) for part in (reply.get("raised") or ["ProgramError", "malformed reply"])[:2]]
        if kind == "MemoryError":
            raise self._break("memory", f"{what} ran out of memory")
        cls = getattr(builtins, kind, None)
        error = None
        if isinstance(cls, type) and issubclass(cls, Exception):
            try:
                error = cls(message)
            except Exception:  # noqa: BLE001 - exception types with other signatures
                error = None
        error = error or ProgramError(f"{kind}: {message}")
        error.distill_detail = f"the program raised {kind}: {message}"[:300]
        raise error

    def _reply(self, what):
        try:
            reply = receive(self.responses, time.monotonic() + self.per_call)
        except CallTimeout:
            raise self._break("timeout", f"{what} did not finish within {self.per_call:g}s") from None
        except ProgramGone as exc:
            raise self._break("error", f"{what}: {exc}") from None
        if reply is None:
            raise self._break(*self._ended(what))
        if not isinstance(reply, dict):
            raise self._break("error", f"{what}: malformed reply")
        return reply

    def _ended(self, what):
        """(kind, detail) of a program's process that went away."""
        time.sleep(0.05)
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid = 0
        if not pid:
            return "error", f"the program closed its pipes during {what}"
        code = os.waitstatus_to_exitcode(status)
        if code == -signal.SIGXCPU:
            return "timeout", f"the program ran out of CPU time during {what}"
        how = f"exit code {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
        return "error", f"the program's process ended during {what} ({how})"

    def _break(self, kind, detail):
        if self.broken is None:
            self.broken = (kind, detail)
        return (CallTimeout if kind == "timeout" else ProgramGone)(detail)


class Proxy:
    """What the tests see as one of the program's functions: a call across the pipe."""

    def __init__(self, program, name, owner=None, method=False):
        self.program, self.__name__, self.owner, self.method = program, name, owner, method

    def __call__(self, *args, **kwargs):
        return self.program.call(self.__name__, args, kwargs, method=self.method, owner=self.owner)


class ClassProxy:
    """What the tests see as one of the program's classes: calling it makes an instance in the program's process."""

    def __init__(self, program, name, method=False):
        self.program, self.__name__ = program, name

    def __call__(self, *args, **kwargs):
        return self.program.call(self.__name__, args, kwargs, new=True)


class ObjectProxy:
    """An instance the tests made: its methods are calls across the pipe, its attributes values read there."""

    def __init__(self, program, index):
        object.__setattr__(self, "_program", program)
        object.__setattr__(self, "_index", index)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._program.call(name, (), get=True, owner=self._index)  # a method comes back as a Proxy


def _failure(program, exc):
    """(kind, detail) of a call or a test script that raised `exc`."""
    if program.broken:
        return program.broken
    return "error", getattr(exc, "distill_detail", None) or f"{type(exc).__name__}: {exc}"[:300]


# ---------------------------------------------------------------------------- the three modes


# Runs solution.py as `python solution.py` would, in an interpreter started without `site` (-S):
# 40 ms less per case. The paths site would have added are this interpreter's; exit() and quit()
# are the builtins site would have added.
_SCRIPT = (
    "import sys, builtins, _sitebuiltins\nsys.path[:] = {paths!r}\nsys.argv = ['solution.py']\n"
    "builtins.exit, builtins.quit = (_sitebuiltins.Quitter(n, 'Ctrl-D (i.e. EOF)') for n in ('exit', 'quit'))\n"
    "import runpy\nrunpy.run_path('solution.py', run_name='__main__')\n"
)


def run_stdin(plan, limit, report):
    """Each case: the program as a script, the input on stdin; its output goes back to the host."""
    script, prepare = _SCRIPT.format(paths=sys.path), _cpu_limit(limit)
    for line in plan:
        case = json.loads(line)
        with open("input.txt", "w", encoding="utf-8") as handle:
            handle.write(case["input"])
        with open("input.txt", "rb") as stdin, open("output.txt", "wb") as out, open("errors.txt", "wb") as err:
            process = subprocess.Popen([sys.executable, "-I", "-B", "-S", "-c", script], stdin=stdin, stdout=out, stderr=err,
                                       start_new_session=True, preexec_fn=prepare)
            timed_out = False
            try:
                code = process.wait(limit)
            except subprocess.TimeoutExpired:
                timed_out, code = True, None
            _kill_all(process.pid)
            process.wait()
        with open("output.txt", "rb") as out, open("errors.txt", "rb") as err:
            stdout = out.read().decode("utf-8", "replace")
            stderr = err.read()[-2000:].decode("utf-8", "replace")
        report({"case": case["case"], "stdout": stdout, "code": code, "timeout": timed_out, "stderr": stderr})


def _cpu_limit(seconds):
    import ctypes
    import resource

    libc = ctypes.CDLL(None, use_errno=True)

    def apply():  # in the case's process, before it runs the program
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the harness
        whole = max(1, int(seconds + 0.999))
        resource.setrlimit(resource.RLIMIT_CPU, (whole, whole + 1))

    return apply


def _kill_all(group):
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
    if PIDNS:  # alone in our PID namespace: whatever a case left running (daemons included) dies here
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass


def run_call(program, plan, entry, report):
    """Each case: the entry point called with the case's arguments; the value goes back to the host."""
    method = entry in program.status["methods"]
    if not method and entry not in program.status["functions"]:
        return report_missing(program, entry, report)
    for line in plan:
        case = json.loads(line)
        try:
            value = program.call(entry, case["input"], method=method)
        except BaseException as exc:  # noqa: BLE001 - whatever the call did is this case's verdict
            kind, detail = _failure(program, exc)
            return report({"case": case["case"], "kind": kind, "detail": detail})
        report({"case": case["case"], "value": encode(value)})


def run_assert(program, header, report):
    """The test code here, the program's functions behind proxies; passes only if the code runs to its end."""
    entry = header.get("entry_point")
    functions, classes = set(program.status["functions"]), set(program.status["classes"])
    method = entry in program.status["methods"] and entry not in functions  # LeetCode: Solution().entry
    if entry and not method and entry not in functions | classes:
        return report_missing(program, entry, report)
    code = header["code"]
    namespace = {"__name__": "__tests__", "__builtins__": builtins}
    free = _free_names(code)
    wanted = _tested_names(code, free, functions | classes, entry if not method else None)
    namespace.update({name: (ClassProxy if name in classes else Proxy)(program, name) for name in wanted})
    if entry:
        namespace["candidate"] = (ClassProxy if entry in classes else Proxy)(program, entry, method=method)
    try:  # variables the tests read (`assert result == 5`): their values after loading, as plain data
        namespace.update({name: program.call(name, (), get=True) for name in sorted(free & set(program.status["variables"]))
                          if not hasattr(builtins, name)})
    except BaseException as exc:  # noqa: BLE001
        kind, detail = _failure(program, exc)
        return report({"passed": False, "kind": kind, "detail": detail})
    budget = program.per_call * SCRIPT_CALLS
    outcome = {"passed": False}
    signal.signal(signal.SIGALRM, _script_timeout)
    signal.setitimer(signal.ITIMER_REAL, budget)
    try:
        exec(compile(code, "<tests>", "exec"), namespace)
        check = namespace.get("check")
        if entry and callable(check) and not _calls_check(code):  # HumanEval: the harness calls check(candidate)
            check(namespace["candidate"])
        signal.setitimer(signal.ITIMER_REAL, 0)
        outcome = {"passed": program.calls > 0} if program.calls else {"passed": False, "kind": "error", "detail": "the tests never called the program"}
    except BaseException as exc:  # noqa: BLE001 - every way the tests can end is a verdict
        signal.setitimer(signal.ITIMER_REAL, 0)
        if isinstance(exc, ScriptTimeout):
            kind, detail = "timeout", f"the tests did not finish within {budget:g}s ({SCRIPT_CALLS} call time limits)"
        elif program.broken:
            kind, detail = program.broken
        else:
            kind, detail = "error", _where(exc, code)
            if isinstance(exc, NameError) and program.status.get("error"):
                detail += f" (loading the program raised {program.status['error']})"
        outcome.update(kind=kind, detail=detail)
    outcome["calls"] = program.calls
    report(outcome)


class ScriptTimeout(BaseException):
    """The whole test script ran out of time."""


def _script_timeout(signum, frame):
    raise ScriptTimeout()


def _free_names(code):
    """Names the test code uses without defining or importing them (builtins' names included)."""
    import ast

    tree = ast.parse(code)
    used, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return used - bound


def _tested_names(code, free, defined, entry):
    """The program's names the tests get: those they leave free, the entry point, and a builtin's name only for
    the function under test. A program's `abs` or `len` never replaces the tests' own, unless the tests call
    none of the program's other names: then the first builtin-named one they call is what they test (MBPP's
    `def sum(...)` checked by `assert sum(1, 2) == 3`)."""
    import ast

    wanted = {name for name in free if not hasattr(builtins, name)} & defined | ({entry} if entry else set())
    if wanted:
        return wanted
    calls = [node for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]
    for node in sorted(calls, key=lambda node: (node.lineno, node.col_offset)):
        if node.func.id in free and node.func.id in defined:
            return {node.func.id}
    return set()


def _calls_check(code):
    import ast

    for statement in ast.parse(code).body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for node in ast.walk(statement):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "check":
                return True
    return False


def _where(exc, code):
    """'AssertionError at tests line 3: assert add(1, 2) == 4', or what the program raised, and where."""
    line = None
    trace = exc.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == "<tests>":
            line = trace.tb_lineno
        trace = trace.tb_next
    text = getattr(exc, "distill_detail", None) or type(exc).__name__ + (f": {exc}" if str(exc) else "")
    lines = code.splitlines()
    if line is not None and line <= len(lines):
        text += f" at tests line {line}: {lines[line - 1].strip()}"
    return text[:400]


def report_missing(program, entry, report):
    error = program.status.get("error")
    report({"passed": False, "case": 0, "kind": "error",
            "detail": f"the program does not define {entry}()" + (f" (loading it raised {error})" if error else "")})


def main():
    global PLAN_FD, REPORT_FD, PIDNS
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE 0, before anything else
        sys.exit("the harness could not make itself non-dumpable")
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)  # test data may hold integers of any size
    PLAN_FD, REPORT_FD = int(sys.argv[1]), int(sys.argv[2])
    site, PIDNS, mode, limit = sys.argv[3], sys.argv[4] == "pid", sys.argv[5], float(sys.argv[6])
    os.set_inheritable(PLAN_FD, False)
    os.set_inheritable(REPORT_FD, False)
    # The program's process starts before the plan (and the test code in it) is read.
    program = Program(limit) if mode in ("call", "assert") else None
    plan = os.fdopen(PLAN_FD, "rb")
    header = json.loads(plan.readline())
    out = os.fdopen(REPORT_FD, "w", encoding="utf-8")

    def report(message):
        message["token"] = header["token"]
        out.write(json.dumps(message) + "\n")
        out.flush()

    if site and mode == "assert":  # the test code's own imports (numpy for HumanEval+), not the program's
        sys.path.append(site)
    if program is not None:
        try:
            program.start()
        except (CallTimeout, ProgramGone):
            report({"passed": False, "case": 0, "kind": program.broken[0], "detail": program.broken[1]})
            program = None
        else:
            report({"loaded": True, "error": program.status.get("error")})
    if mode == "stdin":
        run_stdin(plan, limit, report)
    elif program is not None and mode == "call":
        run_call(program, plan, header["entry_point"], report)
    elif program is not None:
        run_assert(program, header, report)
    report({"end": True})
    out.close()
    os._exit(0)  # the program's process dies with the PID namespace


PLAN_FD = REPORT_FD = -1
PIDNS = False

if __name__ == "__main__":
    main()
