"""Per-prompt statistics from judged samples: the difficulty signal public pipelines compute in a
separate run (samples drawn, kept, pass rate, correct samples, the shortest correct sample, tokens).

`distill filter --prompt-stats FILE` writes them for any trace file; the rejection loop of
`distill run` writes them after its last round; `distill difficulty` writes them for a student's
own samples (distill.difficulty). `write_rows` writes them, `read_pass_rates` reads them back. Both keep only the prompts whose pass rate lies in
a band (`in_band`: `--pass-rate-min/--pass-rate-max`, the rejection section's keys of the same names).
A sample counts as correct when the correctness rule passed it; without that rule, when it was kept.
A prompt's pass rate, for the band and for `train --order difficulty`, is correct / drawn.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class PromptStats:
    problem_id: str
    drawn: int = 0
    kept: int = 0
    correct: int = 0
    prompt_tokens: int | None = None  # None while no sample said (traces not written by generate)
    completion_tokens: int | None = None
    shortest_correct: tuple[int, str] | None = None  # (completion tokens, sample id), over samples that count tokens
    shortest_correct_chars: tuple[int, str] | None = None  # (characters, sample id): every trace has those
    kept_ids: list[str] = field(default_factory=list)

    def add(self, sample_id: str, kept: bool, correct: bool, prompt_tokens: int | None, completion_tokens: int | None,
            chars: int | None = None) -> None:
        self.drawn += 1
        if prompt_tokens is not None:
            self.prompt_tokens = (self.prompt_tokens or 0) + prompt_tokens
        if completion_tokens is not None:
            self.completion_tokens = (self.completion_tokens or 0) + completion_tokens
        if kept:
            self.kept += 1
            self.kept_ids.append(sample_id)
        if correct:
            self.correct += 1
            if completion_tokens is not None:
                self.shortest_correct = min(self.shortest_correct or (completion_tokens, sample_id), (completion_tokens, sample_id))
            if chars is not None:
                self.shortest_correct_chars = min(self.shortest_correct_chars or (chars, sample_id), (chars, sample_id))

    def row(self) -> dict[str, Any]:
        shortest = self.shortest_correct or self.shortest_correct_chars  # by tokens where known, else by characters
        return {
            "problem_id": self.problem_id, "drawn": self.drawn, "kept": self.kept,
            "pass_rate": round(pass_rate(self.correct, self.drawn), 4), "correct": self.correct,
            "shortest_correct_tokens": self.shortest_correct[0] if self.shortest_correct else None,
            "shortest_correct_chars": self.shortest_correct_chars[0] if self.shortest_correct_chars else None,
            "shortest_correct_id": shortest[1] if shortest else None,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "always_solved": self.drawn > 0 and self.correct == self.drawn, "never_solved": self.correct == 0,
        }


# The rejection section's old switches are points of the band: a prompt every sample of which was
# correct has rate 1, so `drop_always_solved` is a maximum below 1 (exact below a million samples).
ALWAYS_SOLVED_MAX = 0.999999
NEVER_SOLVED_MIN = 0.000001


def pass_rate(correct: int, drawn: int) -> float:
    """Correct samples over samples drawn (0 for a prompt with none)."""
    return correct / drawn if drawn else 0.0


def in_band(correct: int, drawn: int, low: float, high: float) -> bool:
    """Whether a prompt's pass rate lies in [low, high]."""
    return low <= pass_rate(correct, drawn) <= high


def band(low: float, high: float, drop_always_solved: bool = False, drop_never_solved: bool = False) -> tuple[float, float]:
    """The band [low, high], narrowed by the old switches (`drop_always_solved`, `drop_never_solved`)."""
    if drop_always_solved:
        high = min(high, ALWAYS_SOLVED_MAX)
    if drop_never_solved:
        low = max(low, NEVER_SOLVED_MIN)
    if low > high:
        raise ValueError(f"pass_rate_min {low:g} > pass_rate_max {high:g}: the band is empty")
    return low, high


def is_correct(verdicts: dict[str, Any] | None, kept: bool) -> bool:
    """The correctness rule's verdict; without that rule, whether the sample was kept."""
    verdict = (verdicts or {}).get("correctness")
    return bool(verdict["passed"]) if verdict is not None else kept


def write_rows(path: str, stats: Iterable[PromptStats]) -> dict[str, Any]:
    """The per-prompt rows of `stats` written (atomically) to `path`, one JSON line each; returns what a
    summary says of them."""
    from distill.core.paths import write_text

    rows = [entry.row() for entry in stats]
    write_text(path, "".join(json.dumps(row) + "\n" for row in rows))
    return {"file": path, "prompts": len(rows), "always_solved": sum(r["always_solved"] for r in rows),
            "never_solved": sum(r["never_solved"] for r in rows)}


def read_pass_rates(path: str, field: str = "pass_rates") -> dict[str, tuple[int, int]]:
    """problem_id -> (correct, drawn), from per-prompt rows ({problem_id, correct, drawn, ...}); `field`: the
    setting that named the file (for the one-line error)."""
    from distill.core.errors import InputError

    if not Path(path).is_file():
        raise InputError("no such file (per-prompt statistics: `distill filter --prompt-stats FILE` or `distill difficulty`)",
                         where=path, field=field)
    rates = {}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                row = json.loads(line)
                rates[str(row["problem_id"])] = int(row["correct"]), int(row["drawn"])
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"not a per-prompt statistics row ({type(exc).__name__}: {exc})", where=f"{path}:{number}") from None
    return rates
