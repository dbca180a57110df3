"""The quickstart's synthetic task: multi-step arithmetic with R1-style reasoning traces.

Small enough that a few-million-parameter model learns it in a couple of CPU minutes, rich
enough to show what distillation filters are for: a share of the teacher's training traces
make an arithmetic slip (so the teacher itself answers wrongly sometimes) and a share switch
to Chinese mid-reasoning (the R1-Zero language-mixing failure), so the teacher produces both
and the filter has something real to remove.

Everything is drawn from one seeded `random.Random`, so every machine gets the same data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from distill.core.r1_format import THINK_OPEN, compose
from distill.core.records import Problem

# Sentence templates. The English and Chinese forms say the same thing, so a trace that mixes
# languages is still a correct solution: only a language rule can tell it apart. Each Chinese
# sentence has at least 4 Han characters: the language rule ignores fewer than 3 foreign words
# (a quoted term), and a real language switch is more than a word.
FIRST = {"en": "First, {a}{op}{b}={r}.", "zh": "首先计算 {a}{op}{b}={r}。"}
THEN = {"en": "Then, {a}{op}{b}={r}.", "zh": "然后计算 {a}{op}{b}={r}。"}
CLOSE = {"en": "So the answer is {r}.", "zh": "所以答案是 {r}。"}
ANSWER = "The answer is \\boxed{{{r}}}."
PREFILL = THINK_OPEN + "\n"


@dataclass(frozen=True)
class Example:
    problem: Problem
    completion: str  # what follows the template's "<think>\n" prefill, R1 style
    wrong: bool
    mixed: bool


def make_problem(rng: random.Random) -> tuple[str, list[tuple[str, int]], int]:
    """2 or 3 additions/subtractions of one-digit numbers; every intermediate value stays in 0..9.

    One-digit values are single tokens, so each step is a lookup a tiny model learns in a
    few hundred CPU steps; carries would take it far longer for no gain in what the
    quickstart shows.
    """
    value = rng.randint(1, 9)
    start = str(value)
    steps: list[tuple[str, int]] = []
    for _ in range(rng.choice((2, 3))):
        op = "-" if value == 9 else "+" if value == 0 else rng.choice("+-")
        b = rng.randint(1, 9 - value) if op == "+" else rng.randint(1, value)
        value = value + b if op == "+" else value - b
        steps.append((op, b))
    return start, steps, value


def expression(start: str, steps: list[tuple[str, int]]) -> str:
    return start + "".join(f"{op}{b}" for op, b in steps)


def solve_text(start: str, steps: list[tuple[str, int]], rng: random.Random, wrong: bool, mixed: bool) -> tuple[str, int]:
    """The reasoning and final answer; `wrong` slips once, `mixed` drifts into Chinese.

    The drift is R1-Zero's: from some sentence on, the reasoning continues in Chinese to its end.
    """
    slip_at = rng.randrange(len(steps)) if wrong else -1
    chinese_from = rng.randint(0, len(steps)) if mixed else len(steps) + 1  # index len(steps) = closing sentence
    lines: list[str] = []
    value = int(start)
    for i, (op, b) in enumerate(steps):
        result = value + b if op == "+" else value - b
        if i == slip_at:
            result = 1 if result == 0 else 8 if result == 9 else result + rng.choice((-1, 1))  # off by one, still a digit
        template = FIRST if i == 0 else THEN
        lines.append(template["zh" if i >= chinese_from else "en"].format(a=value, op=op, b=b, r=result))
        value = result
    lines.append(CLOSE["zh" if len(steps) >= chinese_from else "en"].format(r=value))
    reasoning = "\n".join(lines)
    # The text after the template's "<think>\n" prefill (what the teacher learns to continue).
    return compose(reasoning, ANSWER.format(r=value)).removeprefix(PREFILL), value


def make_examples(count: int, seed: int, wrong_rate: float = 0.0, mixed_rate: float = 0.0,
                  exclude: set[str] | None = None, prefix: str = "q") -> list[Example]:
    """`count` distinct problems (none whose text is in `exclude`) with one trace each."""
    rng = random.Random(seed)
    seen = set(exclude or ())
    examples: list[Example] = []
    while len(examples) < count:
        start, steps, answer = make_problem(rng)
        text = f"Compute {expression(start, steps)}."
        if text in seen:
            continue
        seen.add(text)
        wrong = rng.random() < wrong_rate
        mixed = rng.random() < mixed_rate
        completion, _ = solve_text(start, steps, rng, wrong, mixed)
        problem = Problem(problem_id=f"{prefix}{len(examples):05d}", problem=text, answer=str(answer),
                          source={"generator": "distill.quickstart.task", "seed": seed})
        examples.append(Example(problem=problem, completion=completion, wrong=wrong, mixed=mixed))
    return examples


def tokenizer_corpus(examples: list[Example]) -> list[str]:
    """Text the tiny tokenizer is trained on: the task's own prompts and traces."""
    return [f"{e.problem.problem}\n{e.completion}" for e in examples]
