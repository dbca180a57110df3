"""The teacher's token log-probabilities, beside the traces: one binary side file per trace file.

Why a side file: per generated token the teacher's sampled id and its top-K (id, log-probability)
pairs are 6 + 6K bytes here (int32 ids, float16 log-probabilities); as JSON floats in the trace
line they would be ~30 bytes a pair, and every reader of the traces (filter, inspect) would parse
them. `traces.jsonl` has its log-probabilities in `traces.logprobs` (`side_path`).

Format: a sequence of frames, appended like the trace lines (O_APPEND, a frame written whole
with one os.write loop, before its trace line):

    b"DLP1" | u32 header length | header JSON {"id", "n", "k"} |
    int32 ids[n] | float16 sampled_logprob[n] | int32 top_ids[n*k] | float16 top_logprobs[n*k] | u32 crc32

`ids` are the teacher's sampled tokens (the completion as the teacher's tokenizer saw it: KD
trains on these, not on a re-tokenisation of the text). A position with fewer than k
alternatives is padded with id -1 and log-probability -inf. A frame is found by its record id;
the last frame of an id wins, and frames whose trace line never made it are ignored (and cut
off when `generate` resumes: `mend`).
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from distill.core.errors import InputError

if TYPE_CHECKING:  # numpy is imported where arrays are made: the CLI imports this module to list its commands
    import numpy as np

MAGIC = b"DLP1"
SUFFIX = ".logprobs"
_U32 = struct.Struct("<I")


def side_path(trace_path: str | os.PathLike) -> Path:
    """Where a trace file's log-probabilities are: `traces.jsonl` -> `traces.logprobs`."""
    return Path(trace_path).with_suffix(SUFFIX)


@dataclass
class TokenLogprobs:
    """One sample's recorded teacher distribution: n generated tokens, top-k each."""

    ids: np.ndarray  # int32 [n]: the sampled tokens
    logprob: np.ndarray  # float16 [n]: log p(sampled token)
    top_ids: np.ndarray  # int32 [n, k]
    top_logprobs: np.ndarray  # float16 [n, k]

    @classmethod
    def build(cls, ids, logprob, top_ids, top_logprobs, k: int) -> TokenLogprobs:
        """From per-position lists (top lists may be shorter than k: padded)."""
        import numpy as np

        n = len(ids)
        tid = np.full((n, k), -1, dtype=np.int32)
        tlp = np.full((n, k), -np.inf, dtype=np.float16)
        for row, (row_ids, row_lps) in enumerate(zip(top_ids, top_logprobs, strict=True)):
            width = min(k, len(row_ids))
            tid[row, :width] = row_ids[:width]
            tlp[row, :width] = row_lps[:width]
        return cls(np.asarray(ids, dtype=np.int32), np.asarray(logprob, dtype=np.float16), tid, tlp)

    @property
    def k(self) -> int:
        return self.top_ids.shape[1]

    def __len__(self) -> int:
        return len(self.ids)


def encode(record_id: str, lp: TokenLogprobs) -> bytes:
    import numpy as np

    header = json.dumps({"id": record_id, "n": len(lp), "k": lp.k}).encode()
    body = header + b"".join(np.ascontiguousarray(a).tobytes() for a in (
        lp.ids.astype("<i4"), lp.logprob.astype("<f2"), lp.top_ids.astype("<i4"), lp.top_logprobs.astype("<f2")))
    return MAGIC + _U32.pack(len(header)) + body + _U32.pack(zlib.crc32(body))


def _payload_size(n: int, k: int) -> int:
    return n * 6 + n * k * 6


def decode(frame: bytes) -> tuple[str, TokenLogprobs]:
    import numpy as np

    (size,) = _U32.unpack_from(frame, 4)
    header = json.loads(frame[8:8 + size])
    n, k = header["n"], header["k"]
    data = memoryview(frame)[8 + size:]
    arrays, offset = [], 0
    for dtype, count in (("<i4", n), ("<f2", n), ("<i4", n * k), ("<f2", n * k)):
        arrays.append(np.frombuffer(data, dtype=dtype, count=count, offset=offset))
        offset += count * np.dtype(dtype).itemsize
    ids, logprob, top_ids, top_lps = arrays
    return header["id"], TokenLogprobs(ids, logprob, top_ids.reshape(n, k), top_lps.reshape(n, k))


@dataclass
class SideIndex:
    """Where each record's frame is in a side file."""

    path: Path
    frames: dict[str, tuple[int, int]]  # id -> (offset, length); the last frame of an id wins
    order: list[tuple[str, int, int]]  # every whole frame, in file order
    end: int  # end of the last whole frame
    torn: int  # bytes after it (a frame cut short by a crash)

    def read_frame(self, record_id: str) -> bytes:
        offset, length = self.frames[record_id]
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            frame = handle.read(length)
        body = frame[8:-4]
        if zlib.crc32(body) != _U32.unpack(frame[-4:])[0]:
            raise InputError(f"damaged log-probabilities of record '{record_id}' (checksum)", where=str(self.path))
        return frame

    def read(self, record_id: str) -> TokenLogprobs:
        return decode(self.read_frame(record_id))[1]


def scan(path: str | os.PathLike) -> SideIndex:
    """Index a side file from its headers (payloads are skipped); a cut-short last frame is `torn`."""
    path = Path(path)
    frames: dict[str, tuple[int, int]] = {}
    order: list[tuple[str, int, int]] = []
    if not path.exists():
        return SideIndex(path, frames, order, 0, 0)
    total = path.stat().st_size
    offset = 0
    with open(path, "rb") as handle:
        while offset < total:
            head = handle.read(8)
            if len(head) < 8 or head[:4] != MAGIC:
                if len(head) < 8 and MAGIC.startswith(head[:4]):
                    break  # a frame cut short in its first bytes
                raise InputError(f"not a log-probabilities file of ours (byte {offset}); move it away", where=str(path))
            (size,) = _U32.unpack_from(head, 4)
            header_bytes = handle.read(size)
            try:
                header = json.loads(header_bytes)
                length = 8 + size + _payload_size(header["n"], header["k"]) + 4
            except (ValueError, KeyError, TypeError):
                break  # the header itself is cut short
            if offset + length > total:
                break
            frames[header["id"]] = (offset, length)
            order.append((header["id"], offset, length))
            offset += length
            handle.seek(offset)
    return SideIndex(path, frames, order, offset, total - offset)


def open_appender(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:  # os.write may write less than asked
        view = view[os.write(fd, view):]


def mend(path: Path, keep: set[str]) -> set[str]:
    """Before `generate` appends again: cut what follows the last whole frame whose record is in
    `keep` (frames written just before a crash, whose trace lines never were). Returns the ids
    of `keep` that have a frame."""
    index = scan(path)
    last_kept = 0
    for record_id, offset, length in index.order:
        if record_id in keep:
            last_kept = offset + length
    if path.exists() and os.path.getsize(path) > last_kept:
        with open(path, "r+b") as handle:
            handle.truncate(last_kept)
    return {record_id for record_id, offset, length in index.order if record_id in keep and offset + length <= last_kept}


class FrameCopier:
    """Writes the frames of chosen records into a new side file, atomically (filter, merge)."""

    def __init__(self, output: str | os.PathLike):
        from distill.core.paths import temporary

        self.path = side_path(output)
        self._tmp = temporary(self.path)
        self._handle = None
        self.count = 0
        self.bytes = 0
        self.tokens = 0

    def copy(self, index: SideIndex, record_id: str) -> bool:
        """Copy `record_id`'s frame from `index`; False when it has none."""
        if record_id not in index.frames:
            return False
        if self._handle is None:
            self._tmp.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self._tmp, "wb")
        frame = index.read_frame(record_id)
        self._handle.write(frame)
        self.count += 1
        self.bytes += len(frame)
        (size,) = _U32.unpack_from(frame, 4)
        self.tokens += json.loads(frame[8:8 + size])["n"]
        return True

    def commit(self) -> None:
        """Rename into place (nothing is written when no record had log-probabilities)."""
        if self._handle is None:
            return
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> FrameCopier:
        return self

    def __exit__(self, exc_type, *rest) -> None:
        self.abort() if exc_type is not None else self.commit()
