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

With a `Harness`, main.py is trusted harness code (`distill.core.sandbox_harness`) and the
program is solution.py beside it. The harness gets two extra descriptors: its plan (an unlinked
root-owned file: no path leads to it) and a report pipe the host reads line by line while it
runs. The launcher and its init close both, so the harness is their only holder.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.core.paths import scratch_prefix
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
    __test__ = False  # not a pytest class

    passed: bool
    reason: str
    fraction: float


@dataclass
class Harness:
    """Trusted code run as main.py (`main.py PLAN_FD REPORT_FD SITE PIDNS *args`), the program beside it as solution.py."""

    source: str
    args: list[str]
    plan: bytes  # readable only by the harness, on PLAN_FD
    on_report: Callable[[bytes], bool]  # each line the harness writes on REPORT_FD; False stops the run


# Runs as the launcher (outside the namespaces' init): mounts, then fork an init that forks
# the program. Kept as source text so it runs in a fresh interpreter with nothing imported.
_LAUNCHER = r"""
import ctypes, json, os, resource, signal, sys
cfg = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
os.chdir(cfg["cwd"])
if cfg["mounts"]:
    # Opened before /tmp is covered, so that a run directory, interpreter or virtual environment
    # that lives under /tmp is still reachable to mount.
    work = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    prefix = os.open(cfg["prefix"], os.O_RDONLY | os.O_DIRECTORY)
    site = os.open(cfg["site"], os.O_RDONLY | os.O_DIRECTORY) if cfg["site"] else None
    libc.mount(b"none", b"/", None, 16384 | 262144, None)  # MS_REC | MS_PRIVATE
    for target in (b"/tmp", b"/var/tmp", b"/dev/shm"):
        if os.path.isdir(target):
            libc.mount(b"tmpfs", target, b"tmpfs", 0, b"size=16m,mode=1777")
    # The interpreter may live where `nobody` cannot reach (/root/.pyenv): show it read-only
    # at /tmp/.python instead.
    os.mkdir("/tmp/.python", 0o755)
    libc.mount(f"/proc/self/fd/{prefix}".encode(), b"/tmp/.python", None, 4096 | 16384, None)  # MS_BIND | MS_REC
    libc.mount(b"none", b"/tmp/.python", None, 32 | 4096 | 1, None)  # MS_REMOUNT | MS_BIND | MS_RDONLY
    if site is not None:  # the host's packages, read-only, for the harness's trusted test code
        os.mkdir("/tmp/.site", 0o755)
        libc.mount(f"/proc/self/fd/{site}".encode(), b"/tmp/.site", None, 4096 | 16384, None)
        libc.mount(b"none", b"/tmp/.site", None, 32 | 4096 | 1, None)
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
        os.execve(python, [python, "-I", "-B", "main.py", *cfg["argv"]], env)
    for fd in cfg["keep_fds"]:  # only the program keeps the harness's descriptors
        os.close(fd)
    while True:  # init: reap everything, leave when the program has finished
        pid, status = os.wait()
        if pid == program:
            os._exit(os.waitstatus_to_exitcode(status) % 256 if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
for fd in cfg["keep_fds"]:
    os.close(fd)
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
# This environment's packages (a virtual environment's site-packages), when not the base's own.
_SITE = os.path.realpath(sysconfig.get_paths()["purelib"])
_SITE = "" if _SITE.startswith(_PREFIX + os.sep) else _SITE


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


def run_python(code: str, stdin: str = "", limits: Limits | None = None, harness: Harness | None = None) -> RunResult:
    """Run `code` as main.py (with a harness: as solution.py) in a fresh directory, contained."""
    limits = limits or Limits()
    mode = isolation()
    base = Path(tempfile.mkdtemp(prefix=scratch_prefix("sandbox", owners=(NOBODY,))))  # a killed worker's is swept by the next
    try:
        work = base / "work"
        work.mkdir()
        preamble = "" if mode["flags"] & CLONE_NEWNET else _PREAMBLE
        (work / ("solution.py" if harness else "main.py")).write_text(preamble + code, encoding="utf-8")
        if harness:
            (work / "main.py").write_text(harness.source, encoding="utf-8")
        (base / "stdin").write_text(stdin, encoding="utf-8")
        if mode["uid"] is not None:
            os.chown(base, mode["uid"], mode["uid"])
            os.chown(work, mode["uid"], mode["uid"])
            os.chmod(base, 0o700)
        cfg = {
            "cwd": str(work), "mounts": mode["mounts"], "uid": mode["uid"], "cpu": max(1, int(limits.cpu_s + 0.999)),
            "memory_mb": limits.memory_mb, "file_mb": limits.file_mb, "nproc": limits.nproc,
            "prefix": _PREFIX, "python": _PYTHON, "site": _SITE if harness and mode["mounts"] else "",
            "argv": [], "keep_fds": [],
        }
        flags = mode["flags"]

        def enter_namespaces() -> None:  # runs in the child between fork and exec
            if flags and ctypes.CDLL(None, use_errno=True).unshare(flags) != 0:
                os._exit(125)
            die_with_parent()  # after unshare, which may reset it; the launcher's init dies with the launcher

        with contextlib.ExitStack() as stack:
            stdin_file, out, err = (stack.enter_context(open(base / name, m)) for name, m in (("stdin", "rb"), ("stdout", "wb"), ("stderr", "wb")))
            report = None
            if harness:
                plan = stack.enter_context(tempfile.TemporaryFile(dir=base))  # root's, 0600, never has a name
                plan.write(harness.plan)
                plan.flush()
                plan.seek(0)
                report, report_w = os.pipe()
                stack.callback(os.close, report)
                site = ("/tmp/.site" if mode["mounts"] else _SITE) if _SITE else ""
                cfg["keep_fds"] = [plan.fileno(), report_w]
                cfg["argv"] = [str(plan.fileno()), str(report_w), site, "pid" if flags & CLONE_NEWPID else "", *harness.args]
            try:
                process = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _LAUNCHER, json.dumps(cfg)],
                    stdin=stdin_file, stdout=out, stderr=err, env={}, cwd=work,
                    start_new_session=True, preexec_fn=enter_namespaces, pass_fds=cfg["keep_fds"],
                )
            finally:
                if harness:
                    os.close(report_w)
            deadline = time.monotonic() + limits.wall_s
            timed_out = False
            try:
                if report is not None:
                    timed_out = not _read_report(report, harness.on_report, deadline)
                returncode: int | None = None if timed_out else process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out, returncode = True, None
            except _Stop:
                returncode = None
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


class _Stop(Exception):
    """The report's reader has seen enough (a failed test): the run ends now."""


def _read_report(fd: int, on_line: Callable[[bytes], bool], deadline: float) -> bool:
    """Feed the report's lines to `on_line` until the harness closes it; False if the deadline came first."""
    pending = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        if not select.select([fd], [], [], remaining)[0]:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            if pending and not on_line(bytes(pending)):
                raise _Stop
            return True
        pending += chunk
        while (newline := pending.find(b"\n")) >= 0:
            line = bytes(pending[:newline])
            del pending[: newline + 1]
            if not on_line(line):
                raise _Stop


def _read(path: Path, cap: int) -> str:
    with open(path, "rb") as handle:
        return handle.read(cap).decode("utf-8", errors="replace")
