"""The `dedup` rule: identical completions of one problem.

Its `max_per_problem` option is the old spelling of `--per-prompt N --select first`: the
filter's selection (distill.filters.selection) caps the samples per problem, after every rule.

It needs the records before each one, so it runs in the parent, in input order, on an 8-byte
digest per record that the workers compute (see `distill.filters.registry.parent_rule`).
"""

from __future__ import annotations

import hashlib

from pydantic import Field

from distill.core.records import Trace, Verdict
from distill.filters.registry import RuleOptions, parent_rule


class DedupOptions(RuleOptions):
    max_per_problem: int | None = Field(default=None, ge=1, description="Alias of --per-prompt N --select first (see the filter's selection).", json_schema_extra={"flags": ["--max-per-problem"]})


def dedup_key(trace: Trace) -> bytes:
    """8-byte digest of the problem id and the whitespace- and case-normalised completion."""
    text = " ".join(trace.completion.lower().split())
    return hashlib.blake2b(f"{trace.problem_id}\0{text}".encode(), digest_size=8).digest()


@parent_rule("dedup", DedupOptions, order=80, key=lambda trace, options: dedup_key(trace))
class Dedup:
    """Identical completions (whitespace- and case-normalised) of one problem.

    Runs in the parent on the workers' digests (`dedup_key`), in input order. Only records
    that end up kept are remembered (`remember`), so a duplicate of a rejected sample is not
    lost. Memory: one 8-byte digest per kept record.
    """

    def __init__(self, options: DedupOptions):
        self.options = options
        self.seen: set[bytes] = set()

    def check(self, problem_id: str, key: bytes) -> Verdict:
        if key in self.seen:
            return Verdict(passed=False, reason="duplicate of an earlier completion of this problem")
        return Verdict(passed=True, reason="unique")

    def remember(self, problem_id: str, key: bytes) -> None:
        self.seen.add(key)
