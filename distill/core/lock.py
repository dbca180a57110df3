"""One writer at a time for a resumable output (a trace file, a run folder).

Two processes appending to one trace file both resume from what it held when they started, so
every missing sample is paid for twice and the file then holds each id twice. `hold(path)`
takes an exclusive lock on `.NAME.lock` beside `path` (a file, or a run folder) before anything is read or sampled; a
second writer is refused in one line naming the holder (process id and host, written into the
lock file) and exits 2 with nothing written.

The lock is a POSIX record lock (`fcntl`, F_SETLK) on the lock file, not the file's existence:
- its holder's death releases it, however it dies (SIGKILL, a crash): nothing is left to take
  over by hand on the same machine;
- it is shared between machines on NFSv3 (lockd), NFSv4 (in the protocol), Lustre mounted with
  `-o flock` (the default on most clusters), GPFS/Spectrum Scale, BeeGFS and CephFS. A crashed
  machine's locks are released by the server when its lease ends (NFSv4: about 90 s).
- where the file system refuses locks (Lustre with `-o noflock`, some FUSE mounts: ENOLCK,
  ENOSYS, EOPNOTSUPP) the lock file alone is used: a holder on this host whose process is gone
  is taken over; a holder on another host cannot be checked, and the message says to delete the
  lock file once that process is known to be gone. Lustre with `-o localflock` locks within one
  machine only: two machines writing one file are then not stopped (documented in docs/promises.md).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from distill.core.errors import InputError
from distill.core.paths import _alive

UNSUPPORTED = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)
_HELD: set[str] = set()  # lock files this process holds (POSIX locks do not stop the same process)


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of an output (a file or a run folder): `.NAME.lock` beside it, symlinks resolved
    (two names for one file are one writer's)."""
    path = Path(os.path.realpath(path))
    return path.with_name(f".{path.name}.lock")


def _me() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _holder(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _refuse(target: Path, lock: Path, holder: dict, field: str | None, fallback: bool) -> InputError:
    who = f"process {holder.get('pid', '?')} on host {holder.get('host', '?')}"
    advice = ("wait for it to finish or stop it, or write to another output"
              if not fallback else
              f"if that process is gone, delete {lock} (this file system does not support locks, so it cannot be checked)")
    return InputError(f"is being written by {who}; two writers would sample everything twice: {advice}",
                      where=str(target), field=field)


@contextlib.contextmanager
def hold(target: str | os.PathLike, field: str | None = None) -> Iterator[Path]:
    """Hold the lock of `target` for the block; an `InputError` when another process holds it."""
    target = Path(target)
    lock = lock_path(target)
    key = os.path.realpath(lock)
    if key in _HELD:  # this process already writes it (a run's stage called again): nothing to add
        yield lock
        return
    made = [folder for folder in [lock.parent, *lock.parent.parents] if not folder.exists()]  # deepest first
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, fallback = _acquire(target, lock, field)
    except BaseException:
        _remove_empty(made)
        raise
    _HELD.add(key)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_me()).encode(), 0)
        yield lock
    finally:
        _HELD.discard(key)
        # Removed while still locked: a process that opened it meanwhile finds it replaced (see _acquire).
        with contextlib.suppress(OSError):
            if os.path.samestat(os.fstat(fd), os.stat(lock)):
                lock.unlink()
        os.close(fd)
        _remove_empty(made)  # a refused or failed command leaves no folder behind; one holding outputs stays


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (outputs, another writer's lock): it stays, and so do its parents
            return


def _acquire(target: Path, lock: Path, field: str | None) -> tuple[int, bool]:
    """An open, locked descriptor of the lock file; (fd, True) when locks are unsupported here."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                holder = _holder(lock)
                os.close(fd)
                raise _refuse(target, lock, holder, field, fallback=False) from None
            if exc.errno not in UNSUPPORTED:
                os.close(fd)
                raise
            return fd, _fallback(target, lock, fd, field)
        # The holder before us may have removed the file between our open and our lock: only a
        # lock on the file that is at the path now counts.
        try:
            if os.path.samestat(os.fstat(fd), os.stat(lock)):
                return fd, False
        except FileNotFoundError:
            pass
        os.close(fd)


def _fallback(target: Path, lock: Path, fd: int, field: str | None) -> bool:
    """No locks on this file system: the lock file's content decides (see the module doc)."""
    holder = _holder(lock)
    pid, host = holder.get("pid"), holder.get("host")
    if isinstance(pid, int) and pid != os.getpid():
        if host != socket.gethostname() or _alive(pid):
            os.close(fd)
            raise _refuse(target, lock, holder, field, fallback=True)
    return True
