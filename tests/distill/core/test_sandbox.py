"""Hostile programs in the real sandbox: each must be contained, and the host must be untouched."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from distill.core.code_test_formats import canonical_tests
from distill.core.sandbox import Limits, isolation, run_python
from distill.core.verify.code_tests import run_code_tests

FAST = Limits(wall_s=3, cpu_s=2, memory_mb=256)


def test_runs_a_program_with_stdin():
    result = run_python("print(sum(map(int, input().split())))", "2 40")
    assert result.returncode == 0 and result.stdout.strip() == "42"


def test_environment_is_empty_and_cwd_is_fresh():
    result = run_python("import os; print(sorted(os.environ)); print(sorted(os.listdir('.')))")
    names, files = result.stdout.splitlines()
    # only what the launcher sets (library path) and Python's own locale coercion
    assert set(eval(names)) <= {"LD_LIBRARY_PATH", "LC_CTYPE"}
    assert eval(files) == ["main.py"]


def test_infinite_loop_is_killed():
    start = time.monotonic()
    result = run_python("while True: pass", limits=FAST)
    assert result.returncode != 0 and time.monotonic() - start < 15  # forever without the limits


def test_sleeping_program_hits_wall_timeout():
    start = time.monotonic()
    result = run_python("import time; time.sleep(60)", limits=Limits(wall_s=1))
    assert result.timed_out and time.monotonic() - start < 15  # 60 s without the limit


def test_memory_hog_is_stopped():
    result = run_python("x = bytearray(2 * 1024**3); print('allocated')", limits=FAST)
    assert result.returncode != 0 and "allocated" not in result.stdout


def test_fork_bomb_is_contained_and_cleaned_up():
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    start = time.monotonic()
    result = run_python(bomb, limits=Limits(wall_s=2, cpu_s=2))
    assert result.returncode != 0 and time.monotonic() - start < 20
    time.sleep(0.5)
    leftovers = [p for p in os.listdir("/proc") if p.isdigit() and _uid(p) == 65534]
    if isolation()["uid"] is not None:
        assert leftovers == []


def _uid(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("Uid:"))
    except (OSError, StopIteration):
        return None


def test_daemonised_child_dies_with_the_sandbox(tmp_path):
    code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\n    print('escaped')\nprint('parent done')\n"
    result = run_python(code, limits=FAST)
    assert "parent done" in result.stdout
    if "pid" in isolation()["namespaces"]:
        time.sleep(0.3)
        assert [p for p in os.listdir("/proc") if p.isdigit() and _uid(p) == 65534] == []


def test_network_is_unreachable():
    code = "import socket\ns = socket.create_connection(('1.1.1.1', 80), timeout=2)\nprint('connected')"
    result = run_python(code, limits=FAST)
    assert "connected" not in result.stdout and result.returncode != 0


# The sandbox covers these with its own empty tmpfs: a target there is hidden, not protected, and a test
# with its target there passes whatever the sandbox does (a checkout under /tmp, as CI may make).
HIDDEN = tuple(Path(p) for p in ("/tmp", "/var/tmp", "/dev/shm"))


def visible_folder() -> Path:
    """A writable folder the sandbox shows as it is (outside HIDDEN, reachable by anyone: /root is 0700),
    wherever the checkout and $TMPDIR are."""
    for candidate in (Path(__file__).resolve().parents[3], Path.home(), Path("/var/lib"), Path("/opt"), Path("/srv")):
        real = candidate.resolve()
        if real.is_dir() and not any(real == hidden or hidden in real.parents for hidden in HIDDEN) and os.access(real, os.W_OK) \
                and all(folder.stat().st_mode & 0o001 for folder in [real, *real.parents]):
            return real
    pytest.skip("no writable folder outside /tmp, /var/tmp and /dev/shm")


@pytest.fixture
def outside():
    """A root-owned folder (0755) the sandbox can see: a write there is stopped by the drop to `nobody`,
    or not at all (so these tests can fail). Each test first checks the program sees it."""
    folder = Path(tempfile.mkdtemp(prefix=".sandbox-outside-", dir=visible_folder()))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _sees(path: Path) -> str:
    """Program lines that print whether the sandboxed program sees `path` (it must, for a refusal to mean anything)."""
    return f"import os\nprint('sees', os.path.exists({str(path)!r}), flush=True)\n"


def test_runs_as_nobody_when_started_as_root():
    result = run_python("import os; print(os.getuid(), os.geteuid(), os.getgid())", limits=FAST)
    if os.geteuid() == 0:
        assert result.stdout.split() == ["65534", "65534", "65534"]
    else:
        assert result.stdout.split()[0] != "0"


def test_cannot_write_outside_its_directory(outside):
    target = outside / "escape.txt"
    code = _sees(outside) + f"open({str(target)!r}, 'w').write('x')\nprint('wrote')"
    result = run_python(code, limits=FAST)
    assert "sees True" in result.stdout, result  # the folder is there to write to: the refusal is the sandbox's
    assert not target.exists() and "wrote" not in result.stdout
    assert "PermissionError" in result.stderr


def test_cannot_delete_files(outside):
    victim = outside / "precious.txt"
    victim.write_text("keep me")
    os.chmod(victim, 0o666)  # even a world-writable file: deleting needs its folder
    code = _sees(victim) + f"import shutil\nos.remove({str(victim)!r})\nshutil.rmtree({str(outside)!r})"
    result = run_python(code, limits=FAST)
    assert "sees True" in result.stdout, result
    assert victim.read_text() == "keep me" and "PermissionError" in result.stderr


def test_output_is_capped_by_the_file_size_limit():
    # The wall clock (60 s) must not be what stops it: the file-size limit (1 MB) must.
    start = time.monotonic()
    result = run_python("import sys\nwhile True: sys.stdout.write('x' * 65536)", limits=Limits(wall_s=60, file_mb=1))
    assert not result.timed_out and time.monotonic() - start < 30
    assert result.returncode != 0 and len(result.stdout) <= 1024 * 1024
    assert "File too large" in result.stderr  # EFBIG: Python ignores SIGXFSZ, so the write fails instead


def run_tests(program, tests):
    return run_code_tests(program, canonical_tests(tests))


@pytest.mark.parametrize(
    "program, passed, reason",
    [
        ("a, b = map(int, input().split())\nprint(a + b)", True, "passed 2/2"),
        ("a, b = map(int, input().split())\nprint(a * b)", False, "test 1/2: expected '3', got '2'"),
    ],
)
def test_stdin_stdout_cases(program, passed, reason):
    outcome = run_tests(program, [{"input": "1 2", "output": "3\n"}, {"input": "5 5", "output": "10   \n\n"}])
    assert outcome.passed is passed and reason in outcome.reason


def test_assert_style_tests():
    assert run_tests("def inc(x):\n    return x + 1", "assert inc(1) == 2").passed
    failed = run_tests("def inc(x):\n    return x", "assert inc(1) == 2")
    assert not failed.passed and "AssertionError" in failed.reason
