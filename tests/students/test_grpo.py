"""`distill grpo`: the help names its options, the rewards are the filter's, a 2-step run on a
tiny SFT student writes a loadable model and steps.jsonl, a recipe chains it after train, bad
input is one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import completion, tiny_config, write_kept


def test_help_lists_the_reward_weights_group_size_and_kl(distill_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # no flag cut short by the terminal's width
    code, out, _ = distill_cli("grpo", "--help")
    assert code == 0
    for flag in ("--accuracy-weight", "--format-weight", "--language-weight", "--length-weight", "--num-generations",
                 "--max-completion-length", "--beta", "--max-steps"):
        assert flag in out, flag


def test_rollout_settings_nest_the_sampling_layer_under_their_grpo_names(distill_cli):
    """Issue 25: every config that samples nests the layer; GRPO's keys and flags stay as they were."""
    from distill.core.config import fingerprint_view
    from students.grpo_config import GrpoConfig

    config = GrpoConfig(num_generations=3, temperature=0.8, max_completion_length=64)
    assert (config.sampling.n, config.sampling.temperature, config.sampling.max_tokens) == (3, 0.8, 64)
    assert (config.num_generations, config.temperature, config.max_completion_length) == (3, 0.8, 64)
    view = fingerprint_view(config)  # the keys a run directory's finished grpo stage was fingerprinted with
    assert "sampling" not in view and (view["num_generations"], view["temperature"], view["max_completion_length"]) == (3, 0.8, 64)
    code, out, err = distill_cli("grpo", "--num-generations", "5", "--temperature", "0.9", "--max-completion-length", "32", "--print-config")
    assert code == 0, err
    assert {"n": 5, "temperature": 0.9, "max_tokens": 32}.items() <= yaml.safe_load(out)["sampling"].items()
    code, _, err = distill_cli("grpo", "--num-generations", "1", "--print-config")
    assert code == 2 and err.count("\n") == 1 and "'num_generations'" in err, err


def _grade(problem: str, answer: str | None, text: str, finish: str = "stop"):
    from distill.core.records import Trace
    from distill.core.verify import VerifyOptions
    from students.rewards import grade

    trace = Trace(id="p#0", sample_index=0, problem_id="p", problem=problem, answer=answer, completion=text, finish_reason=finish)
    return grade(trace, VerifyOptions())


def test_rewards_are_the_verifier_format_rule_and_r1_language_share_on_the_reasoning():
    right = _grade("What is 3 plus 4?", "7", "<think>\n" + completion(3, 4))
    assert right == {"accuracy": 1.0, "format": 1.0, "language": 1.0, "mixed": False}
    wrong = _grade("What is 3 plus 4?", "8", "<think>\n" + completion(3, 4))
    assert wrong["accuracy"] == 0.0 and wrong["format"] == 1.0
    cut = _grade("What is 3 plus 4?", "7", "<think>\nthree and four", finish="length")
    assert cut["format"] == 0.0 and cut["accuracy"] == 0.0
    # 4 English words and 7 Chinese characters (each a word) in the reasoning; the English answer does not count
    # (R1 measures the chain of thought only)
    mixed = _grade("What is 3 plus 4?", "7", "<think>\nadd three and four 我们 计算 三 加 四\n</think>\n\nThe answer is \\boxed{7}.")
    assert mixed["language"] == pytest.approx(4 / 11) and mixed["mixed"] is True and mixed["accuracy"] == 1.0
    assert _grade("What is 3 plus 4?", None, "<think>\nx\n</think>\n\n7")["accuracy"] is None


def test_length_penalty_ramps_to_minus_one_at_the_limit():
    from students.rewards import Rewards

    rewards = Rewards(pool=None, max_completion_length=100, length_buffer=0.2)
    assert rewards.length(None, [[0] * 10, [0] * 80, [0] * 90, [0] * 100]) == [0.0, 0.0, -0.5, -1.0]


def write_problems(path: Path, count: int = 16, answers: bool = True) -> Path:
    rows = [{"problem": f"What is {i} plus {i + 3}?", **({"answer": str(2 * i + 3)} if answers else {})} for i in range(count)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def sft_run(tiny_qwen, tmp_path_factory) -> Path:
    from students.train import run

    base = tmp_path_factory.mktemp("grpo")
    run(tiny_config(tiny_qwen, write_kept(base / "kept.jsonl", copies=1), base / "sft", max_steps=2, save_steps=100))
    return base / "sft"


def test_prompts_without_references_are_one_line_unless_accuracy_is_off(distill_cli, sft_run, tmp_path):
    prompts = write_problems(tmp_path / "p.jsonl", count=2, answers=False)
    code, _, err = distill_cli("grpo", "--student-model", sft_run, "--prompts", prompts, "-o", tmp_path / "o")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "reference" in err and "p.jsonl:1" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_two_steps_write_a_loadable_model_and_one_row_per_step(distill_cli, sft_run, tmp_path):
    prompts, out = write_problems(tmp_path / "p.jsonl"), tmp_path / "grpo"
    code, stdout, err = distill_cli("grpo", "--student-model", sft_run, "--prompts", prompts, "-o", out, "--max-steps", "2",
                                    "--num-generations", "2", "--max-completion-length", "32", "--batch-size", "2",
                                    "--lr", "1e-4", "--length-weight", "0.1")
    assert code == 0, err
    rows = [json.loads(line) for line in (out / "steps.jsonl").read_text().split("\n") if line]
    assert [row["step"] for row in rows] == [1, 2]
    for row in rows:
        for key in ("reward/accuracy", "reward/format", "reward/language", "reward/length", "reward", "accuracy", "mixing",
                    "completion_length", "truncated"):
            assert key in row, key
        assert row["completions"] == 4 and 0 <= row["truncated"] <= 4
    manifest = json.loads((out / "train.json").read_text())
    assert manifest["objective"] == "grpo" and manifest["student"] == "qwen-1.5b"
    assert manifest["grpo"]["reward_weights"] == {"accuracy": 1.0, "format": 0.5, "language": 0.5, "length": 0.1}
    assert (out / "rewards.png").is_file()

    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out / "final")
    code, _, err = distill_cli("publish", out, "-o", tmp_path / "published")
    assert code == 0, err
    card = (tmp_path / "published" / "README.md").read_text()
    assert "then GRPO" in card and "accuracy 1, format 0.5, language 0.5, length 0.1" in card


@pytest.mark.slow
def test_ctrl_c_keeps_a_checkpoint_a_rerun_resumes_from(sft_run, tmp_path):
    from transformers import TrainerCallback

    from distill.core.errors import Interrupted
    from students.grpo import run
    from students.grpo_config import GrpoConfig

    class CtrlCAfterStep1(TrainerCallback):
        def on_log(self, args, state, control, **kwargs):
            if state.global_step == 1:
                raise KeyboardInterrupt

    out = tmp_path / "grpo"
    config = GrpoConfig(student_model=str(sft_run), prompts=str(write_problems(tmp_path / "p.jsonl", count=4)), output_dir=str(out),
                        max_steps=2, num_generations=2, max_completion_length=16, batch_size=2, save_steps=100)
    with pytest.raises(Interrupted, match="checkpoint-1"):
        run(config, callbacks=[CtrlCAfterStep1()])
    assert (out / "checkpoints" / "checkpoint-1").is_dir() and not (out / "train.json").exists()
    summary = run(config)  # the same command resumes its own unfinished run
    assert summary["metrics"]["steps"] == 2
    assert [json.loads(line)["step"] for line in (out / "steps.jsonl").read_text().split("\n") if line] == [1, 2]


def test_a_recipe_chains_grpo_after_train_without_a_section_of_its_own(tmp_path):
    prompts = write_problems(tmp_path / "prompts.jsonl")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "rl", "run": {"stages": ["generate", "filter", "train", "grpo"]},
        "generate": {"prompts": str(prompts), "teacher": "served-model", "base_url": "http://127.0.0.1:9/v1"},
        "train": {"student": "llama-8b", "base_model": str(tmp_path / "base")},
    }))
    out = tmp_path / "run"
    base = [sys.executable, "-c", "from cli import main; main()", "run", str(recipe), "-o", str(out)]
    dry = subprocess.run(base + ["--dry-run"], capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "settings valid for 4 stage(s)" in dry.stdout
    printed = yaml.safe_load(subprocess.run(base + ["--print-config"], capture_output=True, text=True, timeout=120).stdout)
    assert printed["grpo"]["student"] == "llama-8b" and printed["grpo"]["prompts"] == str(prompts)
    assert printed["grpo"]["student_model"] == f"{out.resolve()}/train"
    assert not out.exists()


def test_the_planner_counts_a_reference_model_only_for_a_full_student_with_beta():
    from students.planner import arch_from_config, grpo_estimate
    from students.presets import STUDENTS

    arch = arch_from_config(STUDENTS["qwen-1.5b"].arch)
    without = grpo_estimate(arch, "full", 256, 8, 1024, beta=0.0)
    with_kl = grpo_estimate(arch, "full", 256, 8, 1024, beta=0.04)
    assert with_kl.total - without.total == arch.params * 2  # a bf16 copy of the policy
    assert grpo_estimate(arch, "lora", 256, 8, 1024, beta=0.04).total == grpo_estimate(arch, "lora", 256, 8, 1024, beta=0.0).total
    # more or longer rollouts need more memory
    assert grpo_estimate(arch, "full", 256, 16, 1024, beta=0.0).total > without.total
    assert grpo_estimate(arch, "full", 256, 8, 4096, beta=0.0).total > without.total
