"""The output file of `generate`: append-only JSONL that survives SIGKILL, and shard merging.

Each record is one line written with a single `os.write` on an O_APPEND descriptor, so a
crash leaves at most one torn line at the end. On start the file is scanned: a last line
without its newline (or not parseable) is cut off, every complete record's id is known and
never sampled again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from distill.data import RecordWriter, iter_rows, validate_record
from distill.errors import InputError
from distill.records import Trace, to_row


def scan_output(path: Path, repair: bool = True) -> tuple[set[str], dict[str, Any] | None, int]:
    """(ids already written, teacher info of the first record, bytes of torn tail).

    Drops a torn last line in place (unless repair=False: then call `drop_torn_tail`).
    A bad line anywhere else is not ours to fix: InputError.
    """
    if not path.exists():
        return set(), None, 0
    done: set[str] = set()
    teacher: dict[str, Any] | None = None
    good_end = 0
    torn = 0
    with open(path, "rb") as handle:
        lines = handle.readlines()
    for lineno, raw in enumerate(lines, start=1):
        last = lineno == len(lines)
        if not raw.endswith(b"\n"):
            torn = len(raw)  # only the last line can lack its newline
            break
        if not raw.strip():
            good_end += len(raw)
            continue
        try:
            row = json.loads(raw)
            record_id = row["id"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            if last:
                torn = len(raw)
                break
            raise InputError("not a trace record (malformed JSON or no 'id'); move the file away to start over", where=f"{path}:{lineno}") from None
        done.add(record_id)
        teacher = teacher or row.get("teacher")
        good_end += len(raw)
    if torn and repair:
        drop_torn_tail(path, torn)
    return done, teacher, torn


def drop_torn_tail(path: Path, torn: int) -> None:
    """Cut the last `torn` bytes (a line a crash left without its newline)."""
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) - torn)


class AppendWriter:
    """Appends trace lines; each record reaches the file whole or not at all."""

    def __init__(self, path: Path, fsync_every: float = 5.0):
        self.path = path
        self._fd: int | None = None  # opened at the first record: a run that fails early leaves no file
        self._fsync_every = fsync_every
        self._last_sync = time.monotonic()
        self.count = 0

    def write(self, records: Iterable[Trace]) -> None:
        data = "".join(json.dumps(to_row(record), ensure_ascii=False) + "\n" for record in records).encode("utf-8")
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
    if output.resolve() in {path.resolve() for path in inputs}:
        raise InputError("output must not be one of the inputs", where=str(output))
    seen: set[str] = set()
    counts: dict[str, int] = {}
    duplicates = torn = 0
    teachers: set[str] = set()
    with RecordWriter(output) as writer:
        for path in inputs:
            counts[str(path)] = 0
            for where, row, is_torn in _complete_rows(path):
                if is_torn:
                    torn += 1
                    continue
                record = validate_record(Trace, row, where)
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
    with open(path, "rb") as handle:
        lines = handle.readlines()
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if lineno == len(lines):
                yield where, None, True
                continue
            raise InputError("malformed JSON", where=where) from None
        if lineno == len(lines) and not raw.endswith(b"\n"):
            yield where, None, True
            continue
        yield where, row, False
