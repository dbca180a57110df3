"""Token and money accounting, and budgets that stop `generate` cleanly and resumably
(a local OpenAI-compatible endpoint that reports usage: 7 prompt and 5 completion tokens per sample)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from distill.core.cost import CostSettings, Spend, money, money_text, over_budget

from .conftest import generate_args


def args(prompts: Path, out: Path, url: str, *extra: str) -> list[str]:
    return generate_args(prompts, out, url, "--concurrency", "1", *extra)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().split("\n") if line]


def test_money_and_budget_arithmetic():
    prices = CostSettings(price_in=0.55, price_out=2.19, budget=1.0)
    assert money(Spend(1_000_000, 2_000_000), prices) == pytest.approx(0.55 + 2 * 2.19)
    assert over_budget(Spend(100_000, 400_000), prices) is None  # 0.055 + 0.876
    assert "budget 1 reached" in over_budget(Spend(100_000, 500_000), prices)
    assert money(Spend(5, 5), CostSettings()) is None
    assert "completion tokens reached" in over_budget(Spend(0, 10), CostSettings(budget_tokens=10))
    with pytest.raises(ValueError, match="budget is money"):
        CostSettings(budget=5)


def test_money_has_one_formatting_rule():
    assert [money_text(v) for v in (0.0003474, 0.00034744, 0.06, 0.0120, 2.5, 1234.56, 123456.7, 0.0)] == [
        "0.0003474", "0.0003474", "0.06", "0.012", "2.5", "1,235", "123,457", "0"]
    prices = CostSettings(price_in=0.1, price_out=0.1, budget=0.0003)
    assert over_budget(Spend(474, 3000), prices) == "budget 0.0003 reached (0.0003474 spent)"


def test_tokens_and_money_are_recorded_per_sample_and_summed(prompts, tmp_path, distill_cli, fake_endpoint):
    out = tmp_path / "t.jsonl"
    with fake_endpoint("ok") as server:
        code, _, err = distill_cli(*args(prompts, out, server.url, "--price-in", "1", "--price-out", "4"))
    assert code == 0, err
    rows = records(out)
    assert len(rows) == 12 and all(r["prompt_tokens"] == 7 and r["completion_tokens"] == 5 for r in rows)
    assert "84 / 60" in err  # prompt / completion tokens in the summary table
    assert money_text((84 * 1 + 60 * 4) / 1e6) in err  # cost (this run)


def test_token_budget_stops_cleanly_and_a_higher_budget_resumes(prompts, tmp_path, distill_cli, fake_endpoint):
    out = tmp_path / "t.jsonl"
    with fake_endpoint("ok") as server:
        code, _, err = distill_cli(*args(prompts, out, server.url, "--budget-tokens", "12"))
        assert code == 3, err
        last = err.strip().splitlines()[-1]
        assert last == f"stopped: budget of 12 completion tokens reached (15): 3 samples written to {out}; " \
                       "raise the budget and re-run the same command to continue"
        assert len(records(out)) == 3 and "Traceback" not in err

        code, _, err = distill_cli(*args(prompts, out, server.url, "--budget-tokens", "12"))  # same budget: nothing more
        assert code == 3 and "nothing sampled" in err.splitlines()[-1] and len(records(out)) == 3
        requests = server.requests

        code, _, err = distill_cli(*args(prompts, out, server.url, "--budget-tokens", "1000"))
        assert code == 0, err
        assert server.requests == requests + 9
    ids = [r["id"] for r in records(out)]
    assert sorted(ids) == sorted(f"q{i}#{j}" for i in range(6) for j in range(2))


def test_money_budget_counts_the_whole_output(prompts, tmp_path, distill_cli, fake_endpoint):
    out = tmp_path / "t.jsonl"
    # 7 prompt + 5 completion tokens at 1000 per million each: 0.012 per sample; a budget of 0.05 stops after 5
    with fake_endpoint("ok") as server:
        code, _, err = distill_cli(*args(prompts, out, server.url, "--price-in", "1000", "--price-out", "1000", "--budget", "0.05"))
    assert code == 3 and "budget 0.05 reached (0.06 spent)" in err.splitlines()[-1]
    assert [line for line in err.splitlines() if "cost (whole output)" in line or "cost (this run)" in line][0].rstrip(" │").endswith(" 0.06")
    assert len(records(out)) == 5


def test_budget_without_prices_is_one_line(prompts, tmp_path, distill_cli):
    code, _, err = distill_cli(*args(prompts, tmp_path / "t.jsonl", "http://127.0.0.1:9/v1", "--budget", "5"))
    assert code == 2 and "budget is money" in err and err.count("\n") == 1
    assert not (tmp_path / "t.jsonl").exists()


def test_a_run_stopped_at_its_budget_resumes_its_generate_stage(prompts, tmp_path, distill_cli, fake_endpoint):
    with fake_endpoint("ok") as server:
        recipe = tmp_path / "r.yaml"
        recipe.write_text(yaml.safe_dump({"run": {"stages": ["generate"]}, "generate": {
            "prompts": str(prompts), "teacher": "m", "backend": "openai", "base_url": server.url, "max_retries": 0,
            "fields": {"id": "id"}, "n": 2, "concurrency": 1, "budget_tokens": 20}}))
        code, _, err = distill_cli("run", recipe, "-o", tmp_path / "run")
        assert code == 3 and err.strip().splitlines()[-1].startswith("stopped: stage 'generate': budget of 20"), err
        traces = tmp_path / "run" / "generate" / "traces.jsonl"
        assert len(records(traces)) == 4 and not (tmp_path / "run" / "generate" / "stage.json").exists()
        code, _, err = distill_cli("run", recipe, "-o", tmp_path / "run", "--set", "generate.budget_tokens=100")
    assert code == 0, err
    assert len(records(traces)) == 12 and not list(tmp_path.glob("run/generate.previous-*"))  # resumed, not set aside


def test_pilot_forecasts_cost_per_kept_sample_and_the_full_run_reuses_its_samples(tmp_path, distill_cli, fake_endpoint):
    # The endpoint always answers \boxed{2}: the prompts whose answer is 2 (every other one) are kept.
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"Problem {i}?", "answer": "2" if i % 2 == 0 else "3"}) + "\n"
                               for i in range(8)))
    with fake_endpoint("ok") as server:
        recipe = tmp_path / "r.yaml"
        recipe.write_text(yaml.safe_dump({"run": {"stages": ["generate", "filter"]}, "generate": {
            "prompts": str(prompts), "teacher": "m", "backend": "openai", "base_url": server.url, "max_retries": 0,
            "fields": {"id": "id"}, "n": 2, "price_in": 1000, "price_out": 4000},
            "filter": {"rules": ["format", "correctness"], "workers": 1}}))
        code, out, err = distill_cli("run", recipe, "-o", tmp_path / "run", "--pilot", "4")
        assert code == 0, err
        assert "pilot: 4 prompts, 8 samples, 4 kept (yield 50.0%); forecast for 8 prompts" in err
        # per kept sample: 8 samples x (7 + 5 tokens) / 4 kept = 14 prompt and 10 completion tokens; 0.054 at these prices
        assert "│ per kept sample │            14 │                10 │ 0.0540 │" in err
        assert "│ whole run       │           112 │                80 │ 0.4320 │            8 │" in err
        assert err.strip().splitlines()[-1] == "the pilot's samples are kept: run without --pilot to continue from them"
        assert server.requests == 8 and not (tmp_path / "run" / "generate" / "stage.json").exists()

        code, out, err = distill_cli("run", recipe, "-o", tmp_path / "run")
        assert code == 0, err
        assert server.requests == 16  # the pilot's 8 samples were reused
    assert json.loads((tmp_path / "run" / "filter" / "stage.json").read_text())["summary"]["kept"] == 8
