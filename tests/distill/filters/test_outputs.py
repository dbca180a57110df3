"""The filter never loses data: outputs that are inputs, Ctrl-C, SIGKILL leftovers, duplicate ids, --workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distill.core.data import write_records
from distill.core.records import Trace

ROOT = Path(__file__).resolve().parents[3]


def traces(count: int, ids=None) -> list[Trace]:
    completion = "<think>\nSeven and seven make fourteen, which I check once more.\n</think>\n\nSo \\boxed{14}."
    return [Trace(problem_id=f"p{i}", id=(ids or {}).get(i, f"p{i}#0"), sample_index=0, problem="What is 7 plus 7?",
                  answer="14" if i % 2 else "13", completion=completion) for i in range(count)]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "s.jsonl"
    write_records(path, traces(6))
    return path


@pytest.mark.parametrize("args", [
    ["-o", "{s}"],
    ["-o", "{d}/k.jsonl", "--rejected", "{s}"],
    ["-o", "{d}/k.jsonl", "--report", "{s}"],
    ["-o", "{d}/x.jsonl", "--rejected", "{d}/x.jsonl"],
    ["-o", "{d}/k.jsonl", "--report", "{d}/sub/../k.jsonl"],
    ["-o", "{d}/hard.jsonl"],
    ["-o", "{d}/link.jsonl"],
    ["-o", "{d}/dir.jsonl"],
    ["-o", "/proc/kept.jsonl"],
    ["-o", "{s}/kept.jsonl"],
])
def test_outputs_that_are_inputs_or_cannot_be_files_are_refused_before_reading(tmp_path, source, distill_cli, args):
    os.link(source, tmp_path / "hard.jsonl")
    (tmp_path / "link.jsonl").symlink_to(source)
    (tmp_path / "dir.jsonl").mkdir()
    before = snapshot(tmp_path)
    code, _, err = distill_cli("filter", source, *[a.format(s=source, d=tmp_path) for a in args])
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert snapshot(tmp_path) == before


def test_duplicate_explicit_ids_name_both_lines(tmp_path, distill_cli):
    source = tmp_path / "s.jsonl"
    write_records(source, traces(5, ids={3: "p1#0"}))
    code, _, err = distill_cli("filter", source, "-o", tmp_path / "k.jsonl", "--rules", "format")
    assert code == 2 and f"{source}:4: field 'id': duplicate id 'p1#0' (also at {source}:2)" in err
    assert not (tmp_path / "k.jsonl").exists()


def test_workers_above_the_core_count_are_capped_with_one_warning(tmp_path, source, distill_cli):
    from distill.core.workers import cpu_count

    code, out, err = distill_cli("filter", source, "-o", tmp_path / "k.jsonl", "--rules", "format", "--workers", "1000",
                                 "--report", tmp_path / "r.json")
    assert code == 0, err
    warnings = [line for line in (out + err).splitlines() if "warning" in line]
    assert warnings == [f"warning: 1000 workers asked for, {cpu_count()} CPU(s) here; using {cpu_count()}"]
    assert f'"workers": {cpu_count()}' in (tmp_path / "r.json").read_text()


def _start_filter(source: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli", "filter", str(source), "-o", str(out), "--rules", "format,correctness",
                             "--workers", "2"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_default_sigint)


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored, and Python keeps an ignored SIGINT:
    # give the child a terminal's default, so Ctrl-C is what the test sends.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_temporary(folder: Path, process: subprocess.Popen) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        found = list(folder.glob(".kept.jsonl.tmp-*"))
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"the filter never started writing: {process.communicate()}")


def _workers_of(pid: int) -> list[int]:
    """Live processes of a process group (zombies are dead: reparented, waiting for init to reap them)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                if int(fields[2]) == pid and fields[0] != "Z":  # alive, in the filter's process group
                    found.append(int(entry))
            except (OSError, IndexError):
                pass
    return found


@pytest.fixture(scope="module")
def big_source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("big") / "s.jsonl"
    write_records(path, traces(30000))
    return path


def test_ctrl_c_is_one_line_exit_130_and_leaves_no_temporary(big_source, tmp_path):
    out = tmp_path / "kept.jsonl"
    out.write_text("earlier output\n")
    process = _start_filter(big_source, out)
    _wait_for_temporary(tmp_path, process)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal does: the whole foreground group
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("interrupted: nothing written") and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    assert out.read_text() == "earlier output\n" and sorted(p.name for p in tmp_path.iterdir()) == ["kept.jsonl"]
    deadline = time.monotonic() + 10  # the forkserver exits after the main process, asynchronously
    while _workers_of(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _workers_of(process.pid) == []


def test_a_killed_filter_leaves_a_temporary_the_next_run_removes(big_source, tmp_path):
    out = tmp_path / "kept.jsonl"
    process = _start_filter(big_source, out)
    left = _wait_for_temporary(tmp_path, process)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    assert left.exists()  # what a SIGKILL leaves...
    small = tmp_path / "small.jsonl"
    write_records(small, traces(4))
    done = subprocess.run([sys.executable, "-m", "cli", "filter", str(small), "-o", str(out), "--rules", "format"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not left.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["kept.jsonl", "small.jsonl"]  # ...is gone
