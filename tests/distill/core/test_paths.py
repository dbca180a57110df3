"""Outputs are checked against inputs before anything is read; temporaries never accumulate; a full disk
keeps the old output (distill.core.paths)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time

import pytest

from distill.core.data import RecordWriter, atomic_path
from distill.core.errors import InputError
from distill.core.paths import Out, check_io, named_paths, remove_stale
from distill.core.records import Trace


@pytest.fixture
def data(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"x": 1}\n')
    return source


@pytest.mark.parametrize("make", ["same", "dotdot", "missing-dotdot", "symlink", "hardlink"])
def test_an_output_that_is_an_input_is_refused(tmp_path, data, make):
    out = {
        "same": lambda: data,
        "dotdot": lambda: (tmp_path / "sub").mkdir() or tmp_path / "sub" / ".." / "in.jsonl",
        "missing-dotdot": lambda: tmp_path / "nosuch" / ".." / "in.jsonl",  # mkdir -p would make it the input
        "symlink": lambda: (tmp_path / "link.jsonl").symlink_to(data) or tmp_path / "link.jsonl",
        "hardlink": lambda: os.link(data, tmp_path / "hard.jsonl") or tmp_path / "hard.jsonl",
    }[make]()
    with pytest.raises(InputError, match="is also an input"):
        check_io([Out(out, "output")], [str(data)])
    with pytest.raises(InputError, match="two outputs are the same file"):  # the same, between two outputs
        check_io([Out(data, "output"), Out(out, "rejected")])


def test_places_that_are_not_for_outputs(tmp_path):
    (tmp_path / "d.jsonl").mkdir()
    (tmp_path / "f").write_text("")
    cases = {
        Out(tmp_path / "d.jsonl", "output"): "is a directory",
        Out(tmp_path / "f", "output_dir", kind="dir"): "exists and is not a directory",
        Out(tmp_path / "f" / "k.jsonl", "output"): "is not a directory",
        Out("/proc/k.jsonl", "output"): "not a place for outputs",
        Out("/sys/k.jsonl", "output"): "not a place for outputs",
        Out("/dev/null", "output"): "not a place for outputs",
        Out("/", "output", kind="dir", replace=True): "the root folder",
    }
    for out, message in cases.items():
        with pytest.raises(InputError, match=message):
            check_io([out])


def test_a_folder_that_is_replaced_must_not_hold_an_input(tmp_path, data):
    with pytest.raises(InputError, match="holds an input"):
        check_io([Out(tmp_path, "output", kind="dir", replace=True)], [str(data)])
    check_io([Out(tmp_path, "output", kind="dir")], [str(data)])  # written into, not replaced: fine


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a read-only tmpfs needs root")
def test_a_read_only_location_is_refused_before_anything_is_read(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(folder)]).returncode != 0:
        pytest.skip("cannot mount tmpfs here")
    try:
        with pytest.raises(InputError, match=r"cannot write in .*read-only file system"):
            check_io([Out(folder / "k.jsonl", "output")])
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_named_paths_are_the_existing_paths_a_config_names(tmp_path, data):
    config = {"input": str(data), "rules": ["format"], "nested": {"benchmarks": [str(data), "nosuch.jsonl"]}, "n": 3}
    assert named_paths(config) == [str(data), str(data)]


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    final = tmp_path / "kept.jsonl"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".kept.jsonl.tmp-{dead_pid}"
    stale.write_text("32 MB of an interrupted run")
    (tmp_path / f".kept.jsonl.old-{dead_pid}").mkdir()
    live = tmp_path / f".kept.jsonl.tmp-{os.getppid()}"  # a live process's: still being written
    live.write_text("in progress")
    other = tmp_path / f".other.jsonl.tmp-{dead_pid}"  # another output's: not ours to judge here
    other.write_text("")
    with atomic_path(final) as tmp:
        tmp.write_text("new\n")
    assert final.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["kept.jsonl", live.name, other.name])
    assert remove_stale(tmp_path / "other.jsonl") == [other]


def _mount_tmpfs(folder, size="64k") -> bool:
    folder.mkdir()
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]).returncode == 0


def test_full_disk_keeps_the_old_output_and_leaves_no_temporary(tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk):
        pytest.skip("a small tmpfs needs root")
    try:
        out = disk / "kept.jsonl"
        out.write_text("earlier output\n")
        record = Trace(id="a#0", problem_id="a", sample_index=0, problem="p", completion="x" * 4096)
        with pytest.raises(OSError) as error, RecordWriter(out) as writer:
            for _ in range(100):  # 400 KB into 64 KB
                writer.write(record)
        assert error.value.errno == errno.ENOSPC
        assert out.read_text() == "earlier output\n" and sorted(p.name for p in disk.iterdir()) == ["kept.jsonl"]
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_cli_full_disk_mid_run_is_one_line_exit_1(tmp_path, distill_cli):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "256k"):
        pytest.skip("a small tmpfs needs root")
    try:
        source = tmp_path / "in.jsonl"
        rows = [Trace(id=f"p{i}#0", problem_id=f"p{i}", sample_index=0, problem="What is 1+1?", answer="2",
                      completion="<think>\n" + "one plus one is two. " * 100 + "\n</think>\n\n\\boxed{2}") for i in range(300)]
        from distill.core.data import write_records

        write_records(source, rows)
        out = disk / "kept.jsonl"
        out.write_text("earlier output\n")
        started = time.monotonic()
        code, _, err = distill_cli("filter", source, "-o", out, "--rules", "format")
        assert code == 1, err
        assert err.count("\n") == 1 and err.startswith("failed: No space left on device") and "Traceback" not in err
        assert out.read_text() == "earlier output\n" and sorted(p.name for p in disk.iterdir()) == ["kept.jsonl"]
        assert time.monotonic() - started < 60
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_working_folders_of_killed_processes_are_swept_and_others_kept(tmp_path, monkeypatch):
    import tempfile
    import uuid

    from distill.core import paths

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the system's temporary place, for this test
    name = f"t{uuid.uuid4().hex[:8]}"
    import re
    import socket

    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its PID is no longer alive
    dead = tmp_path / f"distill-{name}-{host}-{gone.pid}-abc"
    (dead / "sub").mkdir(parents=True)
    (dead / "sub" / "votes.json").write_text("{}")
    live = tmp_path / f"distill-{name}-{host}-{os.getppid()}-abc"  # a live process's (our parent's)
    elsewhere = tmp_path / f"distill-{name}-another.host-{gone.pid}-abc"  # a shared /tmp: that PID is not ours to judge
    other = tmp_path / f"someone-{name}-{host}-{gone.pid}-abc"  # not ours
    for folder in (live, elsewhere, other):
        folder.mkdir()
    with paths.scratch_dir(name) as mine:
        assert mine.name.startswith(f"distill-{name}-{host}-{os.getpid()}-") and mine.is_dir()
        (mine / "judge.json").write_text("{}")
    assert not dead.exists() and live.is_dir() and elsewhere.is_dir() and other.is_dir() and not mine.exists()


ROOT = __import__("pathlib").Path(__file__).resolve().parents[3]
TRACE = '{"id": "q#0", "problem_id": "q", "problem": "p", "completion": "c", "teacher": {"model": "m"}}\n'


@pytest.mark.parametrize("command", ["generate", "filter"])
def test_a_fifo_as_output_is_refused_in_one_line_and_stays_a_fifo(tmp_path, command):
    # generate used to block forever opening the FIFO; filter replaced it with a regular file
    source = tmp_path / "in.jsonl"
    source.write_text(TRACE if command == "filter" else '{"id": "q", "problem": "p"}\n')
    fifo = tmp_path / "out.jsonl"
    os.mkfifo(fifo)
    args = {"generate": ["generate", source, "-o", fifo, "--teacher", "m", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1"],
            "filter": ["filter", source, "-o", fifo, "--rules", "format"]}[command]
    result = subprocess.run([sys.executable, "-m", "cli", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"{fifo}: field 'output': is a FIFO (named pipe), not a regular file" in result.stderr
    assert __import__("stat").S_ISFIFO(os.stat(fifo).st_mode)


def test_a_path_with_a_newline_is_shown_whole_on_one_line(tmp_path, distill_cli):
    missing = tmp_path / "no\nsuch.jsonl"
    code, _, err = distill_cli("filter", missing, "-o", tmp_path / "kept.jsonl")
    assert code == 2 and err.count("\n") == 1 and str(missing).replace("\n", "\\n") in err, err
