"""One writer per resumable output: the lock file, a holder that is gone, file systems without locks."""

from __future__ import annotations

import errno
import json
import socket
import subprocess
import sys

import pytest

from distill.core import lock
from distill.core.errors import InputError


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_lock_is_released_and_its_file_removed(tmp_path):
    out = tmp_path / "t.jsonl"
    with lock.hold(out) as path:
        assert json.loads(path.read_text()) == {"pid": lock.os.getpid(), "host": socket.gethostname()}
    assert not path.exists()
    with lock.hold(out):  # free again
        pass


@pytest.fixture
def no_locks(monkeypatch):
    """A file system that refuses record locks (Lustre with -o noflock, some FUSE mounts)."""

    def refuse(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock.fcntl, "lockf", refuse)


@pytest.mark.parametrize(("holder", "refused"), [
    ("alive-here", "is being written by process {pid} on host {host}"),
    ("other-host", "if that process is gone, delete"),
    ("dead-here", None),
])
def test_without_locks_the_lock_file_decides(tmp_path, no_locks, holder, refused):
    out = tmp_path / "t.jsonl"
    here = socket.gethostname()
    pid, host = {"alive-here": (1, here), "other-host": (1, here + "-other"), "dead-here": (_dead_pid(), here)}[holder]
    lock.lock_path(out).write_text(json.dumps({"pid": pid, "host": host}))
    if refused is None:  # a holder on this host that is gone: taken over
        with lock.hold(out) as path:
            assert json.loads(path.read_text())["pid"] == lock.os.getpid()
        return
    with pytest.raises(InputError, match=refused.format(pid=pid, host=host).split(" on host")[0]):
        with lock.hold(out):
            pass
    assert lock.lock_path(out).exists()  # another's lock file is left alone


def test_a_refused_or_failed_writer_leaves_no_folder_behind(tmp_path):
    out = tmp_path / "a" / "b" / "t.jsonl"
    with pytest.raises(RuntimeError), lock.hold(out):
        raise RuntimeError("bad input found after the lock was taken")
    assert list(tmp_path.iterdir()) == []
    with lock.hold(out):
        out.write_text("{}\n")  # an output was written: its folder stays
    assert out.exists() and not lock.lock_path(out).exists()


def test_two_names_for_one_output_are_one_lock(tmp_path):
    out = tmp_path / "t.jsonl"
    out.write_text("")
    (tmp_path / "link.jsonl").symlink_to(out)
    assert lock.lock_path(tmp_path / "link.jsonl") == lock.lock_path(out)
