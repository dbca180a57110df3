"""Trace layouts: this project's records, and the public reasoning datasets as they are.

A preset names a layout (which columns hold the prompt, the completions, the ids) and its
reasoning delimiters; `--field-*` overrides single columns (`FieldMap`, the mapping prompts use
too); `map_row` turns one input row into the values of one `Trace` per completion. The rules:

- **Consumed columns.** A column a record field is read from (prompt, answer, ids, completion,
  reasoning, finish reason, domain, tests, language) is consumed: the record holds its value.
  A chat column is consumed only when it is exactly one user turn and one assistant turn with
  plain keys; any other chat (a system turn, earlier turns, tool calls) is also carried whole.
- **Carried columns.** Every other column is kept unchanged, after the record's own fields.
- **Per-sample columns** (`fields.per_sample`: OpenR1's `finish_reasons`, `correctness_*`,
  `is_reasoning_complete`) hold one value per completion: each record carries its own value,
  under the column's name (prior verdicts stay provenance; our `verdicts` are the filter's). A
  list whose length is not the number of completions is carried whole.
- **Collisions.** In a public layout, a carried column named like one of our fields (OpenR1's
  `source` is a string, ours the provenance; its `messages` are not our SFT messages) is kept as
  `orig_NAME`, and the renaming is recorded in the record: `source.renamed = {"source":
  "orig_source"}`. In this project's layout those names are ours, except that a `source` or
  `teacher` that is not a mapping (someone's label) is renamed the same way.
- **Ids.** problem_id: the id column, else a hash of the prompt (as prompts get); sample_index:
  the column, else the position in the row's list of completions (0 for one); id: the column,
  else `problem_id#sample_index` for a list, `problem_id#` + a hash of the completion for one
  completion per row (two rows answering one problem differ). Content hashes: a re-run and a
  resumed run give the same ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, PrivateAttr, model_validator

from distill.core.chat import read_chat
from distill.core.code_test_formats import test_columns
from distill.core.data import FieldMap, iter_rows, problem_values, prompt_of, row_ref, validate_record
from distill.core.errors import InputError
from distill.core.jsonl import parse_line
from distill.core.r1_format import DELIMITER_PRESETS, compose
from distill.core.records import Trace, sample_id

DelimiterName = Literal["r1", "sky-t1"]
PresetName = Literal["distill", "openr1", "sharegpt", "s1k", "messages"]
RENAMED_PREFIX = "orig_"
OURS = frozenset(Trace.model_fields)
PROVENANCE = ("source", "teacher")  # ours only when they hold a mapping
_PUBLIC = {"domain": None, "tests": None, "language": None}  # public sets' columns of these names mean other things


@dataclass(frozen=True)
class Preset:
    fields: FieldMap
    delimiters: DelimiterName
    own: bool = False  # this project's layout: columns named like our fields are ours


PRESETS: dict[str, Preset] = {
    "distill": Preset(FieldMap(id="problem_id", sample_id="id", sample_index="sample_index", finish_reason="finish_reason"), "r1", own=True),
    # OpenR1-Math-220k: problem, answer, uuid, generations and one value per generation in the lists below.
    "openr1": Preset(FieldMap(id="uuid", completion="generations", finish_reason="finish_reasons", per_sample=[
        "finish_reasons", "correctness_math_verify", "correctness_llama", "is_reasoning_complete"], **_PUBLIC), "r1"),
    # OpenThoughts-114k, Bespoke-Stratos-17k: system, conversations [{from, value}] in Sky-T1's markers.
    "sharegpt": Preset(FieldMap(conversation="conversations", **_PUBLIC), "sky-t1"),
    # s1K: question, solution, thinking_trajectories (a list), attempt.
    "s1k": Preset(FieldMap(problem="question", reasoning="thinking_trajectories", completion="attempt", **_PUBLIC), "r1"),
    # OpenAI chat: messages with the assistant's reasoning_content, or <think> in its content.
    "messages": Preset(FieldMap(conversation="messages", **_PUBLIC), "r1"),
}


class TraceLayout(BaseModel):
    """How input traces are laid out (filter, inspect, train): a preset, columns, delimiters."""

    panels: ClassVar[dict[str, tuple[str, ...]]] = {"Input layout (--preset sets the columns; a --field-* flag overrides one)": ("preset", "fields", "delimiters")}

    preset: PresetName = Field(
        default="distill", description="Layout of the input: this project's records, or a public set's (docs/layouts.md).")
    fields: FieldMap = Field(default_factory=FieldMap, description="Which input columns hold the prompt, completion, ids... (default: the preset's).")
    delimiters: DelimiterName | None = Field(
        default=None, description="Reasoning delimiters of the completions (default: the ones the data uses, else the preset's: "
        "sky-t1 for sharegpt, else r1).")
    _delimiters_given: bool = PrivateAttr(default=False)  # given, not the preset's: never detected from the data

    @model_validator(mode="after")
    def _apply_preset(self) -> TraceLayout:
        # The preset's columns, with the ones given explicitly (flags or recipe) on top.
        preset = PRESETS[self.preset]
        given = {name: getattr(self.fields, name) for name in self.fields.model_fields_set}
        self.fields = preset.fields.model_copy(update=given)
        self._delimiters_given = self._delimiters_given or self.delimiters is not None
        self.delimiters = self.delimiters or preset.delimiters
        return self

    def detect_delimiters(self, source: str, rows: int = 200) -> str | None:
        """When the delimiters were not given and the first `rows` rows of `source` close their reasoning
        with another preset's tag and never with this one's, switch to that preset; the line saying so."""
        if self._delimiters_given:
            return None
        seen: dict[str, int] = dict.fromkeys(DELIMITER_PRESETS, 0)
        try:
            for count, (_where, row) in enumerate(iter_rows(source)):
                if count >= rows:
                    break
                text = row if isinstance(row, str) else repr(row)
                for name, delimiters in DELIMITER_PRESETS.items():
                    seen[name] += delimiters.think_close in text
        except InputError:  # a bad row: the stage reports it, with its line, in its own order
            pass
        found = [name for name, n in seen.items() if n]
        if seen[self.delimiters] or len(found) != 1:
            return None
        self.delimiters = found[0]
        tag = DELIMITER_PRESETS[found[0]].think_close
        return f"{source}: the completions close their reasoning with {tag}: reading them with --delimiters {found[0]}"


def _text(value: Any, where: str, field: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"expected text, got {type(value).__name__}", where=where, field=field)
    return value


def _aligned(value: Any, count: int, where: str, field: str) -> list[Any]:
    """A reasoning column against the completions: a list of the same length, or one value for all."""
    if not isinstance(value, list):
        return [value] * count
    if len(value) == count:
        return value
    if len(value) == 1:
        return value * count
    raise InputError(f"{len(value)} items for {count} completions", where=where, field=field)


def map_row(row: dict[str, Any], layout: TraceLayout, where: str, source: str = "") -> list[dict[str, Any]]:
    """The Trace values of every completion in one input row (see the module docstring)."""
    fields, own = layout.fields, PRESETS[layout.preset].own
    d = DELIMITER_PRESETS[layout.delimiters]
    used: set[str] = set()
    listed = False
    if fields.conversation and fields.conversation not in row and fields.problem not in row:
        raise InputError(f"missing; columns are {', '.join(sorted(row)) or 'none'}", where=where, field=fields.conversation)
    if fields.conversation and fields.conversation in row:
        chat = read_chat(row[fields.conversation], where, fields.conversation)
        problem, completions, reasonings = chat.prompt, [chat.answer], [chat.reasoning]
        if chat.plain:
            used.add(fields.conversation)
    else:
        problem = prompt_of(row, fields, where)
        used.add(fields.problem)
        if not fields.completion or fields.completion not in row:
            raise InputError(f"missing; columns are {', '.join(sorted(row)) or 'none'}", where=where, field=fields.completion or "completion")
        value = row[fields.completion]
        listed = isinstance(value, list) and not own  # this project's records hold one completion each
        completions = value if listed else [value]
        reasonings = [None] * len(completions)
        used.add(fields.completion)
        if fields.reasoning and row.get(fields.reasoning) is not None:
            reasonings = _aligned(row[fields.reasoning], len(completions), where, fields.reasoning)
            used.add(fields.reasoning)
    count = len(completions)
    split = {c for c in fields.per_sample if isinstance(row.get(c), list) and len(row[c]) == count}
    column = {name: getattr(fields, name) for name in ("answer", "id", "sample_id", "sample_index", "finish_reason", "domain", "tests", "language")}
    used |= {c for c in column.values() if c and c in row} - set(fields.per_sample)  # per-sample columns stay: provenance
    common = problem_values(row, fields, where, problem)
    problem_id = common["problem_id"]
    if common["tests"] is not None:  # read from a known test format's columns: the record holds them
        used |= test_columns(fields) & row.keys()
    if not own:
        common["source"] = {"input": str(source), "row": row_ref(where)}
    records = []
    for index, (completion, reasoning) in enumerate(zip(completions, reasonings, strict=True)):
        sample = row | {c: row[c][index] for c in split}  # the row as this sample sees it
        get = sample.get
        label = f"{fields.completion}.{index}" if listed else (fields.conversation if fields.conversation in row else fields.completion)
        completion = _text(completion, where, label)
        if reasoning is not None:
            completion = compose(_text(reasoning, where, fields.reasoning or "reasoning"), completion, d)
        values = dict(common, completion=completion)
        index_value = get(fields.sample_index) if fields.sample_index else None
        values["sample_index"] = index_value if index_value is not None else index
        given_id = get(fields.sample_id) if fields.sample_id else None
        if given_id not in (None, ""):
            values["id"] = str(given_id)
        elif listed or index_value is not None:
            values["id"] = sample_id(problem_id, values["sample_index"])
        else:
            values["id"] = f"{problem_id}#{hashlib.sha1(completion.encode('utf-8')).hexdigest()[:8]}"
        finish = get(fields.finish_reason) if fields.finish_reason else None
        known = own or finish in ("stop", "length", None)  # ours must be valid; a public set's other reasons are carried
        values["finish_reason"] = finish if known else None
        carried = set() if known or fields.finish_reason in fields.per_sample else {fields.finish_reason}
        records.append(_carry(sample, values, used - carried, own))
    return records


def _carry(row: dict[str, Any], values: dict[str, Any], used: set[str], own: bool) -> dict[str, Any]:
    """`values` plus the row's other columns, renamed where they would take one of our names."""
    renamed: dict[str, str] = {}
    for name, value in row.items():
        if name in used:
            continue
        if name in values or (name in OURS and not own) or (name in PROVENANCE and not isinstance(value, dict | None)):
            new = RENAMED_PREFIX + name
            while new in row or new in values:
                new = RENAMED_PREFIX + new
            renamed[name], name = new, new
        values[name] = value
    if renamed:
        source = values.get("source")
        values["source"] = {**(source if isinstance(source, dict) else {}), "renamed": renamed}
    return values


def trace_rows(source: str, layout: TraceLayout, split: str = "train") -> Iterator[tuple[str, dict[str, Any]]]:
    """(location, Trace values) of every sample in `source`, through the layout."""
    for where, row in iter_rows(source, split):
        for values in map_row(row, layout, where, str(source)):
            yield where, values


def read_traces(source: str, layout: TraceLayout | None = None, split: str = "train") -> Iterator[Trace]:
    """Trace records of any layout (this project's by default), validated."""
    layout = layout or TraceLayout()
    for where, values in trace_rows(source, layout, split):
        yield validate_record(Trace, values, where)


def item_values(where: str, raw: bytes | dict[str, Any], layout: TraceLayout) -> dict[str, Any]:
    """One filter work item as Trace values: a JSONL line or row of this project's layout (mapped
    here, in a worker), or values the parent already mapped (public layouts: see filters/stage.py)."""
    if isinstance(raw, bytes):
        raw = parse_line(raw, where)
        if raw is None:
            raise InputError("blank line", where=where)
    if not PRESETS[layout.preset].own:
        return raw
    (values,) = map_row(raw, layout, where)
    return values
