"""The one data layer: read rows from JSONL, JSON, Parquet and Hugging Face datasets, map them
to records, and write records so that a crash never leaves a half-written output.

Reading streams (one row at a time, Parquet in batches) so memory does not grow with the
input. Every problem with the input becomes an `InputError` naming the file, the line (or
row) and the field.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

from distill.core.chat import read_chat
from distill.core.code_test_formats import read_tests
from distill.core.errors import InputError
from distill.core.hub import is_hub_id, prepare_hub
from distill.core.jsonl import parse_line, read_lines
from distill.core.paths import atomic_path  # noqa: F401  (writers import it from here too)
from distill.core.r1_format import last_boxed
from distill.core.records import Problem, Trace, derive_problem_id, to_row

FILE_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
_PARQUET_JSON_KEY = b"distill.json_fields"
_PARQUET_BATCH = 1024
_BARE_ANSWER_CHARS = 32  # a solution this short, on one line, is the answer itself

M = TypeVar("M", bound=BaseModel)


class FieldMap(BaseModel):
    """Which input columns hold which record fields (so no conversion script is needed)."""

    problem: str = Field(default="problem", description="Column with the prompt text.", json_schema_extra={"flags": ["--field-problem"]})
    answer: str | None = Field(default="answer", description="Column with the reference answer.", json_schema_extra={"flags": ["--field-answer"]})
    solution: str | None = Field(
        default="solution",
        description="Column with a worked solution; its last \\boxed{} is the answer when the answer column is absent.", json_schema_extra={"flags": ["--field-solution"]})
    id: str | None = Field(default=None, description="Column with a problem id (default: a hash of the prompt).", json_schema_extra={"flags": ["--field-id"]})
    domain: str | None = Field(default="domain", description="Column with the domain, if present.", json_schema_extra={"flags": ["--field-domain"]})
    tests: str | None = Field(default="tests", description="Column with code tests, if present.", json_schema_extra={"flags": ["--field-tests"]})
    language: str | None = Field(default="language", description="Column with the target language, if present.", json_schema_extra={"flags": ["--field-language"]})
    default_domain: str = Field(default="math", description="Domain for rows without a domain column (rows with code tests: code).")
    # Traces (filter, inspect, train; the --preset sets them): where the teacher's output is.
    completion: str | None = Field(
        default="completion", description="Column with the teacher's output: a string, or a list (one record per item).",
        json_schema_extra={"flags": ["--field-completion"]})
    reasoning: str | None = Field(
        default=None, description="Column with the reasoning when it is stored apart from the completion (s1K's thinking_trajectories).",
        json_schema_extra={"flags": ["--field-reasoning"]})
    conversation: str | None = Field(
        default=None, description="Column with a chat ([{role, content}] or [{from, value}]): the prompt is its last user turn, "
        "the completion its last assistant turn (with its reasoning_content).", json_schema_extra={"flags": ["--field-conversation"]})
    per_sample: list[str] = Field(
        default_factory=list, description="List columns with one value per completion (OpenR1's finish_reasons): split along with it.",
        json_schema_extra={"flags": ["--field-per-sample"]})
    sample_id: str | None = Field(default=None, description="Column with a sample id (default: derived).", json_schema_extra={"flags": ["--field-sample-id"]})
    sample_index: str | None = Field(
        default=None, description="Column with the sample's index among its problem's samples (default: its position).",
        json_schema_extra={"flags": ["--field-sample-index"]})
    finish_reason: str | None = Field(
        default=None, description="Column with the teacher's finish reason (stop or length).", json_schema_extra={"flags": ["--field-finish-reason"]})
    # Code tests as public datasets ship them (distill.core.code_test_formats reads them into `tests`).
    test_format: Literal["auto", "tests", "humaneval", "mbpp", "apps", "livecodebench", "codecontests"] = Field(
        default="auto", description="How code tests are stored (auto: by which of the columns below a row has).", json_schema_extra={"flags": ["--field-test-format"]})
    test_code: str | None = Field(default="test", description="HumanEval: column with the test code defining check(candidate).", json_schema_extra={"flags": ["--field-test-code"]})
    entry_point: str | None = Field(default="entry_point", description="HumanEval: column with the tested function's name.", json_schema_extra={"flags": ["--field-entry-point"]})
    test_list: str | None = Field(default="test_list", description="MBPP: column with the list of assert statements.", json_schema_extra={"flags": ["--field-test-list"]})
    test_setup: str | None = Field(default="test_setup_code", description="MBPP: column with code run before the asserts.", json_schema_extra={"flags": ["--field-test-setup"]})
    test_imports: str | None = Field(default="test_imports", description="MBPP: column with import statements for the asserts.", json_schema_extra={"flags": ["--field-test-imports"]})
    input_output: str | None = Field(default="input_output", description="APPS/TACO: column with the JSON of inputs, outputs and fn_name.", json_schema_extra={"flags": ["--field-input-output"]})
    public_tests: str | None = Field(default=None, description="LiveCodeBench/CodeContests: column with public test cases (default: public_test_cases or public_tests).", json_schema_extra={"flags": ["--field-public-tests"]})
    private_tests: str | None = Field(default=None, description="LiveCodeBench/CodeContests: column with private test cases (default: private_test_cases, or private_tests and generated_tests).", json_schema_extra={"flags": ["--field-private-tests"]})
    metadata: str | None = Field(default="metadata", description="LiveCodeBench: column with the JSON metadata naming func_name.", json_schema_extra={"flags": ["--field-metadata"]})


# ---------------------------------------------------------------------------- reading rows


def input_kind(source: str | os.PathLike) -> str:
    """'jsonl', 'json', 'parquet', 'dataset' (a saved folder) or 'hub'; raises on anything else."""
    text = str(source)
    if text.startswith(("hf:", "hf://")):
        return "hub"
    path = Path(text)
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as exc:  # a folder on the way we may not enter
        raise InputError(f"cannot read ({(exc.strerror or str(exc)).lower()})", where=text) from None
    if is_dir:
        return "dataset"
    suffix = path.suffix.lower()
    if exists:
        if suffix not in FILE_SUFFIXES:
            raise InputError(f"unknown format '{suffix or path.name}' (expected .jsonl, .json, .parquet, .csv, a dataset folder or a hub id)", where=text)
        return FILE_SUFFIXES[suffix]
    if suffix in FILE_SUFFIXES or not is_hub_id(text):
        raise InputError("no such file or directory", where=text)
    return "hub"


def iter_rows(source: str | os.PathLike, split: str = "train") -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (location, row) pairs; location reads 'file.jsonl:12' or 'file.parquet row 12'."""
    kind = input_kind(source)
    reader = {"jsonl": _jsonl_rows, "json": _json_rows, "parquet": _parquet_rows, "csv": _csv_rows}.get(kind)
    if reader is not None:
        try:
            yield from reader(Path(source))
        except OSError as exc:
            raise InputError(f"cannot read ({(exc.strerror or str(exc)).lower()})", where=str(source)) from None
        return
    yield from _dataset_rows(str(source), kind, split)


def _jsonl_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    seen_any = False
    for line in read_lines(path):
        where = f"{path}:{line.number}"
        seen_any = True
        yield where, parse_line(line.raw, where)
    if not seen_any:
        raise InputError("empty file (no records)", where=str(path))


def _json_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    # A JSON document cannot be streamed without a second parser; JSONL or Parquet is the
    # format for large inputs, JSON is for small hand-written files.
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"invalid UTF-8 at byte {exc.start}", where=str(path)) from None
    if not text.strip():
        raise InputError("empty file (no records)", where=str(path))
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON ({exc.msg}, column {exc.colno})", where=f"{path}:{exc.lineno}") from None
    if isinstance(doc, dict) and len(doc) == 1 and isinstance(next(iter(doc.values())), list):
        doc = next(iter(doc.values()))  # {"data": [...]} style
    if not isinstance(doc, list):
        raise InputError("expected a list of objects", where=str(path))
    if not doc:
        raise InputError("empty file (no records)", where=str(path))
    for index, row in enumerate(doc):
        where = f"{path} item {index}"
        if not isinstance(row, dict):
            raise InputError(f"expected a JSON object, got {type(row).__name__}", where=where)
        yield where, row


def _csv_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    # As some public sets ship (GPQA): a header row, then one row per record; quoted cells may span lines,
    # so a row is located by the line it starts on. Cells stay text, as the file has them.
    import csv

    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        start = 2
        try:
            for row in reader:
                yield f"{path}:{start}", {key: value for key, value in row.items() if key is not None}
                start = reader.line_num + 1
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"malformed CSV ({exc})", where=f"{path}:{start}") from None
    if start == 2:
        raise InputError("empty file (no records)", where=str(path))


def _parquet_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"not a readable Parquet file ({exc})", where=str(path)) from None
    metadata = parquet.schema_arrow.metadata or {}
    json_fields = set(metadata.get(_PARQUET_JSON_KEY, b"").decode().split(",")) - {""}
    if parquet.metadata.num_rows == 0:
        raise InputError("empty file (no records)", where=str(path))
    index = 0
    for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH):
        for row in batch.to_pylist():
            for name in json_fields:
                if isinstance(row.get(name), str):
                    row[name] = json.loads(row[name])
            yield f"{path} row {index}", row
            index += 1


def _dataset_rows(source: str, kind: str, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
    import datasets

    # A folder of data files with a card (a hub snapshot, `distill publish-data`) is not a saved dataset.
    if kind == "dataset" and not any((Path(source) / name).exists() for name in ("state.json", "dataset_dict.json")):
        try:
            loaded = datasets.load_dataset(source, split=split, streaming=True)  # streamed: no copy in the cache
        except Exception as exc:  # no data files, a bad card, no such split: all mean "cannot load"
            raise InputError(f"cannot load the dataset folder ({type(exc).__name__}: {exc})".splitlines()[0], where=source) from None
    elif kind == "dataset":
        try:
            loaded = datasets.load_from_disk(source)
        except (FileNotFoundError, ValueError) as exc:
            raise InputError(f"not a saved Hugging Face dataset ({exc})", where=source) from None
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise InputError(f"no split '{split}' (has {', '.join(loaded)})", where=source)
            loaded = loaded[split]
    else:
        name, _, subset = source.removeprefix("hf://").removeprefix("hf:").partition(":")  # "owner/name:subset"
        prepare_hub()  # unreachable: the cache only, failing at once instead of retrying
        try:
            loaded = datasets.load_dataset(name, subset or None, split=split, streaming=True)
        except Exception as exc:  # the hub raises many types; all mean "cannot load"
            raise InputError(f"cannot load dataset from the hub ({type(exc).__name__}: {exc})".splitlines()[0], where=name) from None
    for index, row in enumerate(loaded):
        yield f"{source}[{split}] row {index}", dict(row)


# ---------------------------------------------------------------------------- rows -> records


def read_problems(source: str | os.PathLike, fields: FieldMap | None = None, split: str = "train") -> Iterator[Problem]:
    """Prompts with their references, through the field mapping."""
    fields = fields or FieldMap()
    for where, row in iter_rows(source, split):
        values = problem_values(row, fields, where, prompt_of(row, fields, where))
        values["source"] = {"input": str(source), "row": row_ref(where)}
        yield validate_record(Problem, values, where)


def problem_values(row: dict[str, Any], fields: FieldMap, where: str, text: str) -> dict[str, Any]:
    """The Problem fields of one row with prompt `text`: the one mapping prompts, benchmarks and
    traces (distill.core.trace_layout) share. Code tests are read in any known format (code_test_formats);
    a mapping with no tests column and auto format reads none (public trace layouts)."""
    tests = read_tests(row, fields, where) if fields.tests or fields.test_format != "auto" else None
    return {
        "problem_id": str(row[fields.id]) if fields.id and row.get(fields.id) not in (None, "") else derive_problem_id(text),
        "problem": text,
        "answer": answer_of(row, fields),
        "domain": row.get(fields.domain) if fields.domain and row.get(fields.domain) else "code" if tests else fields.default_domain,
        "tests": tests,
        "language": row.get(fields.language) if fields.language else None,
    }


def row_ref(where: str) -> str:
    """The line or row number of a location ('file.jsonl:12' -> '12', 'x.parquet row 3' -> '3')."""
    return where.rsplit(" ", 1)[-1].rsplit(":", 1)[-1]


def prompt_of(row: dict[str, Any], fields: FieldMap, where: str) -> str:
    """The prompt text: the problem column, or the last user turn of the conversation column."""
    if fields.conversation and fields.conversation in row:
        return read_chat(row[fields.conversation], where, fields.conversation, need_answer=False).prompt
    text = row.get(fields.problem)
    if not isinstance(text, str) or not text.strip():
        found = "missing" if fields.problem not in row else f"not a non-empty string ({type(text).__name__})"
        raise InputError(f"{found}; columns are {', '.join(sorted(row)) or 'none'}", where=where, field=fields.problem)
    return text


def answer_of(row: dict[str, Any], fields: FieldMap) -> str | None:
    """The answer column; else the solution's last \\boxed{}; else the solution itself when it is
    one short line (a bare answer, as s1K's AIME rows have)."""
    value = row.get(fields.answer) if fields.answer else None
    if value is not None and str(value).strip():
        return str(value).strip()
    solution = row.get(fields.solution) if fields.solution else None
    if isinstance(solution, str):
        bare = solution.strip()
        return last_boxed(solution) or (bare if bare and len(bare) <= _BARE_ANSWER_CHARS and "\n" not in bare else None)
    return None


def read_records(source: str | os.PathLike, model: type[M] = Trace, split: str = "train") -> Iterator[M]:
    """Records written by an earlier stage (or by hand), validated against the record model."""
    for where, row in iter_rows(source, split):
        yield validate_record(model, row, where)


def validate_record(model: type[M], values: dict[str, Any], where: str) -> M:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or None
        raise InputError(error["msg"].lower(), where=where, field=field) from None


def count_rows(source: str | os.PathLike, split: str = "train") -> int:
    """Number of rows without keeping them (cheap for Parquet, one pass otherwise)."""
    kind = input_kind(source)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(source).metadata.num_rows
    return sum(1 for _ in iter_rows(source, split))


# ---------------------------------------------------------------------------- writing


class RecordWriter:
    """Writes records to JSONL or Parquet (by suffix), atomically: use as a context manager.

    Parquet needs its schema before the first row, but the columns a record carries beside its
    own fields (a public dataset's) are only known once every row is seen: rows go to a spill
    file first (constant memory), and the Parquet file is written from it at the end, each
    carried column typed by what it held (string, integer, float, boolean; anything else JSON).
    """

    def __init__(self, path: str | os.PathLike, model: type[BaseModel] = Trace):
        self.path = Path(path)
        self.model = model
        suffix = self.path.suffix.lower()
        if suffix not in (".jsonl", ".parquet"):
            raise InputError("output must end in .jsonl or .parquet", where=str(path))
        self.format = FILE_SUFFIXES[suffix]
        self.count = 0
        self._extra: dict[str, set[str]] = {}  # carried column -> kinds of its values

    def __enter__(self) -> RecordWriter:
        from distill.core.secrets import scrubber

        self._scrub = scrubber()
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        if self.format == "jsonl":
            self._handle = open(self._tmp, "w", encoding="utf-8")
        else:  # unlinked at once: a crash leaves nothing behind
            self._handle = tempfile.TemporaryFile("w+", encoding="utf-8", dir=self._tmp.parent, prefix=f".{self.path.name}.rows-")
        return self

    def write(self, record: BaseModel | dict[str, Any]) -> None:
        row = to_row(record) if isinstance(record, BaseModel) else record
        self.count += 1
        self._handle.write(self._scrub(json.dumps(row, ensure_ascii=False)) + "\n")
        if self.format == "parquet":
            for key, value in row.items():
                if key not in self.model.model_fields:
                    self._extra.setdefault(key, set()).add(_kind(value))

    def _write_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        extra = {key: _EXTRA_TYPES.get(frozenset(kinds - {"null"}) or frozenset({"str"})) for key, kinds in self._extra.items()}
        schema = arrow_schema(self.model, extra)
        json_fields = set(schema.metadata[_PARQUET_JSON_KEY].decode().split(",")) - {""}
        self._handle.seek(0)
        with pq.ParquetWriter(self._tmp, schema) as writer:
            batch: list[dict[str, Any]] = []
            for line in itertools.chain(self._handle, [None]):
                if line is not None:
                    row = json.loads(line)
                    batch.append({k: json.dumps(v, ensure_ascii=False) if k in json_fields and v is not None else v for k, v in row.items()})
                if batch and (line is None or len(batch) >= _PARQUET_BATCH):
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    batch = []

    def __exit__(self, exc_type, exc, tb) -> None:
        try:  # closing flushes: a full disk can fail here, and the old output must stay
            if self.format == "parquet" and exc_type is None:
                self._write_parquet()
            self._handle.close()
        except BaseException:
            self._handle.close()
            self._atomic.__exit__(*sys.exc_info())
            raise
        self._atomic.__exit__(exc_type, exc, tb)


def write_records(path: str | os.PathLike, records, model: type[BaseModel] = Trace) -> int:
    with RecordWriter(path, model) as writer:
        for record in records:
            writer.write(record)
    return writer.count


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -(2**63) <= value < 2**63 else "json"
    return {float: "float", str: "str"}.get(type(value), "json")


# Kinds of values a carried column held -> its Parquet type (None: JSON text, like nested fields).
_EXTRA_TYPES = {frozenset({"str"}): "string", frozenset({"int"}): "int64", frozenset({"float"}): "float64",
                frozenset({"int", "float"}): "float64", frozenset({"bool"}): "bool_"}


def _json_fields(model: type[BaseModel]) -> set[str]:
    return {name for name, info in model.model_fields.items() if _arrow_scalar(info.annotation) is None}


def _arrow_scalar(annotation: Any):
    import typing

    import pyarrow as pa

    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
        annotation = args[0]
    if typing.get_origin(annotation) is typing.Literal:
        return pa.string()
    return {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}.get(annotation)


def arrow_schema(model: type[BaseModel], extra: dict[str, str | None] | None = None):
    """Scalars keep their types; nested fields (dicts, lists, unions) are stored as JSON text.

    `extra`: carried columns after the model's fields, name -> Arrow type name (None: JSON text)."""
    import pyarrow as pa

    fields = [pa.field(name, _arrow_scalar(info.annotation) or pa.string()) for name, info in model.model_fields.items()]
    extra = {name: kind for name, kind in (extra or {}).items() if name not in model.model_fields}
    fields += [pa.field(name, getattr(pa, kind or "string")()) for name, kind in extra.items()]
    json_fields = _json_fields(model) | {name for name, kind in extra.items() if kind is None}
    return pa.schema(fields, metadata={_PARQUET_JSON_KEY: ",".join(sorted(json_fields)).encode()})
