"""Children die with us, SIGKILL included: each test starts a real parent process that starts
children the way the project does (multiprocessing spawn/fork/forkserver as vLLM does, the
filter's WorkerPool, the code sandbox, a server through `processes.start`), waits until they
all run, SIGKILLs the parent alone and checks that none of them is alive a few seconds later."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def start_parent(tmp_path: Path, body: str) -> subprocess.Popen:
    """Run `body` (a script that prints 'ready' once its children run) as a parent process."""
    script = tmp_path / "parent.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n" + textwrap.dedent(body))
    process = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if line.strip() != "ready":
        process.kill()
        pytest.fail(f"the parent did not start its children (printed {line!r}, exit code {process.wait()})")
    return process


def wait_for_descendants(process_tree, pid: int, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(process_tree.descendants(pid)) < count:
        assert time.monotonic() < deadline, f"expected {count} descendants, found {len(process_tree.descendants(pid))}"
        time.sleep(0.1)


def assert_all_die(process_tree, process: subprocess.Popen, at_least: int) -> None:
    recorded, survivors = process_tree.survivors_of_sigkill(process, wait_s=5.0)
    assert len(recorded) >= at_least
    assert not survivors, f"{len(survivors)} of {len(recorded)} processes outlived the SIGKILLed parent by 5 s"


def test_multiprocessing_children_and_grandchildren_die_with_the_parent(tmp_path, process_tree):
    # vLLM starts its engine core with spawn (CPU) or fork (GPU), the engine core starts its
    # workers the same way; the filter's pool forks from a forkserver. Every layer must go.
    process = start_parent(tmp_path, """
        import multiprocessing as mp, os, time
        from distill.core import processes

        def grandchild(flag):
            open(flag, "w").close()
            time.sleep(300)

        def child(method):
            mp.get_context(method).Process(target=grandchild, args=(f"{method}.ready",)).start()
            time.sleep(300)

        if __name__ == "__main__":
            processes.guard()
            for method in ("spawn", "fork", "forkserver"):
                mp.get_context(method).Process(target=child, args=(method,)).start()
            while not all(os.path.exists(f"{m}.ready") for m in ("spawn", "fork", "forkserver")):
                time.sleep(0.05)
            print("ready", flush=True)
            time.sleep(300)
    """)
    assert_all_die(process_tree, process, at_least=6)


def test_worker_pool_dies_with_the_parent_mid_task(tmp_path, process_tree):
    # A worker busy with an item (here: sleeping; in real runs a long C call in sympy) never
    # reads its pipe again, so it only notices the parent's death through the kernel.
    process = start_parent(tmp_path, """
        import time
        from distill.core.workers import WorkerPool

        if __name__ == "__main__":
            with WorkerPool(workers=2, preload=()) as pool:
                print("ready", flush=True)
                list(pool.imap(time.sleep, [300, 300]))
    """)
    wait_for_descendants(process_tree, process.pid, 3)  # the forkserver and two workers
    time.sleep(0.5)  # both items handed out
    assert_all_die(process_tree, process, at_least=3)


def test_sandboxed_program_dies_with_the_parent(tmp_path, process_tree):
    process = start_parent(tmp_path, """
        import threading
        from distill.core.sandbox import Limits, run_python

        threading.Timer(1.0, lambda: print("ready", flush=True)).start()
        run_python("import time; time.sleep(300)", limits=Limits(wall_s=300, cpu_s=300))
    """)
    wait_for_descendants(process_tree, process.pid, 2)  # launcher, its init and the program
    assert_all_die(process_tree, process, at_least=2)


def test_a_started_python_server_and_its_own_children_die_with_the_parent(tmp_path, process_tree):
    # A server we launch (vLLM's, llama.cpp's) is started with processes.start; a Python one
    # through python_command, so that the engine processes it starts die with it too.
    (tmp_path / "fake_server.py").write_text(textwrap.dedent("""
        import multiprocessing as mp, time

        def engine():
            time.sleep(300)

        if __name__ == "__main__":
            mp.get_context("spawn").Process(target=engine).start()
            time.sleep(300)
    """))
    process = start_parent(tmp_path, """
        import sys, time
        from distill.core import processes

        server = processes.start(processes.python_command("fake_server"))
        print("ready", flush=True)
        time.sleep(300)
    """)
    wait_for_descendants(process_tree, process.pid, 2)  # the server and its engine
    time.sleep(0.5)
    assert_all_die(process_tree, process, at_least=2)


def test_leaked_shared_memory_is_cleaned_without_a_warning_after_our_last_line():
    # An engine killed mid-run leaves shared memory behind; the resource tracker unlinks it when we exit,
    # and its "leaked shared_memory" warning used to follow the one-line interrupt message.
    code = ("from distill.core import processes\nprocesses.guard()\nfrom multiprocessing import shared_memory\n"
            "shm = shared_memory.SharedMemory(create=True, size=4096)\nshm.close()\nprint(shm.name, flush=True)\n")
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(root)})
    assert result.returncode == 0 and result.stderr == "", result.stderr
    name = result.stdout.strip().lstrip("/")
    deadline = time.monotonic() + 10
    while Path("/dev/shm", name).exists() and time.monotonic() < deadline:  # the tracker exits just after us
        time.sleep(0.1)
    assert not Path("/dev/shm", name).exists()  # still cleaned up, only silently


def test_sigterm_interrupts_as_ctrl_c_does_and_the_exit_code_says_which():
    code = ("import time\nfrom distill.core import processes\nprocesses.interrupt_on_sigterm()\n"
            "try:\n    print('ready', flush=True)\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    print('interrupted', processes.interrupted_exit_code(), flush=True)\n")
    root = Path(__file__).resolve().parents[3]
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(root)})
    assert process.stdout.readline().strip() == "ready"
    process.terminate()  # SIGTERM, as a scheduler sends it
    out, _ = process.communicate(timeout=30)
    assert out.strip() == "interrupted 143" and process.returncode == 0
