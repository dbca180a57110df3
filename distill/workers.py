"""Worker processes that can be killed: an ordered, streaming map with a hard wall-clock limit.

math-verify guards itself with SIGALRM, which cannot interrupt a long C call (a huge integer
power inside sympy) and does not bound memory. So every verification runs in a worker
process with an address-space cap, and the parent kills a worker that overruns its deadline
and starts a fresh one. A task announces the start of a risky phase with `set_deadline(s)`:
the parent then allows `s` more seconds from that moment, instead of a blanket limit that
would be either too short for honest work or too long for a hang.

Results come back in input order whatever the worker count, and at most `window` items are
in flight, so memory does not grow with the input.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import resource
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

# Modules imported once in the fork server, so that a fresh worker starts in milliseconds.
PRELOAD = ["distill.verify"]
# Before a task announces a risky phase it may take this long (honest rules are linear-time).
DEFAULT_DEADLINE_S = 120.0

_channel: Connection | None = None  # set inside a worker process


def set_deadline(seconds: float) -> None:
    """Inside a worker: the current task must finish within `seconds` from now or be killed."""
    if _channel is not None:
        _channel.send(("deadline", seconds))


@dataclass
class Failure:
    """What a task returns when its worker was killed (timeout) or died (crash, memory)."""

    kind: str  # "timeout" or "crash"
    detail: str


def _worker_main(conn: Connection, memory_mb: int | None) -> None:
    global _channel
    _channel = conn
    if memory_mb:
        limit = memory_mb * 1024 * 1024
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        index, fn, item = message
        try:
            conn.send(("done", index, True, fn(item)))
        except MemoryError:
            conn.send(("done", index, False, Failure("crash", "out of memory")))
        except Exception as exc:  # a task's bug must not take the whole run down silently
            conn.send(("done", index, False, Failure("crash", f"{type(exc).__name__}: {exc}")))


class _Worker:
    def __init__(self, ctx, memory_mb: int | None):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, memory_mb), daemon=True)
        self.process.start()
        child.close()
        self.task: tuple[int, Any] | None = None
        self.deadline = 0.0

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


def _context():
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    return mp.get_context("spawn")


class WorkerPool:
    """`workers` killable processes; use as a context manager."""

    def __init__(self, workers: int = 1, memory_mb: int | None = 4096, default_deadline_s: float = DEFAULT_DEADLINE_S):
        self.size = max(1, workers)
        self.memory_mb = memory_mb
        self.default_deadline_s = default_deadline_s
        self._ctx = _context()
        self._workers: list[_Worker] = []

    def __enter__(self) -> WorkerPool:
        self._workers = [_Worker(self._ctx, self.memory_mb) for _ in range(self.size)]
        return self

    def __exit__(self, *exc_info) -> None:
        for worker in self._workers:
            with contextlib.suppress(Exception):
                worker.conn.send(None)
        for worker in self._workers:
            worker.process.join(timeout=2)
            if worker.process.is_alive():
                worker.kill()
        self._workers = []

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any], window: int | None = None) -> Iterator[Any]:
        """fn(item) for every item, in input order; a killed or dead task yields a `Failure`."""
        window = window or self.size * 8
        source = iter(items)
        exhausted = False
        queue: list[tuple[int, Any]] = []  # read but not yet sent
        done: dict[int, Any] = {}
        next_index = 0  # next index to read
        next_out = 0  # next index to yield
        while True:
            while not exhausted and next_index - next_out < window:
                try:
                    queue.append((next_index, next(source)))
                    next_index += 1
                except StopIteration:
                    exhausted = True
            for worker in self._workers:
                if worker.task is None and queue:
                    index, item = queue.pop(0)
                    worker.task = (index, item)
                    worker.deadline = time.monotonic() + self.default_deadline_s
                    worker.conn.send((index, fn, item))
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1
            if exhausted and next_out == next_index:
                return
            busy = [w for w in self._workers if w.task is not None]
            if not busy:
                continue
            timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = wait([w.conn for w in busy], timeout=timeout)
            for worker in busy:
                if worker.conn in ready:
                    self._receive(worker, done)
                elif time.monotonic() >= worker.deadline:
                    self._replace(worker, done, Failure("timeout", "killed at its wall-clock limit"))

    def _receive(self, worker: _Worker, done: dict[int, Any]) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            code = worker.process.exitcode
            self._replace(worker, done, Failure("crash", f"worker died (exit code {code})"))
            return
        if message[0] == "deadline":
            worker.deadline = time.monotonic() + float(message[1])
            return
        _, index, _ok, result = message
        done[index] = result
        worker.task = None

    def _replace(self, worker: _Worker, done: dict[int, Any], failure: Failure) -> None:
        assert worker.task is not None
        done[worker.task[0]] = failure
        worker.kill()
        position = self._workers.index(worker)
        self._workers[position] = _Worker(self._ctx, self.memory_mb)


def cpu_count() -> int:
    """CPUs this process may use (respects affinity masks and containers' cpusets)."""
    with contextlib.suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
