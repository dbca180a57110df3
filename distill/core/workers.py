"""Worker processes that can be killed: an ordered, streaming map with a hard wall-clock limit.

math-verify guards itself with SIGALRM, which cannot interrupt a long C call (a huge integer
power inside sympy) and does not bound memory. So every verification runs in a worker
process with an address-space cap, and the parent kills a worker that overruns its deadline
and starts a fresh one. A task announces the start of a risky phase with `set_deadline(s)`:
the parent then allows `s` more seconds from that moment, instead of a blanket limit that
would be either too short for honest work or too long for a hang.

Work travels in chunks (`imap_chunks`): the parent only ships items and collects results, so
the work itself (parsing included) scales with the worker count. A worker sends each item's
result as soon as it has it, so when it is killed (or a task raises) at item i, the results
before i are kept and items i.. go to a fresh worker with the failure for item i: one hung
verification never loses the rest of its chunk. Results come back in input order whatever
the worker count, and at most `window` chunks are in flight, so memory stays bounded.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing as mp
import os
import resource
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from distill.core import processes

# Modules imported once in the fork server, so that a fresh worker starts in milliseconds.
PRELOAD = ("distill.core.verify",)
# Before a task announces a risky phase it may take this long per item (honest rules are linear-time).
DEFAULT_DEADLINE_S = 120.0

_channel: Connection | None = None  # set inside a worker process


def set_deadline(seconds: float) -> None:
    """Inside a worker: the current item must finish within `seconds` from now or be killed."""
    if _channel is not None:
        _channel.send(("deadline", seconds))


@dataclass
class Failure:
    """What an item gets when its worker was killed (timeout), died or raised (crash, memory)."""

    kind: str  # "timeout" or "crash"
    detail: str


# A chunk function: fn(items, failure) yields one result per item, in order. When `failure` is
# given it is the failure of items[0]: fn must yield that item's result without redoing the
# work that failed (e.g. charge it to the verifier), then go on with items[1:].
ChunkFn = Callable[[list[Any], Failure | None], Iterator[Any]]


def _worker_main(conn: Connection, memory_mb: int | None) -> None:
    global _channel
    _channel = conn
    # Ctrl-C (and a scheduler's SIGTERM) reaches the whole process group: the parent stops the pool, a worker must not
    # die mid-message (or print its own traceback).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a scheduler's SIGTERM too (the parent kills workers with SIGKILL)
    if memory_mb:
        limit = memory_mb * 1024 * 1024
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        task_id, fn, items, failure = message
        try:
            for result in fn(items, failure):
                conn.send(("item", task_id, result))
            conn.send(("end", task_id))
        except MemoryError:
            conn.send(("raised", task_id, Failure("crash", "out of memory")))
        except Exception as exc:  # a task's bug must not take the whole run down silently
            conn.send(("raised", task_id, Failure("crash", f"{type(exc).__name__}: {exc}")))


@dataclass
class _Chunk:
    index: int
    items: list[Any]
    results: list[Any] = field(default_factory=list)
    retried_at: int = -1  # position last resubmitted with a failure (a second failure there is final)


class _Worker:
    def __init__(self, ctx, memory_mb: int | None):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, memory_mb), daemon=True)
        self.process.start()
        child.close()
        # Deadlines count from when a task is sent: wait until the worker can take one (the
        # first start imports math-verify in the fork server, a second or two).
        if not self.conn.poll(120) or self.conn.recv() != ("ready",):
            raise RuntimeError("a worker process did not start")
        self.chunk: _Chunk | None = None
        self.deadline = 0.0

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


def _context(preload: tuple[str, ...]):
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(preload))
        return ctx
    return mp.get_context("spawn")


def map_items(fn: Callable[[Any], Any], items: list[Any], failure: Failure | None) -> Iterator[Any]:
    """The plain chunk function: fn(item) for each item; a failed item's result is its `Failure`."""
    for position, item in enumerate(items):
        yield failure if position == 0 and failure is not None else fn(item)


class WorkerPool:
    """`workers` killable processes; use as a context manager."""

    def __init__(self, workers: int = 1, memory_mb: int | None = 4096, default_deadline_s: float = DEFAULT_DEADLINE_S,
                 preload: tuple[str, ...] = PRELOAD):
        processes.guard()  # the forkserver and the workers die with this process, SIGKILL included
        self.size = capped_workers(workers)
        self.memory_mb = memory_mb
        self.default_deadline_s = default_deadline_s
        self._ctx = _context(preload)
        self._workers: list[_Worker] = []
        self._fn: ChunkFn | None = None

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
        """fn(item) for every item, in input order; a killed, dead or raising task yields a `Failure`."""
        chunks = ([item] for item in items)
        for (result,) in self.imap_chunks(functools.partial(map_items, fn), chunks, window or self.size * 8):
            yield result

    def imap_chunks(self, fn: ChunkFn, chunks: Iterable[list[Any]], window: int | None = None) -> Iterator[list[Any]]:
        """The results of every chunk (one per item), chunk by chunk in input order.

        An item whose worker was killed at its deadline or died, or whose task raised, is
        retried as `fn(rest, failure)`; if that fails again at the same item, its result is
        the `Failure` itself.
        """
        window = window or self.size * 4
        self._fn = fn
        source = iter(chunks)
        exhausted = False
        queue: list[tuple[_Chunk, Failure | None]] = []  # (chunk, failure of its next item) not yet sent
        done: dict[int, _Chunk] = {}
        next_index = next_out = 0
        while True:
            while not exhausted and next_index - next_out < window:
                items = next(source, None)
                if items is None:
                    exhausted = True
                elif items:
                    queue.append((_Chunk(next_index, list(items)), None))
                    next_index += 1
            for worker in self._workers:
                if worker.chunk is None and queue:
                    self._send(worker, *queue.pop(0))
            while next_out in done:
                yield done.pop(next_out).results
                next_out += 1
            if exhausted and next_out == next_index:
                return
            busy = [w for w in self._workers if w.chunk is not None]
            if not busy:
                continue
            timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = wait([w.conn for w in busy], timeout=timeout)
            for worker in busy:
                if worker.conn in ready:
                    self._receive(worker, done, queue)
                elif time.monotonic() >= worker.deadline:
                    self._fail(worker, done, queue, Failure("timeout", "killed at its wall-clock limit"), replace=True)

    def _send(self, worker: _Worker, chunk: _Chunk, failure: Failure | None) -> None:
        worker.chunk = chunk
        worker.deadline = time.monotonic() + self.default_deadline_s
        worker.conn.send((chunk.index, self._fn, chunk.items[len(chunk.results):], failure))

    def _receive(self, worker: _Worker, done: dict[int, _Chunk], queue: list) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            failure = Failure("crash", f"worker died (exit code {worker.process.exitcode})")
            self._fail(worker, done, queue, failure, replace=True)
            return
        chunk = worker.chunk
        assert chunk is not None
        kind = message[0]
        if kind == "deadline":
            worker.deadline = time.monotonic() + float(message[1])
        elif kind == "item":
            chunk.results.append(message[2])
            worker.deadline = time.monotonic() + self.default_deadline_s
        elif kind == "end":
            done[chunk.index] = chunk
            worker.chunk = None
        else:  # "raised": the worker is alive, its task failed at the current item
            self._fail(worker, done, queue, message[2], replace=False)

    def _fail(self, worker: _Worker, done: dict[int, _Chunk], queue: list, failure: Failure, replace: bool) -> None:
        """Item `len(chunk.results)` failed: retry the rest of its chunk with that failure, first in line."""
        chunk = worker.chunk
        assert chunk is not None
        worker.chunk = None
        if replace:
            worker.kill()
            self._workers[self._workers.index(worker)] = _Worker(self._ctx, self.memory_mb)
        position = len(chunk.results)
        if chunk.retried_at == position:  # failed again while being given its failure: give up on it
            chunk.results.append(failure)
            failure = None
            position += 1
        if position == len(chunk.items):
            done[chunk.index] = chunk
            return
        chunk.retried_at = position if failure is not None else -1
        queue.insert(0, (chunk, failure))


def capped_workers(workers: int) -> int:
    """`workers`, at most one per CPU: more processes only add memory (a warning says so, once per pool)."""
    cpus = cpu_count()
    if workers > cpus:
        sys.stderr.write(f"warning: {workers} workers asked for, {cpus} CPU(s) here; using {cpus}\n")
        return cpus
    return max(1, workers)


def cpu_count() -> int:
    """CPUs this process may use (respects affinity masks and containers' cpusets)."""
    with contextlib.suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
