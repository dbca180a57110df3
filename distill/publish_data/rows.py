"""Kept traces -> rows of the published dataset, and the figures the card states about them.

A row is a `messages` conversation ready for SFT (the one `distill train` learns from), then
the provenance of the sample: problem, reference answer, domain, language, ids, the teacher
and how its sample ended. Verdicts and local paths stay out: the card summarises the former,
and the latter mean nothing to the dataset's readers.
"""

from __future__ import annotations

import hashlib
import json
import sys
from array import array
from collections import Counter
from typing import Any

from distill.core.errors import InputError
from distill.core.records import Trace
from distill.core.secrets import known_values, token_shape
from distill.filters.rules.language import LanguageOptions, target_language
from students.dataset import checked_conversation, messages_of

# (column, what it holds), in the order of the Parquet schema; the card's column table.
COLUMNS = (
    ("messages", "the conversation for SFT: the user's problem, the assistant's `<think>` reasoning and answer"),
    ("problem", "the prompt as the teacher got it (without the chat template)"),
    ("answer", "the reference answer the sample was checked against (null: none known)"),
    ("domain", "math, code, science or general"),
    ("language", "the prompt's language (ISO 639-1)"),
    ("id", "the sample's id: `{problem_id}#{sample_index}`"),
    ("problem_id", "the problem's id; samples of one problem share it"),
    ("sample_index", "which of the teacher's samples for the problem"),
    ("teacher", "the model that wrote the sample"),
    ("finish_reason", "why the teacher stopped (`stop`)"),
    ("completion_tokens", "length of the teacher's completion in its tokens (null: not reported)"),
)


def schema():
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    types = {"messages": pa.list_(message), "sample_index": pa.int64(), "completion_tokens": pa.int64()}
    return pa.schema([pa.field(name, types.get(name, pa.string())) for name, _ in COLUMNS])


def test_problems(problem_ids: list[str], test_fraction: float, seed: int) -> set[str]:
    """The problems held out as 'test': round(fraction x problems) of them, at least one when the fraction
    is above 0, drawn by a seeded hash of their ids (all of a problem's samples go together)."""
    if test_fraction <= 0 or not problem_ids:
        return set()
    count = max(1, int(len(problem_ids) * test_fraction + 0.5))
    ranked = sorted(problem_ids, key=lambda pid: hashlib.sha256(f"{seed}:{pid}".encode()).digest())
    return set(ranked[:count])


def split_report(test: set[str], problems: int, test_fraction: float) -> dict[str, Any]:
    """Requested against realised; a warning on stderr when the set is too small to come close."""
    realised = len(test) / problems if problems else 0.0
    report = {"requested": test_fraction, "realised": round(realised, 4), "test_problems": len(test), "problems": problems}
    if test_fraction > 0 and abs(realised - test_fraction) > 0.1 * test_fraction:
        sys.stderr.write(f"warning: {problems} problem(s) are too few for --test-fraction {test_fraction:g}: "
                         f"holding out {len(test)} ({realised:.0%})\n")
    return report


def row_of(trace: Trace, where: str, language: str) -> dict[str, Any]:
    if trace.rejected_by:
        raise InputError(f"a rejected record (rejected_by: {trace.rejected_by}); publish the filter's kept records",
                         where=where, field="rejected_by")
    teacher = (trace.teacher or {}).get("model")
    return {
        "messages": checked_conversation(messages_of(trace), where),
        "problem": trace.problem, "answer": trace.answer, "domain": trace.domain, "language": language,
        "id": trace.id, "problem_id": trace.problem_id, "sample_index": trace.sample_index,
        "teacher": shown_model(teacher) if teacher else None,
        "finish_reason": trace.finish_reason, "completion_tokens": trace.completion_tokens,
    }


def shown_model(name: str) -> str:
    """A hub id as it is; a local folder by its name only (its path is of no use to readers)."""
    from distill.core.hub import is_hub_id

    return name if is_hub_id(name) or "/" not in name else name.rstrip("/").rsplit("/", 1)[-1]


class SecretCheck:
    """Refuses a row holding the value of a token in the environment, or (unless `allow_shapes`) a
    token-shaped string. Parquet pages are compressed, so the scan of the finished folder could not
    see it there: the rows are checked on the way in, field by field."""

    def __init__(self, allow_shapes: bool = False) -> None:
        self.values = known_values()
        self.allow_shapes = allow_shapes

    def __call__(self, trace: Trace, where: str) -> None:
        for field, value in trace.model_dump(exclude_none=True).items():
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            if any(secret in text for secret in self.values):
                raise InputError("holds the value of a token from the environment: refusing to publish", where=where, field=field)
            kind = None if self.allow_shapes else token_shape(text)
            if kind:
                raise InputError(f"holds {kind}: refusing to publish (--allow-token-shapes publishes it anyway, "
                                 "when you know it is no secret)", where=where, field=field)


class DataStats:
    """What the card says about the rows: counts per split, problems, languages, domains, teachers, lengths."""

    def __init__(self) -> None:
        self.rows: Counter = Counter()  # split -> rows
        self.problems: dict[str, set[str]] = {}
        self.languages: Counter = Counter()
        self.domains: Counter = Counter()
        self.teachers: Counter = Counter()  # JSON of the teacher's model and sampling -> rows
        self.tokens = array("l")
        self.chars = array("l")
        self.sources: set[str] = set()  # where the prompts came from (the input of `generate`)
        self.language_options = LanguageOptions()
        self.arrow_bytes: dict[str, int] = {}  # split -> bytes in Arrow memory (set once the shards are written)
        self.parquet_bytes = 0  # of all shards, on disk

    def language(self, trace: Trace) -> str:
        return target_language(trace, self.language_options)

    def add(self, trace: Trace, row: dict[str, Any], split: str) -> None:
        self.rows[split] += 1
        self.problems.setdefault(split, set()).add(trace.problem_id)
        self.languages[row["language"]] += 1
        self.domains[trace.domain] += 1
        teacher = dict(trace.teacher or {})
        if teacher.get("model"):
            teacher["model"] = shown_model(str(teacher["model"]))
        teacher.pop("base_url", None)  # an endpoint's address is not the teacher
        self.teachers[json.dumps(teacher, sort_keys=False)] += 1
        if trace.completion_tokens is not None:
            self.tokens.append(trace.completion_tokens)
        self.chars.append(len(trace.completion))
        if trace.source and isinstance(trace.source.get("input"), str):
            self.sources.add(trace.source["input"])

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def lengths(self) -> tuple[str, array]:
        """('tokens', lengths) when every row reports its token count, else ('characters', lengths)."""
        return ("tokens", self.tokens) if len(self.tokens) == self.total else ("characters", self.chars)
