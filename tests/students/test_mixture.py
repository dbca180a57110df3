"""Several training sources mixed by shares (`--data A --data B --mix 0.75,0.25`): the counts, the
default total, repeats counted, determinism, configuration errors, `distill run`'s wiring, and a
real training run on the tiny model with two sources (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from distill.pipeline.stages import _named
from students.config import TrainConfig
from students.mixture import apportion, largest_total, mix

from .conftest import tiny_config, write_kept

ROOT = Path(__file__).resolve().parents[2]


def sources(a: int, b: int, weights=(0.75, 0.25)):
    return [("kept.jsonl", weights[0], [f"k{i}" for i in range(a)]), ("general.jsonl", weights[1], [f"g{i}" for i in range(b)])]


def test_shares_and_the_default_total():
    assert apportion(10, [0.75, 0.25]) == [8, 2] and sum(apportion(7, [1, 1, 1])) == 7
    # 600 reasoning + 100 general at 75/25: general is the scarce one, 400 in all (300 + 100), nothing repeated.
    assert largest_total([600, 100], [0.75, 0.25]) == 400
    mixed, drawn = mix(sources(600, 100), None, seed=0)
    assert len(mixed) == 400 and [(d.used, d.repeated) for d in drawn] == [(300, 0), (100, 0)]
    assert len(set(mixed)) == 400  # no conversation twice


def test_a_total_beyond_a_source_repeats_it_and_says_so():
    mixed, drawn = mix(sources(600, 100), 800, seed=0)
    assert [(d.used, d.repeated) for d in drawn] == [(600, 0), (200, 100)]
    general = [item for item in mixed if item.startswith("g")]
    assert len(general) == 200 and len(set(general)) == 100  # every general conversation exactly twice
    assert all(general.count(item) == 2 for item in set(general))


def test_the_mixture_is_deterministic_by_seed():
    assert mix(sources(50, 30), 40, seed=3)[0] == mix(sources(50, 30), 40, seed=3)[0]
    assert mix(sources(50, 30), 40, seed=3)[0] != mix(sources(50, 30), 40, seed=4)[0]
    unweighted, drawn = mix(sources(5, 3, weights=(None, None)), None, seed=0)
    assert sorted(unweighted) == sorted([f"k{i}" for i in range(5)] + [f"g{i}" for i in range(3)])


def test_configuration():
    base = {"student": "qwen-1.5b"}
    config = TrainConfig(**base, data=["a.jsonl", "b.jsonl"], mix=[3, 1])
    assert config.sources() == [("a.jsonl", 0.75), ("b.jsonl", 0.25)]
    recipe = TrainConfig(**base, data=[{"path": "a.jsonl", "weight": 0.75}, {"path": "b.jsonl", "weight": 0.25}], mix_size=10)
    assert recipe.sources() == [("a.jsonl", 0.75), ("b.jsonl", 0.25)]
    assert TrainConfig(**base, data=["a.jsonl"]).data == "a.jsonl"  # one --data is a path, as before
    for bad, message in (
        ({"data": "a.jsonl", "mix": [1.0]}, "one"),
        ({"data": ["a.jsonl", "b.jsonl"], "mix": [1.0]}, "1 shares for 2"),
        ({"data": ["a.jsonl", "b.jsonl"], "mix": [1.0, 0]}, "positive"),
        ({"data": [{"path": "a.jsonl", "weight": 1}, "b.jsonl"]}, "some --data sources have a weight"),
        ({"data": ["a.jsonl", "b.jsonl"], "mix_size": 5}, "needs several --data sources with shares"),
    ):
        with pytest.raises(ValidationError, match=message):
            TrainConfig(**base, **bad)


def test_distill_run_wires_the_run_s_artifact_into_the_named_source():
    assert _named({"path": "kept", "weight": 0.75}, "kept", "/run/filter/kept.jsonl") == {"path": "/run/filter/kept.jsonl", "weight": 0.75}
    assert _named("general.jsonl", "kept", "/run/filter/kept.jsonl") == "general.jsonl"


def test_the_command_line_takes_several_sources(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cli", "train", "--student", "qwen-1.5b", "--data", "a.jsonl", "--data", "b.jsonl",
                             "--mix", "0.75,0.25", "--mix-size", "100", "--print-config"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "path: a.jsonl" in result.stdout and "- 0.75" in result.stdout and "mix_size: 100" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "cli", "train", "--student", "qwen-1.5b", "--data", "a.jsonl", "--data", "b.jsonl",
                          "--mix", "1", "-o", str(tmp_path / "r")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and "1 shares for 2" in bad.stderr and bad.stderr.strip().count("\n") == 0


def write_general(path: Path, count: int) -> Path:
    rows = [{"problem_id": f"g{i}", "id": f"g{i}#0", "sample_index": 0, "problem": f"Say hello to person {i}.", "domain": "general",
             "completion": f"Hello, person {i}!"} for i in range(count)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.slow
def test_a_real_training_run_on_two_sources(tiny_qwen, tmp_path):
    from students.train import run

    kept = write_kept(tmp_path / "kept.jsonl")  # 24 reasoning traces
    general = write_general(tmp_path / "general.jsonl", 5)  # 5 general answers without reasoning
    config = tiny_config(tiny_qwen, kept, tmp_path / "run", max_steps=4, logging_steps=10)  # fewer steps than logging_steps
    config = TrainConfig(**{**config.model_dump(), "data": [str(kept), str(general)], "mix": [0.75, 0.25], "mix_size": 32})
    summary = run(config)
    written = json.loads((tmp_path / "run" / "train.json").read_text())
    assert written["mixture"] == [
        {"path": str(kept), "weight": 0.75, "available": 24, "used": 24, "repeated": 0},
        {"path": str(general), "weight": 0.25, "available": 5, "used": 8, "repeated": 3},
    ]
    assert summary["data"] == f"{kept} (75%, 24 of 24) + {general} (25%, 8 of 5, 3 repeated)"
    assert written["metrics"]["examples"] == 32 and written["metrics"]["steps"] == 4
    # the summary table a finished run prints: one row per source
    from rich.console import Console

    from students.report import summary_table

    console = Console(width=200, record=True)
    console.print(summary_table(written))
    text = console.export_text()
    assert "kept.jsonl: 75% share, 24 of 24 conversations" in text
    assert "general.jsonl: 25% share, 8 of 5 conversations, 3 repeated" in text
    # 4 steps, fewer than --logging-steps: no curve, but train.json has the loss, and so does the table
    assert not written["metrics"]["train_loss_curve"] and written["metrics"]["train_loss"] is not None
    row = next(line for line in text.splitlines() if "train loss (mean, no step logged)" in line)  # cells pad to the widest label
    assert f"│ {written['metrics']['train_loss']:.4f} over 4 steps (< --logging-steps)" in row


def test_a_recipe_mixes_the_run_s_kept_traces_with_another_source(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"problem": "What is 1+1?", "answer": "2"}\n')
    general = write_general(tmp_path / "general.jsonl", 3)
    result = subprocess.run(
        [sys.executable, "-m", "cli", "run", "recipes/r1-distill-qwen-1.5b.yaml", "-o", str(tmp_path / "run"), "--dry-run",
         "--set", f"generate.prompts={prompts}", "--set", f"train.data=[{{path: kept, weight: 0.75}}, {{path: {general}, weight: 0.25}}]"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, env={**os.environ, "COLUMNS": "400"})
    assert result.returncode == 0, result.stderr + result.stdout
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "filter/kept.jsonl" in line or str(general) in line]
    assert any("train" in line and "filter/kept.jsonl" in line for line in lines) and any(str(general) in line for line in lines)


def test_the_model_card_names_every_source_with_its_share_and_counts(tmp_path):
    from students.mixture import describe
    from students.model_card import render_card
    from students.publish import PublishConfig

    _, drawn = mix(sources(600, 100), 800, seed=0)
    info = {"student": "qwen-1.5b", "base_model": "Qwen/Qwen2.5-Math-1.5B", "method": "full", "data": describe(drawn),
            "mixture": [d.as_dict() for d in drawn]}
    text = render_card(PublishConfig(run_dir=tmp_path, output=tmp_path / "m"), info, kind="merged", chat_format="chatml")
    assert "kept.jsonl (75%, 600 of 600) + general.jsonl (25%, 200 of 100, 100 repeated)" in text


def test_the_card_of_an_on_policy_student_is_tagged_as_such_and_the_help_names_real_files(tmp_path):
    import yaml

    from students.model_card import render_card
    from students.onpolicy_config import OnPolicyConfig
    from students.publish import PublishConfig

    info = {"student": "qwen-1.5b", "base_model": "Qwen/Qwen2.5-Math-1.5B", "method": "lora"}
    tags = lambda info: yaml.safe_load(render_card(PublishConfig(run_dir=tmp_path, output=tmp_path / "m"), info, kind="merged",  # noqa: E731
                                                   chat_format="chatml").split("---")[1])["tags"]
    assert "sft" in tags(info) and "on-policy-distillation" not in tags(info)
    assert "on-policy-distillation" in tags({**info, "onpolicy": {"beta": 1}}) and "sft" not in tags({**info, "onpolicy": {"beta": 1}})
    assert "onpolicy.json" not in OnPolicyConfig.model_fields["output_dir"].description  # never written: train.json holds it
