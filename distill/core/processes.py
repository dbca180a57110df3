"""Child processes that die with us, SIGKILL included.

An orphaned vLLM engine or server keeps its (GPU) memory until someone kills it by hand. The
kernel can do this for us: a child that asks for PR_SET_PDEATHSIG gets the signal when the
thread that forked it exits, however it exits. `die_with_parent` is that request, for
`subprocess.Popen(preexec_fn=...)` or the first lines of a forked child; `start` is Popen with
it and with its own process group, so `stop` can take the child's own children down too.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from typing import Any

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """In a child process: receive `sig` when the parent dies (Linux; a no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)


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
