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
        state.teacher = state.teacher or row.get("teacher")
        state.needs_newline = line.last and not line.complete
    return state


def mend(path: Path, state: OutputState) -> None:
    """Cut a torn last line, or end a whole last record with its newline, so appends stay whole."""
    if state.torn:
        with open(path, "r+b") as handle:
            handle.truncate(os.path.getsize(path) - state.torn)
    elif state.needs_newline:
        with open(path, "ab") as handle:
            handle.write(b"\n")


class AppendWriter:
    """Appends trace lines; each record reaches the file whole or not at all."""

    def __init__(self, path: Path, fsync_every: float = 5.0):
        self.path = path
        self._fd: int | None = None  # opened at the first record: a run that fails early leaves no file
        self._fsync_every = fsync_every
        self._last_sync = time.monotonic()
        self.count = 0
        self._scrub = scrubber()  # a server that echoes the API key must not get it into the file

    def write(self, records: Iterable[Trace]) -> None:
        data = "".join(self._scrub(json.dumps(to_row(record), ensure_ascii=False)) + "\n" for record in records).encode("utf-8")
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        view = memoryview(data)
        while view:  # os.write may write less than asked
            written = os.write(self._fd, view)
            view = view[written:]
        self.count += data.count(b"\n")
        if time.monotonic() - self._last_sync > self._fsync_every:
            os.fsync(self._fd)  # bounds what a power loss (not a crash) can take
            self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> AppendWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def merge_shards(inputs: list[Path], output: Path) -> dict[str, Any]:
    """One file from shard outputs: every sample once (first seen wins), torn tails ignored.

    Writes atomically (JSONL or Parquet by suffix); inputs are left as they are.
    """
    if not inputs:
        raise InputError("no shard files given")
    check_io([Out(output, "output")], inputs)
    seen: set[str] = set()
    counts: dict[str, int] = {}
    duplicates = torn = 0
    teachers: set[str] = set()
    with RecordWriter(output) as writer:
        for path in inputs:
            counts[str(path)] = 0
            own = UniqueIds()  # within one shard an id is unique; across shards, first seen wins
            for where, row, is_torn in _complete_rows(path):
                if is_torn:
                    torn += 1
                    continue
                record = validate_record(Trace, row, where)
                own.see(record.id, where)
                if record.id in seen:
                    duplicates += 1
                    continue
                seen.add(record.id)
                teachers.add(str((record.teacher or {}).get("model")))
                writer.write(record)
                counts[str(path)] += 1
    return {"output": str(output), "records": len(seen), "duplicates_dropped": duplicates,
            "torn_lines_dropped": torn, "per_input": counts, "teachers": sorted(teachers)}


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
