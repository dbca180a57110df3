"""The benchmarks `distill eval` knows, by kind: how each is loaded, prompted and graded.

Three kinds, one module each:
- answer   (answers.py): a problem with a reference answer (AIME, MATH-500, AMC, any problem/answer
           file, `--field-*`), or with code tests in a known format; graded by the verifier.
- choice   (gpqa.py): GPQA's multiple choice; graded by the letter the model chose.
- code     (livecodebench.py): LiveCodeBench; graded by the verifier's sandbox against its tests.

A name resolves to a public hub dataset (the loader's cache when offline); a file is recognised
by its columns (GPQA's and LiveCodeBench's public layouts), anything else is an answer file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.core.data import FieldMap, iter_rows
from distill.core.errors import InputError
from distill.core.r1_format import Delimiters
from distill.core.records import Problem, Trace, Verdict
from distill.evaluate.benchmarks import answers, gpqa, livecodebench


@dataclass(frozen=True)
class Known:
    """A benchmark name: its hub dataset ('owner/name' or 'owner/name:subset'), split, kind and title."""

    dataset: str
    split: str
    kind: str
    title: str
    fields: FieldMap = field(default_factory=FieldMap)


KNOWN: dict[str, Known] = {
    "aime24": Known("HuggingFaceH4/aime_2024", "train", "answer", "AIME 2024", FieldMap(problem="problem", answer="answer", id="id")),
    "aime25": Known("math-ai/aime25", "test", "answer", "AIME 2025", FieldMap(problem="problem", answer="answer", id="id")),
    "amc23": Known("math-ai/amc23", "test", "answer", "AMC 2023", FieldMap(problem="question", answer="answer", id="id")),
    "math500": Known("HuggingFaceH4/MATH-500", "test", "answer", "MATH-500", FieldMap(problem="problem", answer="answer", id="unique_id")),
    "gpqa_diamond": Known("Idavidrein/gpqa:gpqa_diamond", "train", "choice", "GPQA Diamond"),
    "livecodebench": Known("livecodebench/code_generation_lite", "test", "code", "LiveCodeBench"),
}


def names_help() -> str:
    return ", ".join(f"{name} ({known.title})" for name, known in KNOWN.items())


@dataclass
class Benchmark:
    """One loaded benchmark: its result-file name, kind, problems, and what summary.json records of it."""

    name: str
    kind: str
    problems: list[Problem]
    info: dict[str, Any] = field(default_factory=dict)


def benchmark_name(spec: str) -> str:
    path = Path(spec)
    return path.stem if path.suffix else spec.removeprefix("hf:").rstrip("/").rsplit("/", 1)[-1]


def _is_name(spec: str) -> bool:
    """A bare word (no path, no hub id): it can only mean a known benchmark."""
    return "/" not in spec and ":" not in spec and not Path(spec).suffix and not Path(spec).exists()


def kind_of(source: str, split: str) -> str:
    """The kind a file's (or dataset's) first row has, by its columns."""
    for _, row in iter_rows(source, split):
        return "choice" if gpqa.matches(row) else "code" if livecodebench.matches(row) else "answer"
    return "answer"


def load(spec: str, config: Any) -> Benchmark:
    """A benchmark from a file, a hub dataset or a known name; bad input is an InputError."""
    name, source, split, fields = benchmark_name(spec), spec, "train", config.fields
    if spec in KNOWN and not Path(spec).exists():
        known = KNOWN[spec]
        source, split, kind = f"hf:{known.dataset}", known.split, known.kind
        fields = known.fields
    elif _is_name(spec):
        raise InputError(f"unknown benchmark '{spec}' (known: {', '.join(KNOWN)}; or a file)", field="benchmarks")
    else:
        kind = kind_of(source, split)
    if kind == "choice":
        return Benchmark(name, kind, gpqa.load(source, split, config.limit, config.shuffle_seed), {"shuffle_seed": config.shuffle_seed})
    if kind == "code":
        problems = livecodebench.load(source, split, config.limit, config.since, config.until)
        return Benchmark(name, kind, problems, {"since": config.since, "until": config.until})
    return Benchmark(name, kind, answers.load(source, split, fields, config.limit, spec))


def grade(kind: str, trace: Trace, delimiters: Delimiters | None) -> Verdict | None:
    """A verdict decided here (choice), or None: the verifier grades it (answers and code)."""
    return gpqa.grade(trace, delimiters) if kind == "choice" else None


def sample_answer(kind: str, trace: Trace, delimiters: Delimiters | None) -> str | None:
    """What one sample answered, as the vote and the `no answer` share count it."""
    if kind == "choice":
        return gpqa.answer(trace, delimiters)
    from distill.core.verify import extract_answer, extract_program, final_part

    if trace.tests:
        return extract_program(final_part(trace.completion, delimiters))
    return extract_answer(trace.completion, delimiters, reference=trace.answer)


def k_for(k: int | str, name: str) -> int:
    """Samples per problem for benchmark `name`: `k` is N, or 'NAME=N,...' with an optional bare N for the rest (default 4)."""
    if isinstance(k, int):
        return k
    per, rest = parse_k(k)
    return per.get(name, rest)


def parse_k(text: str) -> tuple[dict[str, int], int]:
    per: dict[str, int] = {}
    rest = 4
    for item in (part.strip() for part in str(text).split(",")):
        if not item:
            continue
        key, _, value = item.rpartition("=")
        try:
            number = int(value)
        except ValueError:
            number = 0
        if number < 1:
            raise InputError(f"expected N or NAME=N,... with N >= 1, got {item!r}", field="k")
        if key:
            per[key.strip()] = number
        else:
            rest = number
    return per, rest
