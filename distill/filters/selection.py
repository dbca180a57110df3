"""Selection after the rules: a pass-rate band per prompt, then at most K samples of each prompt.

It needs every sample of a prompt, and the filter streams: the first pass writes the records the
rules kept to a scratch file and remembers, per kept record, only its prompt and lengths (a few
integers: `Selector.add`); the prompts' pass rates count every record (`Selector.seen`). Then
`choose` decides, in memory, which kept records stay, and the second pass (`split`) copies the
scratch file to the real, atomic outputs. So memory grows with the kept records' count, never with
their text, and a run killed in either pass leaves no output (the re-run starts over).

The band reads each prompt's pass rate from its samples here or, with `--pass-rates FILE`, from
per-prompt rows written elsewhere (`distill difficulty`: the student's own pass rates).

One mechanism for every way of choosing: each prompt's kept records are ordered by a key and the
first K stay. `first` orders by input position (the dedup rule's old `--max-per-problem`),
`shortest` by length (ties: input order), `random` by a seeded draw, independent of worker count.
"""

from __future__ import annotations

import random
from array import array
from typing import Any

from distill.core.errors import InputError
from distill.core.prompt_stats import in_band, pass_rate, read_pass_rates
from distill.core.records import Trace

BAND, SELECTION = "pass_rate", "selection"  # what the report charges a dropped record to


def active(config) -> bool:
    return config.per_prompt is not None or config.pass_rate_min > 0 or config.pass_rate_max < 1


def completion_tokens(trace: Trace, config) -> int | None:
    """The record's completion tokens; counted with --tokenizer when the record has none and one is given."""
    if trace.completion_tokens is not None or not config.length.tokenizer:
        return trace.completion_tokens
    from distill.filters.rules.length import _tokenizer

    return len(_tokenizer(config.length.tokenizer)(trace.completion, add_special_tokens=False)["input_ids"])


def check_measurable(tokens: int | None, config) -> None:
    """`--select shortest` by tokens needs them on every record: bad input otherwise (in the worker, first pass)."""
    if config.select == "shortest" and config.select_by == "tokens" and tokens is None:
        raise InputError("missing: --select shortest measures tokens (give --tokenizer, or --select-by chars)", field="completion_tokens")


class Selector:
    def __init__(self, config):
        self.config = config
        self.prompts: dict[str, int] = {}  # problem id -> index
        self.ids: list[str] = []  # index -> problem id
        self.drawn = array("l")  # per prompt: samples seen, correct ones
        self.correct = array("l")
        self.prompt = array("l")  # per kept record: its prompt's index, characters, tokens (-1: unknown)
        self.chars = array("l")
        self.tokens = array("l")
        self.fate = bytearray()  # set by choose
        # problem id -> (correct, drawn) from --pass-rates: the band reads these instead of the counts above
        self.external = read_pass_rates(config.pass_rates) if config.pass_rates else None

    def _index(self, problem_id: str) -> int:
        if problem_id not in self.prompts:
            self.prompts[problem_id] = len(self.prompts)
            self.ids.append(problem_id)
            self.drawn.append(0)
            self.correct.append(0)
        return self.prompts[problem_id]

    def seen(self, problem_id: str, correct: bool) -> None:
        """Every record, kept or not: the pass rate is over all of a prompt's samples."""
        if self.external is not None and problem_id not in self.external:
            raise InputError(f"prompt {problem_id!r} has no pass rate in {self.config.pass_rates}", field="pass_rates")
        index = self._index(problem_id)
        self.drawn[index] += 1
        self.correct[index] += correct

    def counts(self, index: int) -> tuple[int, int]:
        """(correct, drawn) of the prompt at `index`: the band's figures (from --pass-rates when given)."""
        if self.external is not None:
            return self.external[self.ids[index]]
        return self.correct[index], self.drawn[index]

    def add(self, problem_id: str, chars: int, tokens: int | None) -> None:
        """A record the rules kept, in the order it was written to the scratch file."""
        self.prompt.append(self._index(problem_id))
        self.chars.append(chars)
        self.tokens.append(-1 if tokens is None else tokens)

    def choose(self) -> bytearray:
        """Per kept record: 0 stays, 1 dropped by the band, 2 dropped by selection."""
        config = self.config
        self.fate = fate = bytearray(len(self.prompt))
        outside = {i for i in range(len(self.drawn)) if not in_band(*self.counts(i), config.pass_rate_min, config.pass_rate_max)}
        candidates = []
        for position, prompt in enumerate(self.prompt):
            if prompt in outside:
                fate[position] = 1
            else:
                candidates.append(position)
        if config.per_prompt is None:
            return fate
        if config.select == "shortest":
            lengths = self.chars if config.select_by == "chars" else self.tokens
            key = lambda p: (self.prompt[p], lengths[p], p)  # noqa: E731
        elif config.select == "random":
            draw = random.Random(config.select_seed)
            draws = array("d", (draw.random() for _ in range(len(self.prompt))))
            key = lambda p: (self.prompt[p], draws[p], p)  # noqa: E731
        else:
            key = lambda p: (self.prompt[p], p)  # noqa: E731
        taken: dict[int, int] = {}
        for position in sorted(candidates, key=key):
            prompt = self.prompt[position]
            taken[prompt] = taken.get(prompt, 0) + 1
            if taken[prompt] > config.per_prompt:
                fate[position] = 2
        return fate

    def summary(self) -> dict[str, Any]:
        """The report's `selection` section. tokens_saved: completion tokens of the records the rules kept
        minus those of the kept file (on a file the rules keep whole: the input's minus the kept file's)."""
        config, fate = self.config, self.fate
        known = all(t >= 0 for t in self.tokens)
        stays = [p for p in range(len(fate)) if fate[p] == 0]
        mean = lambda values, n: round(sum(values) / n, 1) if n else None  # noqa: E731
        rates = [pass_rate(*self.counts(i)) for i in range(len(self.drawn))]
        return {
            "per_prompt": config.per_prompt, "select": config.select, "select_by": config.select_by, "pass_rates": config.pass_rates,
            "pass_rate_min": config.pass_rate_min, "pass_rate_max": config.pass_rate_max,
            "prompts": len(rates), "prompts_outside_band": sum(not config.pass_rate_min <= r <= config.pass_rate_max for r in rates),
            "before": len(fate), "after": len(stays), "dropped_by_band": fate.count(1), "dropped_by_selection": fate.count(2),
            "tokens_saved": sum(self.tokens) - sum(self.tokens[p] for p in stays) if known else None,
            "mean_tokens_before": mean(self.tokens, len(fate)) if known else None,
            "mean_tokens_after": mean([self.tokens[p] for p in stays], len(stays)) if known else None,
            "chars_saved": sum(self.chars) - sum(self.chars[p] for p in stays),
        }

