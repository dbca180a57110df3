"""The length-and-difficulty recipe's selection of unsolved prompts (token-matched) and its verdicts."""

from __future__ import annotations

import pytest

from distill.core.errors import InputError
from distill.core.records import Trace
from distill.quickstart.length import ALL, SHORTEST, UNSOLVED, length_verdicts, select_unsolved


def trace(problem: str, index: int, tokens: int) -> Trace:
    return Trace(problem_id=problem, problem="1+1", id=f"{problem}#{index}", sample_index=index, completion="x", completion_tokens=tokens)


def test_only_prompts_not_always_solved_are_kept_and_tokens_stay_within_the_target():
    kept = [trace("solved", 0, 10), trace("solved", 1, 10), trace("hard", 0, 10), trace("hard", 1, 20), trace("never", 0, 30)]
    rates = {"solved": (4, 4), "hard": (1, 4), "never": (0, 4)}
    chosen, figures = select_unsolved(kept, rates, target=1000, seed=0)
    assert sorted(t.id for t in chosen) == ["hard#0", "hard#1", "never#0"]
    assert figures["prompts_solved"] == 1 and figures["candidates"] == 3 and figures["tokens"] == 60
    chosen, figures = select_unsolved(kept, rates, target=35, seed=0)
    assert sum(t.completion_tokens for t in chosen) == figures["tokens"] <= 35 and figures["target_tokens"] == 35
    # the same seed draws the same traces, whatever the input order
    again, _ = select_unsolved(list(reversed(kept)), rates, target=35, seed=0)
    assert [t.id for t in again] == [t.id for t in chosen]


def test_a_kept_prompt_without_a_pass_rate_row_is_bad_input():
    with pytest.raises(InputError, match="1 kept prompts have no pass-rate row"):
        select_unsolved([trace("a", 0, 5)], {}, target=10, seed=0)


def test_verdicts_compare_accuracy_and_answer_length_beyond_noise_or_not():
    def row(model, accuracy, tokens, trained):
        return {"model": model, "accuracy": accuracy, "accuracy_stderr": 0.01, "mean_tokens": tokens, "training_tokens": trained}

    lines = length_verdicts([row(ALL, 0.60, 40.0, 1000), row(SHORTEST, 0.60, 30.0, 400), row(UNSOLVED, 0.50, 44.0, 400)])
    assert "within noise" in lines[0] and "30.0 vs 40.0 tokens (-25.0%)" in lines[0]
    assert "-10.0 points, beyond noise" in lines[1] and "400 vs 400 training tokens" in lines[1]
