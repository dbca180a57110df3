"""The `decontaminate` rule: problems sharing a word n-gram with a benchmark (`--benchmarks`)."""

from __future__ import annotations

import functools
import re

from pydantic import Field

from distill.core.data import iter_rows
from distill.core.errors import InputError
from distill.core.r1_format import Parts
from distill.core.records import Trace, Verdict
from distill.filters.registry import RuleOptions, rule

_WORD = re.compile(r"\w+")


class DecontaminateOptions(RuleOptions):
    benchmarks: list[str] = Field(default=[], description="Benchmark files (JSONL/JSON/Parquet with a 'problem' column).", json_schema_extra={"flags": ["--benchmarks"]})
    ngram: int = Field(default=8, ge=3, description="Word n-gram size; one shared n-gram is contamination.", json_schema_extra={"flags": ["--ngram"]})
    problem_field: str = Field(default="problem", description="Column of the benchmark files holding the problem text.")


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return set(zip(*(words[i:] for i in range(n)), strict=False))


class Decontaminate:
    """Problems sharing any word n-gram with a benchmark problem."""

    def __init__(self, options: DecontaminateOptions):
        self.options = options
        self.index: dict[tuple[str, ...], str] = {}
        for path in options.benchmarks:
            name = path.rsplit("/", 1)[-1]
            for where, row in iter_rows(path):
                text = row.get(options.problem_field)
                if not isinstance(text, str):
                    raise InputError("missing or not a string", where=where, field=options.problem_field)
                for gram in ngrams(text, options.ngram):
                    self.index.setdefault(gram, name)
        self._last: tuple[str, Verdict] | None = None

    def check(self, trace: Trace) -> Verdict:
        if not self.options.benchmarks:
            return Verdict(passed=True, reason="no benchmarks given")
        if self._last and self._last[0] == trace.problem_id:  # samples of a problem come together
            return self._last[1]
        verdict = Verdict(passed=True, reason=f"no {self.options.ngram}-gram shared with benchmarks")
        words = _WORD.findall(trace.problem.lower())
        n = self.options.ngram
        for gram in zip(*(words[i:] for i in range(n)), strict=False):  # in text order: the same reason every run
            if gram in self.index:
                shown = " ".join(gram)
                verdict = Verdict(passed=False, reason=f"shares {self.options.ngram}-gram '{shown}' with {self.index[gram]}")
                break
        self._last = (trace.problem_id, verdict)
        return verdict


@functools.lru_cache(maxsize=2)
def _decontaminator(options_json: str) -> Decontaminate:
    return Decontaminate(DecontaminateOptions.model_validate_json(options_json))


@rule("decontaminate", DecontaminateOptions, order=30)
def check_decontaminate(trace: Trace, parts: Parts, config) -> Verdict:
    """The rule: the benchmark index is built once per worker process (it depends on no record)."""
    return _decontaminator(config.decontaminate.model_dump_json()).check(trace)
