"""Explicit record ids are unique within one input.

Two records with one id would be merged, skipped or double-counted downstream (four kept
records with one id look like one sample to a resumed run). Ids derived from content are unique
by construction (a sample's id includes its index); explicit ones are checked where records are
consumed: the filter, training data, shard merging and prompts with an id column.
"""

from __future__ import annotations

import re

from distill.core.errors import InputError
from distill.core.paths import quote


class UniqueIds:
    """Remembers where each id was seen; a second sighting is an `InputError` naming both places."""

    def __init__(self, field: str = "id"):
        self.field = field
        self._first: dict[str, str] = {}

    def see(self, record_id: str | None, where: str) -> None:
        if record_id is None:
            return
        first = self._first.setdefault(record_id, where)
        if first != where:
            source = re.sub(r"(:\d+| row \d+)$", "", where)
            raise InputError(f"duplicate id '{record_id:.80}' (also at {first}); ids must be unique in one input. "
                             f"To keep the first of each: distill merge {quote(source)} -o NEW.jsonl --drop-duplicates",
                             where=where, field=self.field)
