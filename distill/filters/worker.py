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

from distill.core.data import validate_record
from distill.core.errors import InputError
from distill.core.r1_format import Parts, compose
from distill.core.records import JUDGED, Trace, Verdict, to_row
from distill.core.trace_layout import TraceLayout, item_values
from distill.core.verify import failure_verdict
from distill.core.workers import Failure
from distill.filters import selection
from distill.filters.config import FilterConfig
from distill.filters.majority import majority_verdict
from distill.filters.registry import RULES
from distill.filters.rules.correctness import checkable, has_reference
from distill.filters.rules.format import parts_of
from distill.filters.rules.judge import judged_verdict

# Set by the filter: the worker writes everything else (the record's fields, then its carried columns).
JUDGED_FIELDS = frozenset(JUDGED)


@dataclass
class Judged:
    """One record as the parent needs it: small summaries plus the record already serialised."""

    error: str | None = None  # bad input: the one-line message, with file and line (the parent raises it)
    id: str | None = None  # the record's id and where it was read (the parent checks ids are unique)
    where: str = ""
    problem_id: str = ""
    domain: str = ""
    chars: int = 0
    tokens: int | None = None
    prompt_tokens: int | None = None  # for the per-prompt statistics (--prompt-stats)
    keys: dict[str, bytes] = field(default_factory=dict)  # parent-side rules' digests of the record
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-record rules, in order, as JSON values
    head: str = ""  # the record's JSON without the judged fields and without its closing brace
    messages: str | None = None  # JSON of the SFT messages, when no per-record rule rejected it


def parse_row(where: str, raw: bytes | dict[str, Any], layout: TraceLayout) -> Trace:
    """A JSONL line (bytes), a row or mapped values as a Trace; errors as the data layer words them."""
    return validate_record(Trace, item_values(where, raw, layout), where)


@functools.lru_cache(maxsize=2)
def _load_json(path: str) -> dict[str, dict[str, Any]]:
    """The parent's first-pass results (majority votes, judge verdicts), read once per worker."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def judge(config: FilterConfig, votes_path: str | None, where: str, raw: bytes | dict, failed: Failure | None,
          judge_path: str | None = None) -> Judged:
    """One record through the per-record rules. `failed`: its verification was killed or crashed;
    `votes_path`, `judge_path`: the majority votes and the judge's verdicts, when the stage made them."""
    try:
        trace = parse_row(where, raw, config)
        parts = parts_of(trace, config)
        override = {}
        if failed is not None:  # charged to the verifier, the only rule that can hang or explode
            override["correctness"] = failure_verdict(failed, config.correctness)
        elif judge_path and trace.id in _load_json(judge_path):
            override.update(judge_overrides(_load_json(judge_path)[trace.id], config))
        elif votes_path and "correctness" in config.rules and not has_reference(trace) and checkable(trace):
            vote = _load_json(votes_path).get(trace.problem_id)
            override["correctness"] = majority_verdict(trace, vote, config)
        verdicts = evaluate(trace, parts, config, override)
        tokens = trace.completion_tokens
        if selection.active(config):
            tokens = selection.completion_tokens(trace, config)
            selection.check_measurable(tokens, config)
        if "judge" in override and "judge" not in verdicts:  # an audited record the rules rejected carries the judge's view too
            verdicts["judge"] = override["judge"]
    except InputError as exc:  # located here unless the rule already named a file
        return Judged(error=str(exc) if exc.where else f"{where}: {exc}")
    row = to_row(trace, exclude=JUDGED_FIELDS)
    passed = all(v.passed for v in verdicts.values())
    return Judged(
        id=trace.id,
        where=where,
        problem_id=trace.problem_id,
        domain=trace.domain,
        chars=len(trace.completion),
        tokens=tokens,
        prompt_tokens=trace.prompt_tokens,
        keys={name: RULES[name].key(trace, getattr(config, name)) for name in config.rules if RULES[name].key is not None},
        verdicts={name: v.model_dump(mode="json", exclude_none=True) for name, v in verdicts.items()},
        head=json.dumps(row, ensure_ascii=False)[:-1],
        messages=json.dumps(r1_messages(trace, parts), ensure_ascii=False) if passed else None,
    )


def judge_overrides(entry: dict[str, Any], config: FilterConfig) -> dict[str, Verdict]:
    """What the judge's verdict on a record replaces (see distill.filters.judge_requests)."""
    if entry["role"] == "audit":  # the rules decide; the judge's view is only reported
        differs = entry["verdict"] != "undecided" and (entry["verdict"] == "correct") != entry["rules_passed"]
        view = f"judge says {entry['verdict']}" + ("; the rules say otherwise" if differs else "")
        return {"judge": Verdict(passed=True, reason=f"decided by the rules (audit: {view})")}
    override = {"judge": judged_verdict(entry, config.judge)}
    if entry["rules"]:  # the rules could not decide: correctness leaves it to the judge
        override["correctness"] = Verdict(passed=True, reason=f"{entry['rules']}: left to the judge")
    return override


def evaluate(trace: Trace, parts: Parts, config: FilterConfig, override: dict[str, Verdict] | None = None) -> dict[str, Verdict]:
    """Verdicts of the per-record rules in order, up to the first rejection (all with all_verdicts).

    Parent-side rules (`dedup`) are skipped: they need the records before this one and run in
    the parent, which merges their verdicts in rule order. `override` replaces a rule's verdict
    (a verification killed at its deadline, a majority vote). Bad input raises `InputError`.
    """
    verdicts: dict[str, Verdict] = {}
    for name in config.rules:
        check = RULES[name].check
        if check is None:
            continue
        verdict = (override or {}).get(name) or check(trace, parts, config)
        verdicts[name] = verdict
        if not verdict.passed and not config.all_verdicts:
            break
    return verdicts


def r1_messages(trace: Trace, parts: Parts) -> list[dict[str, str]]:
    """The SFT conversation, with the completion rewritten in R1 form whatever its delimiters."""
    return [{"role": "user", "content": trace.problem}, {"role": "assistant", "content": compose(parts.reasoning, parts.answer)}]


def judge_chunk(config: FilterConfig, votes_path: str | None, judge_path: str | None, items: list[tuple[str, Any]],
                failure: Failure | None) -> Iterator[Judged]:
    """The chunk function for `WorkerPool.imap_chunks`: `failure` belongs to items[0]."""
    for position, (where, raw) in enumerate(items):
        yield judge(config, votes_path, where, raw, failure if position == 0 else None, judge_path)
