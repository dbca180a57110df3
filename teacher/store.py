"""The output file of `generate`: append-only JSONL that survives SIGKILL, and shard merging.

Each record is one line written with a single `os.write` on an O_APPEND descriptor, so a
crash leaves at most one torn line at the end. On start the file is scanned (`scan_output`):
a last line that is not a record is cut off, a last record without its newline gets one, and
every record's id is known and never sampled again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.core import logprobs
from distill.core.cost import Spend
from distill.core.data import RecordWriter, iter_rows, validate_record
from distill.core.errors import InputError
from distill.core.ids import UniqueIds
from distill.core.jsonl import is_torn, parse_line, read_lines, try_parse
from distill.core.paths import Out, check_io
from distill.core.records import Trace, to_row
from distill.core.secrets import scrubber

TRACE_KEYS = ("id", "problem_id", "completion")


@dataclass
class OutputState:
    """What an existing output holds, and what a resumed run must mend before appending."""

    done: set[str] = field(default_factory=set)  # ids already written
    teacher: dict[str, Any] | None = None  # teacher info of the first record
    torn: int = 0  # bytes of a torn last line to cut off
    needs_newline: bool = False  # the last record is whole but lacks its newline
    spent: Spend = field(default_factory=Spend)  # tokens of the samples already written (budgets count them)


def scan_output(path: Path) -> OutputState:
    """Read an existing trace output (streaming); changes nothing (see `mend`).

    A last line without its newline that starts like a record but does not parse (a write cut
    short by a crash: each record is written whole, newline last) is torn; a last line that is
    a record without its newline is a record. Any other line that is not a trace record
    means OUT is not a trace file of ours: InputError, and the file is left alone.
    """
    state = OutputState()
    if not path.exists():
        return state
    if path.is_dir():
        raise InputError("is a directory, not a trace file", where=str(path))
    for line in read_lines(path):
        row = try_parse(line.raw)
        if row is None and line.last and not line.complete and line.raw.lstrip().startswith(b"{"):
            state.torn = len(line.raw)
            break
        if row is None or not all(isinstance(row.get(key), str) for key in TRACE_KEYS):
            raise InputError(
                "not a trace file (each line must be a JSON record with id, problem_id and completion); "
                "write to a new file or move this one away", where=f"{path}:{line.number}",
            )
        state.done.add(row["id"])
        state.spent.add(_count(row.get("prompt_tokens")), _count(row.get("completion_tokens")))
        state.teacher = state.teacher or row.get("teacher")
        state.needs_newline = line.last and not line.complete
    return state


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def mend(path: Path, state: OutputState) -> None:
    """Cut a torn last line, or end a whole last record with its newline, so appends stay whole."""
    if state.torn:
        with open(path, "r+b") as handle:
            handle.truncate(os.path.getsize(path) - state.torn)
    elif state.needs_newline:
        with open(path, "ab") as handle:
            handle.write(b"\n")


def check_side(path: Path, state: OutputState, k: int) -> None:
    """Refuse, before anything is written, an output whose samples would not all have (or all
    lack) the teacher's log-probabilities, and a side file that is not ours."""
    side = logprobs.side_path(path)
    if side.exists() and not path.exists():
        raise InputError(f"exists without its trace file {path.name}; move it away or write elsewhere", where=str(side))
    index = logprobs.scan(side)  # not ours: InputError
    if not state.done:
        return
    recorded = (state.teacher or {}).get("logprobs", 0)
    if recorded != k:
        now = f"--logprobs {k}" if k else "no --logprobs"
        raise InputError(f"holds samples recorded with --logprobs {recorded}, this run has {now}; use the same or write to a new file",
                         where=str(path), field="logprobs")
    missing = len(state.done - set(index.frames)) if k else 0
    if missing:
        raise InputError(f"{missing} samples have no log-probabilities in {side.name}; write to a new file", where=str(path), field="logprobs")


class AppendWriter:
    """Appends trace lines; each record reaches the file whole or not at all.

    With `side`, each record's log-probabilities frame is appended to the side file first, so a
    trace line never exists without its frame (an orphan frame is cut when a run resumes)."""

    def __init__(self, path: Path, fsync_every: float = 5.0, side: bool = False):
        self.path = path
        self.side = logprobs.side_path(path) if side else None
        self._side_fd: int | None = None
        self._fd: int | None = None  # opened at the first record: a run that fails early leaves no file
        self._fsync_every = fsync_every
        self._last_sync = time.monotonic()
        self.count = 0
        self._scrub = scrubber()  # a server that echoes the API key must not get it into the file

    def write(self, records: Iterable[Trace], frames: list[bytes] | None = None) -> None:
        data = "".join(self._scrub(json.dumps(to_row(record), ensure_ascii=False)) + "\n" for record in records).encode("utf-8")
        if frames and self.side is not None:
            if self._side_fd is None:
                self._side_fd = logprobs.open_appender(self.side)
            logprobs.write_all(self._side_fd, b"".join(frames))
        if self._fd is None:
            self._fd = logprobs.open_appender(self.path)
        logprobs.write_all(self._fd, data)
        self.count += data.count(b"\n")
        if time.monotonic() - self._last_sync > self._fsync_every:
            for fd in (self._side_fd, self._fd):
                if fd is not None:
                    os.fsync(fd)  # bounds what a power loss (not a crash) can take
            self._last_sync = time.monotonic()

    def close(self) -> None:
        for name in ("_side_fd", "_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.fsync(fd)
                os.close(fd)
                setattr(self, name, None)

    def __enter__(self) -> AppendWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def merge_shards(inputs: list[Path], output: Path, drop_duplicates: bool = False) -> dict[str, Any]:
    """One file from shard outputs: every sample once (first seen wins), torn tails ignored.

    An id twice within one input is refused, unless `drop_duplicates` (the repair of a file two
    writers appended to at once: the first of each is kept).

    Writes atomically (JSONL or Parquet by suffix); inputs are left as they are. The shards'
    log-probabilities (side files) follow their records into OUTPUT's side file.
    """
    if not inputs:
        raise InputError("no shard files given")
    sides = [logprobs.side_path(path) for path in inputs]
    check_io([Out(output, "output"), Out(logprobs.side_path(output), "output")], [*inputs, *[s for s in sides if s.exists()]])
    seen: set[str] = set()
    counts: dict[str, int] = {}
    duplicates = torn = 0
    teachers: set[str] = set()
    with RecordWriter(output) as writer, logprobs.FrameCopier(output) as frames:
        for path, side in zip(inputs, sides, strict=True):
            index = logprobs.scan(side)
            counts[str(path)] = 0
            own = UniqueIds()  # within one shard an id is unique; across shards, first seen wins
            for where, row, is_torn in _complete_rows(path):
                if is_torn:
                    torn += 1
                    continue
                record = validate_record(Trace, row, where)
                if not drop_duplicates:
                    own.see(record.id, where)
                if record.id in seen:
                    duplicates += 1
                    continue
                seen.add(record.id)
                teachers.add(str((record.teacher or {}).get("model")))
                _copy_frame(frames, index, record, where)
                writer.write(record)
                counts[str(path)] += 1
    return {"output": str(output), "records": len(seen), "duplicates_dropped": duplicates,
            "torn_lines_dropped": torn, "per_input": counts, "teachers": sorted(teachers),
            "logprobs_records": frames.count}


def _copy_frame(frames: logprobs.FrameCopier, index: logprobs.SideIndex, record: Trace, where: str) -> None:
    """A record generated with --logprobs must keep them: one without its frame is refused."""
    if not frames.copy(index, record.id) and (record.teacher or {}).get("logprobs"):
        raise InputError(f"was generated with --logprobs but {index.path.name} has no frame for it", where=where)


def _complete_rows(path: Path):
    """(where, row, torn) for a shard file; a torn last line is reported, not raised."""
    if path.suffix.lower() != ".jsonl":
        for where, row in iter_rows(path):
            yield where, row, False
        return
    if not path.exists():
        raise InputError("no such file", where=str(path))
    for line in read_lines(path):
        where = f"{path}:{line.number}"
        if is_torn(line):
            yield where, None, True
            continue
        yield where, parse_line(line.raw, where), False
