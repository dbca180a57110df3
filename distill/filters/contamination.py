"""The cross-record rules: `dedup` (in the parent, in input order) and `decontaminate` (in each worker)."""

from __future__ import annotations

import functools
import hashlib
import re
from collections import Counter

from distill.answers import Parts
from distill.data import iter_rows
from distill.errors import InputError
from distill.filters.config import DecontaminateOptions, DedupOptions, FilterConfig
from distill.records import Trace, Verdict

_WORD = re.compile(r"\w+")


def dedup_key(trace: Trace) -> bytes:
    """8-byte digest of the problem id and the whitespace- and case-normalised completion."""
    text = " ".join(trace.completion.lower().split())
    return hashlib.blake2b(f"{trace.problem_id}\0{text}".encode(), digest_size=8).digest()


class Dedup:
    """Identical completions (whitespace- and case-normalised) of one problem; at most K per problem.

    Runs in the parent on the workers' digests (`dedup_key`), in input order. Only records
    that end up kept are remembered (`remember`), so a duplicate of a rejected sample is not
    lost. Memory: one 8-byte digest per kept record and a counter per problem.
    """

    def __init__(self, options: DedupOptions):
        self.options = options
        self.seen: set[bytes] = set()
        self.per_problem: Counter = Counter()

    def check(self, problem_id: str, key: bytes) -> Verdict:
        if key in self.seen:
            return Verdict(passed=False, reason="duplicate of an earlier completion of this problem")
        limit = self.options.max_per_problem
        if limit is not None and self.per_problem[problem_id] >= limit:
            return Verdict(passed=False, reason=f"problem already has {limit} kept samples (max_per_problem)")
        return Verdict(passed=True, reason="unique")

    def remember(self, problem_id: str, key: bytes) -> None:
        self.seen.add(key)
        if self.options.max_per_problem is not None:
            self.per_problem[problem_id] += 1


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


def check_decontaminate(trace: Trace, parts: Parts, config: FilterConfig) -> Verdict:
    """The rule: the benchmark index is built once per worker process (it depends on no record)."""
    return _decontaminator(config.decontaminate.model_dump_json()).check(trace)
