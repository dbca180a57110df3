"""The rejection loop's pass-rate band: the filter's mechanism (distill.core.prompt_stats.in_band), with
`drop_always_solved` / `drop_never_solved` as the old spellings of two bands."""

from __future__ import annotations

import json

import pytest

from distill.pipeline.rejection import RejectionConfig, _write_prompt_stats, stats


def outcomes(correct_per_prompt: dict[str, list[bool]]) -> dict:
    return {p: [{"id": f"{p}#{i}", "index": i, "kept": ok, "correct": ok, "prompt_tokens": 1, "completion_tokens": 5}
                for i, ok in enumerate(marks)] for p, marks in correct_per_prompt.items()}


@pytest.mark.parametrize(("section", "dropped"), [
    ({"pass_rate_min": 0.3, "pass_rate_max": 0.6}, {"easy", "hard", "never"}),
    ({"drop_always_solved": True}, {"easy"}),
    ({"drop_never_solved": True}, {"never"}),
    ({"drop_always_solved": True, "pass_rate_min": 0.5}, {"easy", "hard", "never"}),
])
def test_the_band_drops_the_kept_samples_of_prompts_outside_it(tmp_path, section, dropped):
    found = outcomes({"easy": [True] * 4, "mid": [True, True, False, False], "hard": [True, False, False, False], "never": [False] * 4})
    kept = tmp_path / "filter" / "kept.jsonl"
    kept.parent.mkdir()
    kept.write_text("".join(json.dumps({"id": s["id"], "problem_id": p}) + "\n" for p, samples in found.items() for s in samples if s["kept"]))
    count = _write_prompt_stats(RejectionConfig(**section), stats(found), str(kept))
    rows = {r["problem_id"]: r for r in map(json.loads, (kept.parent / "prompts.jsonl").read_text().split("\n")[:-1])}
    assert {p for p, r in rows.items() if r["dropped"]} == dropped
    assert {json.loads(line)["problem_id"] for line in kept.read_text().split("\n") if line} == {"easy", "mid", "hard"} - dropped
    assert count == sum(sum(s["kept"] for s in found[p]) for p in dropped)


def test_an_empty_band_is_refused():
    with pytest.raises(ValueError, match="the band is empty"):
        RejectionConfig(pass_rate_min=0.8, pass_rate_max=0.2)
    with pytest.raises(ValueError, match="the band is empty"):
        RejectionConfig(drop_always_solved=True, pass_rate_min=1.0)
