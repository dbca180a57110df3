"""The worker side of the filter: a chunk of raw input rows in, one `Judged` per row out.

Everything that costs per record happens here, in worker processes: JSON parsing and
validation, every rule except `dedup`, and writing the record back to JSON. The parent
(stage.py) only reads raw lines, runs `dedup` on the small digests and writes the lines in
order, so the filter scales with the worker count.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from distill.answers import DELIMITER_PRESETS, split_completion
from distill.data import parse_jsonl_line, validate_record
from distill.errors import InputError
from distill.filters.config import FilterConfig
from distill.filters.contamination import dedup_key
from distill.filters.majority import majority_verdict
from distill.filters.rules import evaluate, has_reference, r1_messages
from distill.records import Trace
from distill.verify import failure_verdict
from distill.workers import Failure

# Trace's last four fields, set by the filter: the worker writes everything before them.
JUDGED_FIELDS = {"verdicts", "rejected_by", "reason", "messages"}


@dataclass
class Judged:
    """One record as the parent needs it: small summaries plus the record already serialised."""

    error: str | None = None  # bad input: the one-line message, with file and line (the parent raises it)
    problem_id: str = ""
    domain: str = ""
    chars: int = 0
    tokens: int | None = None
    dedup_key: bytes = b""
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-record rules, in order, as JSON values
    head: str = ""  # the record's JSON without the judged fields and without its closing brace
    messages: str | None = None  # JSON of the SFT messages, when no per-record rule rejected it


def parse_row(where: str, raw: bytes | dict[str, Any]) -> Trace:
    """A JSONL line (bytes) or an already-read row as a Trace; errors as the data layer words them."""
    if isinstance(raw, bytes):
        raw = parse_jsonl_line(raw, where)
        if raw is None:
            raise InputError("blank line", where=where)
    return validate_record(Trace, raw, where)


@functools.lru_cache(maxsize=1)
def _votes(path: str) -> dict[str, dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def judge(config: FilterConfig, votes_path: str | None, where: str, raw: bytes | dict, failed: Failure | None) -> Judged:
    """One record through the per-record rules. `failed`: its verification was killed or crashed."""
    try:
        trace = parse_row(where, raw)
        parts = split_completion(trace.completion, DELIMITER_PRESETS[config.delimiters])
        override = {}
        if failed is not None:  # charged to the verifier, the only rule that can hang or explode
            override["correctness"] = failure_verdict(failed, config.correctness)
        elif votes_path and "correctness" in config.rules and not has_reference(trace):
            vote = _votes(votes_path).get(trace.problem_id)
            override["correctness"] = majority_verdict(trace, vote, config)
        verdicts = evaluate(trace, parts, config, override)
    except InputError as exc:  # located here unless the rule already named a file
        return Judged(error=str(exc) if exc.where else f"{where}: {exc}")
    row = trace.model_dump(mode="json", exclude_none=True, exclude=JUDGED_FIELDS)
    passed = all(v.passed for v in verdicts.values())
    return Judged(
        problem_id=trace.problem_id,
        domain=trace.domain,
        chars=len(trace.completion),
        tokens=trace.completion_tokens,
        dedup_key=dedup_key(trace) if "dedup" in config.rules else b"",
        verdicts={name: v.model_dump(mode="json", exclude_none=True) for name, v in verdicts.items()},
        head=json.dumps(row, ensure_ascii=False)[:-1],
        messages=json.dumps(r1_messages(trace, parts), ensure_ascii=False) if passed else None,
    )


def judge_chunk(config: FilterConfig, votes_path: str | None, items: list[tuple[str, Any]], failure: Failure | None) -> Iterator[Judged]:
    """The chunk function for `WorkerPool.imap_chunks`: `failure` belongs to items[0]."""
    for position, (where, raw) in enumerate(items):
        yield judge(config, votes_path, where, raw, failure if position == 0 else None)
