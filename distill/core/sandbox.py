"""Running untrusted Python (teacher-written solutions) against tests, contained.

Layers, from the outside in:
- a wall-clock timeout, after which the whole process group is killed (SIGKILL);
- its own session and process group (`start_new_session`); the launcher dies with the process that
  started it (PR_SET_PDEATHSIG), SIGKILL included;
- as root (CI containers, this machine): new network, PID and mount namespaces. The network
  namespace has no interfaces up, so nothing can be reached; the program's init process dies
  with the launcher (PR_SET_PDEATHSIG) and the kernel then kills everything left in the PID
  namespace, including daemonised fork-bomb children that left the process group; /tmp,
  /var/tmp and /dev/shm are fresh empty tmpfs mounts. The program runs as `nobody`, so it
  can neither write nor delete anything outside its own working directory;
- without root: a user+network+PID namespace when the kernel allows it, else only the
  process group and the limits below (`isolation()` says which);
- rlimits: CPU seconds, address space, file size (which also caps stdout/stderr, written to
  files), number of processes (effective when not root: root ignores RLIMIT_NPROC, which is
  why the program drops to `nobody` first);
- an empty environment, a fresh temporary working directory, Python in isolated mode (-I).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.core.processes import die_with_parent

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
NOBODY = 65534


@dataclass
class Limits:
    wall_s: float = 5.0
    cpu_s: float = 5.0
    memory_mb: int = 1024
    file_mb: int = 8  # also the cap on captured stdout/stderr
    nproc: int = 64


@dataclass
class RunResult:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TestOutcome:
    passed: bool
    reason: str
    fraction: float


# Runs as the launcher (outside the namespaces' init): mounts, then fork an init that forks
# the program. Kept as source text so it runs in a fresh interpreter with nothing imported.
_LAUNCHER = r"""
import ctypes, json, os, resource, signal, sys
cfg = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
os.chdir(cfg["cwd"])
if cfg["mounts"]:
    work = os.open(".", os.O_RDONLY | os.O_DIRECTORY)  # still reachable after /tmp is covered
    libc.mount(b"none", b"/", None, 16384 | 262144, None)  # MS_REC | MS_PRIVATE
    for target in (b"/tmp", b"/var/tmp", b"/dev/shm"):
        if os.path.isdir(target):
            libc.mount(b"tmpfs", target, b"tmpfs", 0, b"size=16m,mode=1777")
    # The interpreter may live where `nobody` cannot reach (/root/.pyenv): show it read-only
    # at /tmp/.python instead.
    os.mkdir("/tmp/.python", 0o755)
    libc.mount(cfg["prefix"].encode(), b"/tmp/.python", None, 4096 | 16384, None)  # MS_BIND | MS_REC
    libc.mount(b"none", b"/tmp/.python", None, 32 | 4096 | 1, None)  # MS_REMOUNT | MS_BIND | MS_RDONLY
    os.mkdir("/tmp/work", 0o755)
    libc.mount(f"/proc/self/fd/{work}".encode(), b"/tmp/work", None, 4096, None)  # the real dir, shown in /tmp
    os.chdir("/tmp/work")
init = os.fork()
if init == 0:
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the launcher
    program = os.fork()
    if program == 0:
        mb = 1024 * 1024
        resource.setrlimit(resource.RLIMIT_CPU, (cfg["cpu"], cfg["cpu"] + 1))
        resource.setrlimit(resource.RLIMIT_AS, (cfg["memory_mb"] * mb,) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (cfg["file_mb"] * mb,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if cfg["uid"] is not None:
            os.setgroups([])
            os.setgid(cfg["uid"])
            os.setuid(cfg["uid"])
        resource.setrlimit(resource.RLIMIT_NPROC, (cfg["nproc"],) * 2)
        python, env = sys.executable, {}
        if cfg["mounts"]:
            python = "/tmp/.python/" + cfg["python"]
            env = {"LD_LIBRARY_PATH": "/tmp/.python/lib"}
        os.execve(python, [python, "-I", "-B", "main.py"], env)
    while True:  # init: reap everything, leave when the program has finished
        pid, status = os.wait()
        if pid == program:
            os._exit(os.waitstatus_to_exitcode(status) % 256 if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
_, status = os.waitpid(init, 0)
os._exit(os.waitstatus_to_exitcode(status) % 256 if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
"""

_PREAMBLE = """\
import socket as _s
def _no_network(*a, **k):
    raise OSError("network access is disabled in the sandbox")
_s.socket = _s.create_connection = _s.socketpair = _no_network
del _s, _no_network
"""


# The base interpreter (not the venv's wrapper) and where it is relative to its prefix.
_PREFIX = os.path.realpath(sys.base_prefix)
_PYTHON = os.path.relpath(os.path.realpath(getattr(sys, "_base_executable", sys.executable)), _PREFIX)


@functools.cache
def isolation() -> dict[str, Any]:
    """Which containment this machine allows: namespaces to unshare, user to run as, mounts."""
    if os.geteuid() == 0:
        flags, uid, mounts = CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWNS, NOBODY, True
    else:
        flags, uid, mounts = CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWPID, None, False
    pid = os.fork()
    if pid == 0:  # probe in a throwaway child: unshare changes the caller for good
        os._exit(0 if ctypes.CDLL(None, use_errno=True).unshare(flags) == 0 else 1)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        flags, mounts = 0, False
    names = [name for bit, name in ((CLONE_NEWNET, "network"), (CLONE_NEWPID, "pid"), (CLONE_NEWNS, "mount")) if flags & bit]
    return {"flags": flags, "uid": uid, "mounts": mounts, "namespaces": names}


def run_python(code: str, stdin: str = "", limits: Limits | None = None) -> RunResult:
    """Run `code` as main.py in a fresh directory under every containment layer available."""
    limits = limits or Limits()
    mode = isolation()
    base = Path(tempfile.mkdtemp(prefix="distill-sandbox-"))
    try:
        work = base / "work"
        work.mkdir()
        preamble = "" if mode["flags"] & CLONE_NEWNET else _PREAMBLE
        (work / "main.py").write_text(preamble + code, encoding="utf-8")
        (base / "stdin").write_text(stdin, encoding="utf-8")
        if mode["uid"] is not None:
            os.chown(base, mode["uid"], mode["uid"])
            os.chown(work, mode["uid"], mode["uid"])
            os.chmod(base, 0o700)
        cfg = {
            "cwd": str(work), "mounts": mode["mounts"], "uid": mode["uid"], "cpu": max(1, int(limits.cpu_s + 0.999)),
            "memory_mb": limits.memory_mb, "file_mb": limits.file_mb, "nproc": limits.nproc,
            "prefix": _PREFIX, "python": _PYTHON,
        }
        flags = mode["flags"]

        def enter_namespaces() -> None:  # runs in the child between fork and exec
            if flags and ctypes.CDLL(None, use_errno=True).unshare(flags) != 0:
                os._exit(125)
            die_with_parent()  # after unshare, which may reset it; the launcher's init dies with the launcher

        with open(base / "stdin", "rb") as stdin_file, open(base / "stdout", "wb") as out, open(base / "stderr", "wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _LAUNCHER, json.dumps(cfg)],
                stdin=stdin_file, stdout=out, stderr=err, env={}, cwd=work,
                start_new_session=True, preexec_fn=enter_namespaces,
            )
            timed_out = False
            try:
                returncode: int | None = process.wait(timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                timed_out, returncode = True, None
            finally:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        cap = limits.file_mb * 1024 * 1024
        return RunResult(
            returncode=returncode,
            stdout=_read(base / "stdout", cap),
            stderr=_read(base / "stderr", cap),
            timed_out=timed_out,
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _read(path: Path, cap: int) -> str:
    with open(path, "rb") as handle:
        return handle.read(cap).decode("utf-8", errors="replace")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip()[:200] if lines else ""


def _failure(result: RunResult, limits: Limits) -> str:
    if result.timed_out:
        return f"timed out after {limits.wall_s:g}s"
    if result.returncode in (137, 128 + signal.SIGXCPU):
        return "killed (CPU or memory limit)"
    error = _last_line(result.stderr)
    return f"exit code {result.returncode}" + (f": {error}" if error else "")


def _clean(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def _show(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= 40 else text[:39] + "…")


def run_tests(program: str, tests: list[dict[str, Any]] | str, limits: Limits | None = None) -> TestOutcome:
    """Run a program against stdin/stdout cases or a string of asserts; stops at the first failure."""
    limits = limits or Limits()
    if isinstance(tests, str):
        result = run_python(program + "\n\n" + tests + "\n", "", limits)
        if result.returncode == 0 and not result.timed_out:
            return TestOutcome(True, "all asserts passed", 1.0)
        return TestOutcome(False, f"asserts failed: {_failure(result, limits)}", 0.0)
    if not isinstance(tests, list) or not tests:
        return TestOutcome(False, "no tests to run", 0.0)
    for number, case in enumerate(tests, start=1):
        if not isinstance(case, dict) or "input" not in case or "output" not in case:
            return TestOutcome(False, f"test {number} is not an {{input, output}} case", 0.0)
        result = run_python(program, str(case["input"]), limits)
        where = f"test {number}/{len(tests)}"
        if result.timed_out or result.returncode != 0:
            return TestOutcome(False, f"{where}: {_failure(result, limits)}", (number - 1) / len(tests))
        if _clean(result.stdout) != _clean(str(case["output"])):
            got, expected = _show(result.stdout), _show(str(case["output"]))
            return TestOutcome(False, f"{where}: expected {expected}, got {got}", (number - 1) / len(tests))
    return TestOutcome(True, f"passed {len(tests)}/{len(tests)} tests", 1.0)
