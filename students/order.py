"""The order a student sees its training data in (`train --order`).

- `shuffle` (default): the trainer's random sampler over the examples (or packs), as before.
- `length`: shortest examples first (a length curriculum).
- `difficulty`: easy prompts first, hard ones last (Light-R1's curriculum), by each prompt's
  pass rate in a per-prompt statistics file (`filter --prompt-stats`, `distill difficulty` on the
  student's own samples, or a run's filter/ or difficulty/prompts.jsonl): `--pass-rates FILE`. A prompt's pass rate is correct / drawn
  (distill.core.prompt_stats), the same figure the filter's pass-rate band reads.

`--subset hard` (the `train-hard` stage of a run: Light-R1's second SFT stage, continued from the
first stage's student) trains on the prompts whose pass rate is at most `hard_pass_rate_max` only.

Ordered data is read in order (the trainer's sequential sampler) and every epoch repeats it.
Packs keep the order: examples of one difficulty level are packed together (best-fit decreasing,
students/dataset.py), levels easy to hard; packs of one level by their mean length, shortest first.
"""

from __future__ import annotations

from distill.core.data import iter_rows
from distill.core.errors import InputError
from distill.core.prompt_stats import in_band, pass_rate, read_pass_rates
from distill.core.trace_layout import map_row
from students.dataset import best_fit_packs, prompt_key


def prompt_rates(config, rates: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """The prompt text of every training sample -> its prompt's (correct, drawn) (keyed as the conversations are)."""
    by_prompt: dict[str, tuple[int, int]] = {}
    for source, _ in config.sources():
        for where, row in iter_rows(source):
            for values in map_row(row, config, where):
                problem_id = values.get("problem_id")
                if problem_id not in rates:
                    raise InputError(f"prompt {problem_id!r} has no pass rate in {config.pass_rates}", where=where, field="problem_id")
                by_prompt[values["problem"]] = rates[problem_id]
    return by_prompt


def _counts(config, conversations: list) -> list[tuple[int, int]]:
    """Per conversation, its prompt's (correct, drawn)."""
    by_prompt = prompt_rates(config, read_pass_rates(config.pass_rates))
    out = []
    for conversation in conversations:
        key = prompt_key(conversation)
        if key not in by_prompt:
            raise InputError("a training conversation's prompt has no pass rate (plain `messages` rows carry no problem id)",
                             field="pass_rates")
        out.append(by_prompt[key])
    return out


def levels(config, conversations: list) -> list[float]:
    """Per conversation, its place in the order: 0 for every one (length), or minus its prompt's pass rate
    (difficulty: sorted ascending, the easiest come first)."""
    if config.order != "difficulty":
        return [0.0] * len(conversations)
    return [-pass_rate(correct, drawn) for correct, drawn in _counts(config, conversations)]


def hard_subset(config, conversations: list) -> list:
    """The conversations of the hard prompts (`--subset hard`, the `train-hard` stage): pass rate in
    [0, hard_pass_rate_max], the band the filter and the rejection loop use."""
    counts = _counts(config, conversations)
    hard = [c for c, (correct, drawn) in zip(conversations, counts, strict=True) if in_band(correct, drawn, 0.0, config.hard_pass_rate_max)]
    if not hard:
        raise InputError(f"no prompt has a pass rate at most {config.hard_pass_rate_max:g}: the hard subset is empty",
                         where=config.pass_rates, field="hard_pass_rate_max")
    return hard


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
