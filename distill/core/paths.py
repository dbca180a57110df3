"""Where stages may write: one check of a stage's outputs against its inputs, before anything is read,
and the temporaries that make writes atomic.

`check_io` is called by every stage with the outputs it is about to write. Each of these is a
user's mistake (an `InputError`: one line, exit 2, nothing written):
- an output that is one of the stage's inputs, or two outputs that are one file; "one file"
  after resolving `..` and symlinks, and by (st_dev, st_ino) for existing files (hard links);
- a folder the stage replaces as a whole that holds one of its inputs, or lies inside an input
  folder (publishing RUN into RUN/final or RUN/checkpoints/checkpoint-N);
- a folder where a file is wanted, a file where a folder is wanted, a parent that is a file;
- an existing FIFO, device or socket (writing to a FIFO blocks until someone reads it);
- a place that is not for data (/proc, /sys, /dev, the root folder);
- a location this process cannot write (read-only file system, permissions).
The inputs are every existing path the stage's configuration names (`named_paths`), so a new
setting that names a file is covered without being listed here.

Temporaries are `.NAME.tmp-PID` beside the output. A process killed before it could remove
its own leaves one behind: the next write to the same output removes those whose process is
gone (`temporary`), so interrupted runs do not accumulate them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.core.errors import InputError, escape

# Not places for data: writing there fails, or worse, succeeds (root may replace /dev/null).
SYSTEM_ROOTS = ("/proc", "/sys", "/dev")


@dataclass(frozen=True)
class Out:
    """One output of a stage: a file, or a folder (`replace`: the stage replaces the folder whole)."""

    path: str | os.PathLike
    field: str
    kind: str = "file"  # "file" or "dir"
    replace: bool = False


def named_paths(values: Any, skip: Iterable[str] = ()) -> list[str]:
    """Every string in a configuration (a pydantic model or plain data) that names an existing path."""
    if hasattr(values, "model_dump"):
        values = values.model_dump(mode="json", exclude=set(skip))
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            if value and "\n" not in value and len(value) < 4096 and _exists(value):
                found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(values)
    return found


def quote(path: str | os.PathLike) -> str:
    """A path as a message shows it: one line, the whole path, pasteable into a shell
    (quoted when it has spaces or shell characters; control characters such as a newline escaped)."""
    import shlex

    text = str(path)
    if text.isprintable():
        return shlex.quote(text)
    return "$'" + "".join("\\\\" if c == "\\" else "\\'" if c == "'" else escape(c) for c in text) + "'"  # bash's $'...'


def _exists(path: str) -> bool:
    try:
        return os.path.lexists(path)
    except (OSError, ValueError):  # a NUL byte, a name too long
        return False


def _identities(path: Path) -> set[tuple]:
    """What makes two paths one file: the path with `..` and symlinks resolved (as the kernel
    will once missing folders are made), and (device, inode) of what exists (hard links)."""
    resolved = _resolved(path)
    keys: set[tuple] = {("path", str(resolved))}
    for candidate in (path, resolved):
        try:
            stat = candidate.stat()
            keys.add(("inode", stat.st_dev, stat.st_ino))
        except (OSError, ValueError):
            pass
    return keys


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(os.path.abspath(path)))


def inside(child: Path, folder: Path) -> bool:
    """`child` is `folder` or lies in it (both resolved)."""
    return child == folder or folder in child.parents


def check_io(outputs: Iterable[Out], inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Raise `InputError` for an output that cannot or must not be written (see the module doc)."""
    outputs = [out for out in outputs if out.path not in (None, "")]
    inputs = [Path(p) for p in inputs if p not in (None, "")]
    input_ids = {key: p for p in inputs for key in _identities(p)}
    seen: dict[tuple, Out] = {}
    for out in outputs:
        path = Path(out.path)
        where = str(path)
        _check_place(path, out, where)
        keys = _identities(path)
        for key in keys:
            if key in input_ids:
                raise InputError(f"is also an input ({input_ids[key]}); write to another file", where=where, field=out.field)
            if key in seen:
                raise InputError(f"two outputs are the same file ({seen[key].field} and {out.field})", where=where, field=out.field)
        seen.update(dict.fromkeys(keys, out))
        if out.kind == "dir" and out.replace:
            folder = _resolved(path)
            for source in inputs:
                if inside(_resolved(source), folder):
                    raise InputError(f"holds an input ({source}) and would be replaced", where=where, field=out.field)
                if source.is_dir() and inside(folder, _resolved(source)):  # RUN/final when publishing RUN
                    raise InputError(f"is inside an input folder ({source}), whose files it would replace; write outside it",
                                     where=where, field=out.field)


def _check_place(path: Path, out: Out, where: str) -> None:
    resolved = _resolved(path)
    if resolved == Path("/") or any(inside(resolved, Path(root)) for root in SYSTEM_ROOTS):
        raise InputError(f"not a place for outputs ({resolved if resolved != Path('/') else 'the root folder'})", where=where, field=out.field)
    if path.exists():
        special = _special(path)
        if special:  # a FIFO would block the writer forever; replacing it would change what it is
            raise InputError(f"is {special}, not a regular file or folder; outputs are written to regular files",
                             where=where, field=out.field)
        if out.kind == "file" and path.is_dir():
            raise InputError("is a directory (a file is wanted here)", where=where, field=out.field)
        if out.kind == "dir" and not path.is_dir():
            raise InputError("exists and is not a directory", where=where, field=out.field)
    # The nearest existing folder above must be a folder we can write into (mkdir -p does the rest).
    parent = resolved.parent if not path.is_dir() else resolved
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{parent} is not a directory", where=where, field=out.field)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write in {parent} ({_why_unwritable(parent)})", where=where, field=out.field)
    if out.kind == "file" and path.is_file() and not os.access(path, os.W_OK):
        raise InputError(f"cannot write ({_why_unwritable(path)})", where=where, field=out.field)


def _special(path: Path) -> str | None:
    """What an existing path is when it is neither a regular file nor a folder (a FIFO, a device, a socket)."""
    import stat

    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    kinds = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), None)


def _why_unwritable(path: Path) -> str:
    with contextlib.suppress(OSError):
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "read-only file system"
    return "permission denied"


# ---------------------------------------------------------------------------- temporaries

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale(final: Path) -> list[Path]:
    """Remove `.FINAL.tmp-PID` (and `.old-PID`) left beside `final` by processes that are gone."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in final.parent.iterdir():
            match = _TEMP.match(entry.name)
            if not match or match["name"] != final.name or _alive(int(match["pid"])):
                continue
            with contextlib.suppress(OSError):
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
                removed.append(entry)
    return removed


def temporary(final: str | os.PathLike, kind: str = "tmp") -> Path:
    """This process's temporary name for `final` (`.NAME.tmp-PID`), after clearing stale ones."""
    final = Path(final)
    remove_stale(final)
    return final.with_name(f".{final.name}.{kind}-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` that replaces it only if the block finishes.

    An exception leaves any existing file at `path` untouched and no temporary behind; a
    process killed mid-block leaves its temporary, which the next write to `path` removes.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary(final)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a small text file atomically, with known secret values redacted."""
    from distill.core.secrets import redact

    with atomic_path(path) as tmp:
        tmp.write_text(redact(text), encoding="utf-8")


_SWEPT: set[str] = set()


def scratch_prefix(name: str, owners: Iterable[int] = ()) -> str:
    """The name prefix of this process's working folders in the system's temporary place
    (`distill-NAME-HOST-PID-`). A process killed before it could remove its own leaves them behind:
    the first call in a process removes those of this host's processes that are gone, so killed runs
    do not accumulate them. Never touched: a live PID's, another host's (a temporary place shared
    over the network), and folders owned by anyone but this user (or `owners`, such as the
    sandbox's uid, which owns the folders it ran in)."""
    import socket
    import tempfile

    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"
    if name not in _SWEPT:
        _SWEPT.add(name)
        pattern = re.compile(rf"^distill-{re.escape(name)}-{re.escape(host)}-(?P<pid>\d+)-")
        allowed = {os.getuid(), *owners}
        with contextlib.suppress(OSError):
            for entry in Path(tempfile.gettempdir()).iterdir():
                match = pattern.match(entry.name)
                if match and not _alive(int(match["pid"])) and entry.is_dir() and not entry.is_symlink() \
                        and entry.lstat().st_uid in allowed:
                    shutil.rmtree(entry, ignore_errors=True)
    return f"distill-{name}-{host}-{os.getpid()}-"


@contextlib.contextmanager
def scratch_dir(name: str) -> Iterator[Path]:
    """A private working folder in the system's temporary place, removed when the block ends."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix=scratch_prefix(name), ignore_cleanup_errors=True) as path:
        yield Path(path)
