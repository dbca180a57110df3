"""Child processes that die with us, SIGKILL included.

An orphaned vLLM engine or server keeps its (GPU) memory until someone kills it by hand. The
kernel can do this for us: a child that asks for PR_SET_PDEATHSIG gets the signal when the
thread that forked it exits, however it exits. Three ways in:

- `die_with_parent`: that request, for the first lines of a child we fork ourselves.
- `start`/`stop`: Popen with it and with its own process group, so `stop` can take the child's
  own children down too; `python_command` makes a Python child (a vLLM server) pass it on to
  the processes it starts in turn.
- `guard`: for children that libraries start through multiprocessing (vLLM's engine core and
  its workers, with spawn on CPU and fork on GPU; the worker pool's forkserver and workers):
  every process this one forks or spawns from its main thread asks for the signal first thing,
  and installs the same guard, so grandchildren die with their parents in a chain. Only the
  main thread's children: the signal would also fire when a short-lived thread ends.
  multiprocessing's resource tracker is left alone: it exits by itself once the processes that
  use it are gone, after unlinking the shared memory they left behind. It does so silently: its
  "leaked shared_memory" warning after an interrupt (what an engine killed mid-run leaves) would
  follow our one-line message, and the clean-up it announces is the one intended.

`interrupt_on_sigterm`: SIGTERM, what SLURM and Kubernetes send first (then SIGKILL after a
grace period), ends a command as Ctrl-C does: outputs kept, one line saying how to continue,
children stopped; `interrupted_exit_code` is then 143 (128 + SIGTERM), 130 after Ctrl-C.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
# Where `distill` is imported from: a spawned child imports this module from the same place
# before anything else, whatever its working directory or sys.path.
_ROOT = str(Path(__file__).resolve().parents[2])
# multiprocessing's fresh interpreters, by the program they run (`python -c PROGRAM`).
_GUARDED_PROGRAMS = ("from multiprocessing.spawn import", "from multiprocessing.forkserver import")
_PRCTL: Any = None
_GUARDED = False
_FORKING_PARENT = 0  # set just before a fork: our pid when we fork from the main thread, else 0
_SPAWN = None  # multiprocessing.util.spawnv_passfds, before guard() wrapped it
_TRACKER = "from multiprocessing.resource_tracker import"
_QUIET_TRACKER = "import warnings; warnings.filterwarnings('ignore', message='resource_tracker:')"
_SIGNAL: int | None = None  # the signal that interrupted us (SIGTERM), None for Ctrl-C or none


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> None:
    """In a child process: receive `sig` when the parent dies (Linux; a no-op elsewhere).

    `parent`: the pid we were started by; if it has already died (before the request took
    effect), we die now instead of living on as an orphan.
    """
    with contextlib.suppress(OSError, AttributeError):
        _prctl()(PR_SET_PDEATHSIG, sig)
        if parent is not None and os.getppid() != parent:
            os.kill(os.getpid(), sig)


def _prctl():
    """libc's prctl, looked up once (not in a freshly forked child, where dlopen may deadlock)."""
    global _PRCTL
    if _PRCTL is None:
        _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
    return _PRCTL


def guard() -> None:
    """From now on, the processes this one starts through multiprocessing die with it (see above).
    Idempotent; inherited by forked children, passed on to spawned ones."""
    global _GUARDED, _SPAWN
    if _GUARDED or not sys.platform.startswith("linux"):
        return
    _GUARDED = True
    with contextlib.suppress(OSError, AttributeError):
        _prctl()
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
    import multiprocessing.util

    _SPAWN = multiprocessing.util.spawnv_passfds
    multiprocessing.util.spawnv_passfds = _spawnv_passfds


def adopt(parent: int) -> None:
    """First thing in a child started by a guarded process: die with it, guard our own children."""
    die_with_parent(parent=parent)
    guard()


def _before_fork() -> None:
    global _FORKING_PARENT
    _FORKING_PARENT = os.getpid() if threading.current_thread() is threading.main_thread() else 0


def _after_fork_in_child() -> None:
    if _FORKING_PARENT:
        die_with_parent(parent=_FORKING_PARENT)


def _preceded_by(call: str, program: str) -> str:
    """`program` for `python -c`, run after `call` (a function of this module; sys.path left as it was)."""
    name = call.split("(")[0]
    return (f"import sys; sys.path.insert(0, {_ROOT!r}); from distill.core.processes import {name}; {call}; "
            f"sys.path.remove({_ROOT!r}); {program}")


def _spawnv_passfds(path, args, passfds):
    """multiprocessing starts every fresh interpreter here (spawn, forkserver, resource tracker)."""
    args = list(args)
    if "-c" in args:
        at = args.index("-c") + 1
        if args[at].startswith(_GUARDED_PROGRAMS) and threading.current_thread() is threading.main_thread():
            args[at] = _preceded_by(f"adopt({os.getpid()})", args[at])
        elif args[at].startswith(_TRACKER):
            args[at] = f"{_QUIET_TRACKER}; {args[at]}"
    return _SPAWN(path, args, passfds)


def interrupt_on_sigterm() -> None:
    """From now on SIGTERM raises KeyboardInterrupt in the main thread, as Ctrl-C does (see above)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)


def _terminated(signum: int, frame: Any) -> None:
    global _SIGNAL
    _SIGNAL = signum
    # Once: the clean-up that follows (stopping an engine, closing files) runs to its end; a
    # scheduler that loses patience sends SIGKILL, which our children follow (die_with_parent).
    signal.signal(signum, signal.SIG_IGN)
    raise KeyboardInterrupt


def interrupted_exit_code() -> int:
    """The exit code after an interrupt: 128 + the signal (143 for SIGTERM, 130 for Ctrl-C)."""
    return 128 + (_SIGNAL or signal.SIGINT)


def python_command(module: str, *args: str) -> list[str]:
    """`python -m module args` for `start`, with `guard()` on in it: what it starts dies with it."""
    program = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
    return [sys.executable, "-c", _preceded_by("guard()", program), module, *args]


def _child_setup() -> None:
    die_with_parent()


def start(command: list[str], **kwargs: Any) -> subprocess.Popen:
    """Popen a child in its own process group that is killed when this process dies."""
    return subprocess.Popen(command, preexec_fn=_child_setup, start_new_session=True, **kwargs)


def stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the child's process group, SIGKILL it after `grace` seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

