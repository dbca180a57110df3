"""Parquet shards, the layout the Hugging Face hub and `datasets` expect of a published dataset:
`data/{split}-00000-of-00003.parquet`, each at most about `max_bytes` of data, rows streamed in
batches so memory does not grow with the data. Part of the data layer (data.py reads Parquet;
this writes sharded, typed Parquet whose nested columns stay nested: `messages` is a list of
{role, content} structs, not JSON text).

The writer writes into a folder it owns (a staging folder that is moved into place whole), so
a shard's final name (`-of-N`) is given only when the split is complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_BATCH = 1024


def _size(value: Any) -> int:
    """Bytes a value adds to a shard, roughly (before compression)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_size(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_size(v) for v in value)
    return 8


class ShardWriter:
    """Rows of one split into `folder/{split}-NNNNN-of-NNNNN.parquet`; use as a context manager."""

    def __init__(self, folder: Path, split: str, schema, max_bytes: int):
        self.folder, self.split, self.schema, self.max_bytes = Path(folder), split, schema, max_bytes
        self.paths: list[Path] = []
        self.rows = 0
        self.nbytes = 0  # in Arrow memory, as `datasets` counts a split's num_bytes
        self._writer = None
        self._pending: list[dict[str, Any]] = []
        self._bytes = 0  # of the open shard

    def __enter__(self) -> ShardWriter:
        return self

    def write(self, row: dict[str, Any]) -> None:
        size = _size(row)
        if self._writer is not None and self._bytes + size > self.max_bytes:
            self._close_shard()
        if self._writer is None:
            self._open_shard()
        self._pending.append(row)
        self._bytes += size
        self.rows += 1
        if len(self._pending) >= _BATCH:
            self._flush()

    def _open_shard(self) -> None:
        import pyarrow.parquet as pq

        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f".{self.split}-{len(self.paths):05d}.parquet.part"
        self.paths.append(path)
        self._writer = pq.ParquetWriter(path, self.schema)
        self._bytes = 0

    def _flush(self) -> None:
        import pyarrow as pa

        if self._pending:
            table = pa.Table.from_pylist(self._pending, schema=self.schema)
            self._writer.write_table(table)
            self.nbytes += table.nbytes
            self._pending = []

    def _close_shard(self) -> None:
        self._flush()
        self._writer.close()
        self._writer = None

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._writer is not None:
            if exc_type is None:
                self._close_shard()
            else:
                self._writer.close()
        if exc_type is None:  # the split is complete: the shards get their final names
            total = len(self.paths)
            named = [self.folder / f"{self.split}-{i:05d}-of-{total:05d}.parquet" for i in range(total)]
            for part, final in zip(self.paths, named, strict=True):
                part.rename(final)
            self.paths = named
