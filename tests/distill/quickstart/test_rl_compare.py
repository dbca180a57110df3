"""The RL recipe's verdicts: code-written sentences that say what the table shows, including "did NOT"."""

from __future__ import annotations

from distill.quickstart.grpo import MIXED, MIXED_ACC, MIXED_LANG, SFT, SFT_GRPO, rl_verdicts


def rows(sft, grpo, mixed, acc, lang):
    def row(model, accuracy, mixing):
        return {"model": model, "accuracy": accuracy, "accuracy_stderr": 0.01, "mixing": mixing}

    return [row(SFT, *sft), row(SFT_GRPO, *grpo), row(MIXED, *mixed), row(MIXED_ACC, *acc), row(MIXED_LANG, *lang)]


def test_verdicts_say_when_grpo_helped_and_what_the_language_reward_cost():
    lines = rl_verdicts(rows((0.50, 0.02), (0.60, 0.02), (0.45, 0.30), (0.55, 0.28), (0.52, 0.05)))
    assert lines[0].startswith("GRPO after SFT raised accuracy")
    assert "5.0% of answers mix languages with accuracy + language vs 28.0% with accuracy alone" in lines[1]
    assert "-3.0 points, beyond noise" in lines[2]


def test_verdicts_say_when_nothing_changed():
    lines = rl_verdicts(rows((0.50, 0.02), (0.505, 0.02), (0.45, 0.30), (0.55, 0.28), (0.55, 0.29)))
    assert "did NOT measurably help" in lines[0]
    assert "did NOT reduce mixing" in lines[1] and "within noise" in lines[2]
