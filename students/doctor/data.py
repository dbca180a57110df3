"""Checks of the training data's text: what training would learn that nobody meant it to.

Samples are read through `students.dataset.conversations_of`, the function `train` reads them
with (layouts, R1 form, the empty reasoning of `general` records), so the conversations checked
are the ones trained on; rejected records are skipped as training skips them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from types import SimpleNamespace

from distill.core.data import iter_rows
from distill.core.trace_layout import PRESETS, TraceLayout, map_row
from students.dataset import conversations_of
from students.doctor import Check, judged, ok

THINK, THINK_END = "<think>", "</think>"


@dataclass
class Sample:
    where: str
    messages: list[dict[str, str]]
    finish_reason: str | None


def read_samples(sources: list[str], layout: TraceLayout) -> list[Sample]:
    samples = []
    for source in sources:
        for where, row in iter_rows(source):
            conversations = conversations_of(row, where, layout)
            plain = PRESETS[layout.preset].own and "messages" in row and "completion" not in row  # conversations_of's plain SFT row
            reasons = [row.get("finish_reason")] if plain else [values.get("finish_reason") for values in map_row(row, layout, where)]
            samples += [Sample(where, c, reason) for c, reason in zip(conversations, reasons, strict=True) if c is not None]
    return samples


def _answers(sample: Sample) -> list[str]:
    return [m["content"] for m in sample.messages if m["role"] == "assistant"]


def _prompt(sample: Sample) -> str:
    return "\n".join(m["content"] for m in sample.messages if m["role"] != "assistant")


# A few bad samples in a large set cost little (a warning says where they are); past this share they would
# teach the student the failure (stopping mid-thought, never answering), and the run stops.
FAIL_SHARE = 0.05


def _severity(found: list, n: int) -> str:
    return "fail" if n and len(found) / n > FAIL_SHARE else "warn"


def data_checks(samples: list[Sample], benchmarks: list[str], problem_field: str = "problem") -> list[Check]:
    n = len(samples)
    truncated = [s for s in samples if s.finish_reason == "length"]
    unclosed = [s for s in samples if any(THINK in a and THINK_END not in a for a in _answers(s))]
    bare = [s for s in samples if any(not a.lstrip().startswith(THINK) for a in _answers(s))]
    empty = sum(1 for s in samples for a in _answers(s) if a.startswith(f"{THINK}\n\n{THINK_END}"))
    seen: dict[bytes, str] = {}
    duplicates = []
    for s in samples:
        key = hashlib.blake2b("\0".join(" ".join(m["content"].lower().split()) for m in s.messages).encode(), digest_size=8).digest()
        if key in seen:
            duplicates.append((s.where, seen[key]))
        seen.setdefault(key, s.where)
    first = lambda found: f"; first {found[0].where}" if found else ""  # noqa: E731
    checks = [
        judged("data: truncated samples", bool(truncated), f"{len(truncated)} of {n} samples ended at the token limit "
               f"(finish_reason: length){first(truncated)}",
               "drop them (`distill filter`'s format rule does): trained on, they teach the model to stop mid-thought",
               status=_severity(truncated, n)),
        judged("data: reasoning closed", bool(unclosed), f"{len(unclosed)} of {n} samples open {THINK} and never close it{first(unclosed)}",
               f"drop them: the student would learn to reason without ever reaching {THINK_END} and an answer",
               status=_severity(unclosed, n)),
        judged("data: general turns", bool(bare), f"{len(bare)} of {n} samples have an answer without a reasoning block{first(bare)}; "
               f"{empty} answers use R1's empty reasoning ({THINK}\\n\\n{THINK_END})",
               "mark non-reasoning records domain: general (train gives them R1's empty block) or write "
               f"'{THINK}\\n\\n{THINK_END}\\n\\n' before their answers: the served template opens every answer with {THINK}",
               status=_severity(bare, n)),
        judged("data: duplicates", bool(duplicates), f"{len(duplicates)} of {n} samples repeat an earlier one"
               + (f"; first {duplicates[0][0]} = {duplicates[0][1]}" if duplicates else ""),
               "drop repeats (`distill filter --rules ...,dedup`): each is trained on once more", status="warn"),
        benchmark_check(samples, benchmarks, problem_field),
    ]
    return checks


def benchmark_check(samples: list[Sample], benchmarks: list[str], problem_field: str) -> Check:
    """Training prompts sharing a word 8-gram with a benchmark problem: the filter's decontaminate rule, reused."""
    from distill.filters.rules.decontaminate import Decontaminate, DecontaminateOptions

    name = "data: benchmark prompts"
    if not benchmarks:
        return ok(name, "no benchmark files named (the recipe's eval benchmarks, or --benchmarks)")
    rule = Decontaminate(DecontaminateOptions(benchmarks=benchmarks, problem_field=problem_field))
    found = []
    for sample in samples:
        verdict = rule.check(SimpleNamespace(problem_id=_prompt(sample), problem=_prompt(sample)))
        if not verdict.passed:
            found.append((sample.where, verdict.reason))
    files = ", ".join(path.rsplit("/", 1)[-1] for path in benchmarks)
    return judged(name, bool(found), f"{len(found)} of {len(samples)} prompts share a {rule.options.ngram}-gram with {files}"
                  + (f"; first {found[0][0]}: {found[0][1]}" if found else ""),
                  "drop them (`distill filter --rules ...,decontaminate --benchmarks FILES`): the eval would score memorised problems")
