"""The one JSONL line reader: every stage that reads JSONL (the data layer, the filter's raw
chunks, generate's resume scan, shard merging) reads lines through `read_lines` and parses
them with `parse_line`, so that blank lines, bad UTF-8, malformed JSON and a torn last line
mean the same thing everywhere.

A torn line is what a crash leaves: the last line of a file, without its newline. Whether it
is a record or garbage is decided by parsing it (`is_torn`): a last line that parses as a JSON
object is a record that only lacks its newline, anything else is cut off.

Reading is bounded: a line longer than `max_line_bytes()` (64 MiB, or DISTILL_MAX_LINE_BYTES) is
one `InputError` naming the file, line and size, and is never held in memory whole.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.core.errors import InputError

LIMIT_ENV = "DISTILL_MAX_LINE_BYTES"
DEFAULT_MAX_LINE = 64 << 20


@dataclass(frozen=True)
class Line:
    number: int  # 1-based line number in the file
    raw: bytes  # the line as read, newline included when it has one
    offset: int  # byte offset of the line's start
    last: bool  # no non-blank line follows

    @property
    def complete(self) -> bool:
        return self.raw.endswith(b"\n")


def read_lines(path: str | Path) -> Iterator[Line]:
    """The non-blank lines of a file, streaming, each told whether it is the last one."""
    pending: Line | None = None
    offset = 0
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; a generator keeps it open between lines
    except OSError as exc:
        raise InputError(f"cannot read ({(exc.strerror or str(exc)).lower()})", where=str(path)) from None
    limit = max_line_bytes()
    with handle:
        try:
            for number, raw in enumerate(iter(lambda: handle.readline(limit + 1), b""), start=1):
                if len(raw) > limit and not raw.endswith(b"\n"):  # never held whole: measured, then refused
                    size = len(raw) + _rest_of_line(handle)
                    raise InputError(f"line {number} is {size:,} bytes, over the limit of {limit:,} "
                                     f"(set {LIMIT_ENV} to read longer lines)", where=f"{path}:{number}")
                start, offset = offset, offset + len(raw)
                if not raw.strip():
                    continue
                if pending is not None:
                    yield pending
                pending = Line(number, raw, start, last=False)
        except OSError as exc:  # a device error, a file that is not a regular file: still one line
            raise InputError(f"cannot read ({(exc.strerror or str(exc)).lower()})", where=str(path)) from None
    if pending is not None:
        yield Line(pending.number, pending.raw, pending.offset, last=True)


def max_line_bytes() -> int:
    """The longest line read (bytes): DISTILL_MAX_LINE_BYTES, else 64 MiB (a 32k-token trace is ~150 kB)."""
    value = os.environ.get(LIMIT_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_LINE
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit <= 0:
        raise InputError(f"must be a positive number of bytes, got {value!r}", where=LIMIT_ENV)
    return limit


def _rest_of_line(handle: Any, chunk: int = 1 << 20) -> int:
    """Bytes up to the end of the current line (newline included), read in chunks and dropped."""
    size = 0
    while block := handle.readline(chunk):
        size += len(block)
        if block.endswith(b"\n"):
            break
    return size


def parse_line(raw: bytes, where: str) -> dict[str, Any] | None:
    """One JSONL line as an object (None for a blank line); bad lines are one-line InputErrors."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"invalid UTF-8 at byte {exc.start} of the line", where=where) from None
    if not line.strip():
        return None
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON ({exc.msg}, column {exc.colno})", where=where) from None
    except RecursionError:
        raise InputError("JSON nested too deeply", where=where) from None
    if not isinstance(row, dict):
        raise InputError(f"expected a JSON object, got {type(row).__name__}", where=where)
    return row


def try_parse(raw: bytes) -> dict[str, Any] | None:
    """The line's object, or None when it is not one (no error: for torn-tail decisions)."""
    try:
        row = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return row if isinstance(row, dict) else None


def is_torn(line: Line) -> bool:
    """A last line a crash cut short: no newline and not a JSON object."""
    return line.last and not line.complete and try_parse(line.raw) is None


def read_json(path: str | Path) -> Any:
    """A whole JSON document (a report, a summary): a missing file or malformed JSON is one `InputError`
    naming the file and line."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("no such file", where=str(path)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON ({exc.msg}, column {exc.colno})", where=f"{path}:{exc.lineno}") from None
