"""The order a student sees its training data in (`train --order`).

- `shuffle` (default): the trainer's random sampler over the examples (or packs), as before.
- `length`: shortest examples first (a length curriculum).
- `difficulty`: easy prompts first, hard ones last (Light-R1's curriculum), by each prompt's
  pass rate in a per-prompt statistics file (`filter --prompt-stats`, or a run's
  filter/prompts.jsonl): `--pass-rates FILE`. A prompt's pass rate is correct / drawn
  (distill.core.prompt_stats), the same figure the filter's pass-rate band reads.

Ordered data is read in order (the trainer's sequential sampler) and every epoch repeats it.
Packs keep the order: examples of one difficulty level are packed together (best-fit decreasing,
students/dataset.py), levels easy to hard; packs of one level by their mean length, shortest first.
"""

from __future__ import annotations

import json
from pathlib import Path

from distill.core.data import iter_rows
from distill.core.errors import InputError
from distill.core.layouts import map_row
from distill.core.prompt_stats import pass_rate
from students.dataset import best_fit_packs, prompt_key


def pass_rates(path: str) -> dict[str, float]:
    """problem_id -> pass rate, from per-prompt statistics rows ({problem_id, correct, drawn, ...})."""
    if not Path(path).is_file():
        raise InputError("no such file (per-prompt statistics: `distill filter --prompt-stats FILE`)", where=path, field="pass_rates")
    rates = {}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                row = json.loads(line)
                rates[str(row["problem_id"])] = pass_rate(int(row["correct"]), int(row["drawn"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"not a per-prompt statistics row ({type(exc).__name__}: {exc})", where=f"{path}:{number}") from None
    return rates


def prompt_rates(config, rates: dict[str, float]) -> dict[str, float]:
    """The prompt text of every training sample -> its prompt's pass rate (keyed as the conversations are)."""
    by_prompt: dict[str, float] = {}
    for source, _ in config.sources():
        for where, row in iter_rows(source):
            for values in map_row(row, config, where):
                problem_id = values.get("problem_id")
                if problem_id not in rates:
                    raise InputError(f"prompt {problem_id!r} has no pass rate in {config.pass_rates}", where=where, field="problem_id")
                by_prompt[values["problem"]] = rates[problem_id]
    return by_prompt


def levels(config, conversations: list) -> list[float]:
    """Per conversation, its place in the order: 0 for every one (length), or minus its prompt's pass rate
    (difficulty: sorted ascending, the easiest come first)."""
    if config.order != "difficulty":
        return [0.0] * len(conversations)
    by_prompt = prompt_rates(config, pass_rates(config.pass_rates))
    out = []
    for conversation in conversations:
        key = prompt_key(conversation)
        if key not in by_prompt:
            raise InputError("a training conversation's prompt has no pass rate (plain `messages` rows carry no problem id)",
                             field="pass_rates")
        out.append(-by_prompt[key])
    return out


def arrange(examples: list[tuple], example_levels: list[float]) -> tuple[list[tuple], list[float]]:
    """Examples in curriculum order: by level, then length (shortest first), then input order."""
    order = sorted(range(len(examples)), key=lambda i: (example_levels[i], len(examples[i][0]), i))
    return [examples[i] for i in order], [example_levels[i] for i in order]


def ordered_packs(lengths: list[int], capacity: int, example_levels: list[float]) -> list[list[int]]:
    """Packs that keep the curriculum: each level packed on its own, levels in order, a level's packs by mean length."""
    groups: dict[float, list[int]] = {}
    for index, level in enumerate(example_levels):
        groups.setdefault(level, []).append(index)
    packs: list[list[int]] = []
    for level in sorted(groups):
        members = groups[level]
        local = best_fit_packs([lengths[i] for i in members], capacity)
        level_packs = [[members[i] for i in pack] for pack in local]
        packs += sorted(level_packs, key=lambda pack: (sum(lengths[i] for i in pack) / len(pack), pack[0]))
    return packs
