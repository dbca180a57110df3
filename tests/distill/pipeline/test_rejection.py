"""The rejection loop of `distill run` with the real vLLM engine (tiny random-weight model) and real
filter rules: only short prompts are resampled, the per-round table and per-prompt statistics agree
with the files, and a run killed between rounds resumes without sampling again."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from distill.pipeline.rejection import PromptStats, RejectionConfig, stats, targets
from distill.pipeline.run import execute, plan


def test_targets_grow_by_step_up_to_the_most():
    assert targets(2, 2, 7) == [2, 4, 6, 7]
    assert targets(4, 4, 4) == [4] and targets(8, 1, 3) == [3]


def test_prompt_stats_take_the_shortest_correct_sample():
    outcomes = {"a": [{"id": "a#0", "index": 0, "kept": True, "correct": True, "prompt_tokens": 3, "completion_tokens": 9},
                      {"id": "a#1", "index": 1, "kept": False, "correct": True, "prompt_tokens": 3, "completion_tokens": 4},
                      {"id": "a#2", "index": 2, "kept": False, "correct": False, "prompt_tokens": 3, "completion_tokens": 1}]}
    row = stats(outcomes)["a"].row()
    assert row["drawn"] == 3 and row["kept"] == 1 and row["correct"] == 2 and row["shortest_correct_id"] == "a#1"
    assert row["completion_tokens"] == 14 and not row["always_solved"] and not row["never_solved"]
    assert stats(outcomes, below=1)["a"].row()["always_solved"] and isinstance(stats(outcomes)["a"], PromptStats)
    with pytest.raises(ValueError):
        RejectionConfig(min_kept=0)


def test_rejection_needs_generate_then_filter(tmp_path):
    from distill.core.errors import InputError

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"run": {"stages": ["filter"]}, "rejection": {"min_kept": 1},
                                      "filter": {"input": str(recipe)}}))
    # The loop finds its stages by role (distill.core.stage): generate samples prompts, filter selects samples.
    with pytest.raises(InputError, match="a stage that samples prompts and after it one that selects samples"):
        plan(recipe, tmp_path / "run")


def test_loop_over_an_endpoint_rounds_budget_and_resume(tmp_path, distill_cli):
    """A local endpoint whose k-th answer is right when k % 4 == 0 (concurrency 1: requests in prompt order)."""
    from tests.teacher.conftest import FakeEndpoint

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"Problem {i}?", "answer": "2"}) + "\n" for i in range(6)))
    out = tmp_path / "run"
    with FakeEndpoint("ok", answers=("2", "5", "5", "5")) as server:
        recipe = tmp_path / "r.yaml"
        recipe.write_text(yaml.safe_dump({
            "run": {"stages": ["generate", "filter"]}, "rejection": {"min_kept": 1, "max_samples": 6},
            "generate": {"prompts": str(prompts), "teacher": "m", "backend": "openai", "base_url": server.url, "max_retries": 0,
                         "fields": {"id": "id"}, "n": 2, "concurrency": 1},
            "filter": {"rules": ["format", "correctness"], "workers": 1}}))
        code, _, err = distill_cli("run", recipe, "-o", out, "--budget-tokens", "70")  # 14 samples: stops in round 2
        assert code == 3 and err.strip().splitlines()[-1].startswith("stopped: stage 'generate': budget of 70"), err
        assert len(rows(out / "generate" / "traces.jsonl")) == 14
        code, _, err = distill_cli("run", recipe, "-o", out)
        assert code == 0, err
        assert server.requests == 20  # round 1: 6 prompts x 2; round 2: q1, q3, q5 x 2; round 3: q3 x 2
        loop = json.loads((out / "filter" / "stage.json").read_text())["summary"]["rejection"]
        assert [(r["prompts"], r["drawn"], r["kept"], r["still_short"]) for r in loop["rounds"]] == [(6, 12, 3, 3), (3, 6, 2, 1), (1, 2, 0, 1)]
        assert "rejection sampling, by round" in err
        stats_rows = {r["problem_id"]: r for r in rows(out / "filter" / "prompts.jsonl")}
        assert {p: r["drawn"] for p, r in stats_rows.items()} == {"q0": 2, "q1": 4, "q2": 2, "q3": 6, "q4": 2, "q5": 4}
        assert stats_rows["q3"]["never_solved"] and stats_rows["q1"]["pass_rate"] == 0.25
        assert stats_rows["q0"]["shortest_correct_id"] == "q0#0" and stats_rows["q0"]["completion_tokens"] == 10
        assert isinstance(stats_rows["q0"]["shortest_correct_chars"], int)  # as `filter --prompt-stats` gives it
        # the run's summary covers the whole loop (6 prompts, 12 + 6 + 2 samples), not its last round (1 prompt, 2 samples);
        # this run wrote the 6 the budget stop left (4 of round 2, 2 of round 3)
        whole = json.loads((out / "generate" / "stage.json").read_text())["summary"]
        assert (whole["prompts"], whole["samples_drawn"], whole["samples_written"]) == (6, 20, 6), whole

        # Killed during round 3 (its samples gone, no stage complete): the re-run draws round 3 only.
        traces = out / "generate" / "traces.jsonl"
        traces.write_text("".join(traces.read_text().splitlines(keepends=True)[:18]))
        for stage in ("generate", "filter"):
            (out / stage / "stage.json").unlink()
        code, _, err = distill_cli("run", recipe, "-o", out)
        assert code == 0 and server.requests == 22, err
        # Only the loop's options changed: generate stays, the loop runs again over its samples (nothing drawn).
        code, _, err = distill_cli("run", recipe, "-o", out, "--set", "rejection.drop_never_solved=true")
        assert code == 0 and server.requests == 22, err
        assert [r["dropped"] for r in rows(out / "filter" / "prompts.jsonl")] == [False] * 6  # q3's 21st answer solved it
    again = json.loads((out / "filter" / "stage.json").read_text())["summary"]["rejection"]
    assert again["dropped_by_difficulty"] == 0
    assert again["rounds"][:2] == loop["rounds"][:2] and again["rounds"][2]["kept"] == 1  # the 21st answer is right


def write_recipe(path: Path, model: Path, prompts: Path, **rejection) -> Path:
    doc = {
        "run": {"stages": ["generate", "filter"]},
        "rejection": {"min_kept": 2, "max_samples": 6, **rejection},
        "generate": {"prompts": str(prompts), "teacher": str(model), "fields": {"id": "id"}, "n": 2, "max_tokens": 16,
                     "temperature": 1.0, "top_p": 1.0, "seed": 0, "max_model_len": 256, "kv_cache_memory_bytes": 256 * 1024**2,
                     "enforce_eager": True, "reproducible": True, "math_instruction": None},
        # Random weights: a sample's length in characters is what varies, so the length rule keeps about half.
        "filter": {"rules": ["length"], "workers": 1, "length": {"unit": "chars", "max": 43}},
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().split("\n") if line]


@pytest.mark.slow
def test_loop_resamples_only_short_prompts_and_resumes(tiny_qwen, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"What is {i} plus {i}?", "answer": str(2 * i)}) + "\n"
                               for i in range(24)))  # 12 left a ~3% chance of one round
    recipe, out = write_recipe(tmp_path / "r.yaml", tiny_qwen, prompts), tmp_path / "run"
    ctx, planned = plan(recipe, out)
    results = execute(ctx, planned, recipe.read_text())
    loop = results["filter"]["rejection"]
    traces = rows(out / "generate" / "traces.jsonl")
    kept = rows(out / "filter" / "kept.jsonl")
    drawn, kept_per = Counter(r["problem_id"] for r in traces), Counter(r["problem_id"] for r in kept)
    for problem_id, count in drawn.items():
        # enough kept, or the most samples; and never a round more than the prompt needed
        assert kept_per[problem_id] >= 2 or count == 6
        kept_before = sum(1 for r in kept if r["problem_id"] == problem_id and r["sample_index"] < count - 2)
        assert count == 2 or kept_before < 2
    assert len(set(drawn.values())) > 1, drawn  # some prompts stopped early, others were resampled
    assert [r["round"] for r in loop["rounds"]] == list(range(1, len(loop["rounds"]) + 1)) and len(loop["rounds"]) >= 2
    assert sum(r["drawn"] for r in loop["rounds"]) == len(traces) and sum(r["kept"] for r in loop["rounds"]) == len(kept)
    assert loop["rounds"][1]["prompts"] == loop["rounds"][0]["still_short"]
    stats_rows = {r["problem_id"]: r for r in rows(out / "filter" / "prompts.jsonl")}
    assert {p: r["drawn"] for p, r in stats_rows.items()} == dict(drawn)
    assert all(r["prompt_tokens"] > 0 and r["completion_tokens"] > 0 for r in stats_rows.values())

    # Killed after its samples were written, before the stages completed: the re-run samples nothing.
    for stage in ("generate", "filter"):
        (out / stage / "stage.json").unlink()
    ctx, planned = plan(recipe, out)
    again = execute(ctx, planned, recipe.read_text())
    assert rows(out / "generate" / "traces.jsonl") == traces and again["filter"]["rejection"]["rounds"] == loop["rounds"]
    assert again["generate"]["samples_written"] == 0
    ctx, planned = plan(recipe, out)
    assert all(p.state == "done" for p in planned)

    # Dropping the prompts whose every sample was kept ("always solved" without a correctness rule).
    ctx, planned = plan(write_recipe(tmp_path / "r.yaml", tiny_qwen, prompts, drop_always_solved=True), out)
    assert [p.state for p in planned] == ["done", "changed"]
    dropped = execute(ctx, planned, recipe.read_text())["filter"]["rejection"]
    easy = {p for p, r in stats_rows.items() if r["always_solved"]}
    assert dropped["dropped_by_difficulty"] == sum(kept_per[p] for p in easy) and easy
    assert not {r["problem_id"] for r in rows(out / "filter" / "kept.jsonl")} & easy
