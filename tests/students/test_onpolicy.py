"""`distill onpolicy`: the loss (against the definitions), the step with a local teacher and with a
real vLLM server teacher on 127.0.0.1, token counts, resume mid-stage, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from students.onpolicy_trainer import completion_mask, divergence_loss, sampled_reverse_kl

from ..teacher.test_openai_backend import SECRET, server  # noqa: F401  (a real vLLM server on 127.0.0.1, per module)


def test_completion_mask_keeps_the_stop_token_and_masks_what_follows():
    completion = torch.tensor([[5, 6, 2, 7, 7], [5, 6, 7, 8, 9], [3, 2, 3, 2, 1]])
    assert completion_mask(completion, [2, 3]).tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]


def test_teacher_reads_its_own_prompt_without_the_prefill_twice_and_its_own_end_of_turn():
    from students.onpolicy_trainer import teacher_rows

    # teacher prompt "... <Assistant> <think> \n" (ids 9 7 8); student wrote "<think> \n a b <im_end>" then padding
    completion = torch.tensor([[7, 8, 5, 6, 2, 0], [5, 6, 5, 6, 5, 6]])
    mask = completion_mask(completion, [2])
    rows, starts, skips = teacher_rows([[1, 9, 7, 8], [1, 9, 7, 8]], completion, mask, stop_ids=[2], teacher_stop=4)
    assert rows == [[1, 9, 7, 8, 5, 6, 4], [1, 9, 7, 8, 5, 6, 5, 6, 5, 6]] and starts == [4, 4] and skips == [2, 0]


def _heads(seed=0, n=6, vocab=13):
    g = torch.Generator().manual_seed(seed)
    hs, ws = torch.randn(n, 8, generator=g, dtype=torch.float64), torch.randn(vocab, 8, generator=g, dtype=torch.float64)
    ht, wt = torch.randn(n, 5, generator=g, dtype=torch.float64), torch.randn(vocab, 5, generator=g, dtype=torch.float64)
    return hs.float().requires_grad_(), ws.float().requires_grad_(), ht.float(), wt.float()


@pytest.mark.parametrize("beta", [1.0, 0.0, 0.5])
def test_divergence_is_the_definition_over_the_whole_vocabulary(beta):
    hs, ws, ht, wt = _heads()
    value, _ = divergence_loss(hs, ws, ht, wt, beta)
    s, t = (hs @ ws.T).log_softmax(-1), (ht @ wt.T).log_softmax(-1)
    if beta == 1:
        expected = (s.exp() * (s - t)).sum(-1)  # reverse KL(student || teacher)
    elif beta == 0:
        expected = (t.exp() * (t - s)).sum(-1)  # forward KL(teacher || student)
    else:
        m = torch.logsumexp(torch.stack([s + torch.log(torch.tensor(1 - beta)), t + torch.log(torch.tensor(beta))]), 0)
        expected = beta * (t.exp() * (t - m)).sum(-1) + (1 - beta) * (s.exp() * (s - m)).sum(-1)
    torch.testing.assert_close(value, expected, atol=1e-5, rtol=1e-4)
    grad = torch.autograd.grad(value.sum(), ws)[0]
    torch.testing.assert_close(grad, torch.autograd.grad(expected.sum(), ws)[0], atol=1e-4, rtol=1e-3)


def test_sampled_reverse_kl_is_unbiased_in_value_and_gradient():
    """Averaged over x ~ p_student (exactly, over the vocabulary), the server-teacher loss and its
    gradient are the reverse KL and its gradient."""
    hs, ws, ht, wt = _heads(n=1, vocab=7)
    s, t = (hs @ ws.T).log_softmax(-1)[0], (ht @ wt.T).log_softmax(-1)[0]
    exact = (s.exp() * (s - t)).sum()
    exact_grad = torch.autograd.grad(exact, ws)[0]
    value, grad = torch.zeros(()), torch.zeros_like(ws)
    for token in range(7):
        loss, gap = sampled_reverse_kl(hs, ws, torch.tensor([token]), t[token].detach().reshape(1))
        weight = s[token].exp().detach()
        torch.testing.assert_close(loss.detach(), gap)  # the value is the sampled estimate log p_s - log p_t
        value += weight * loss.detach().sum()
        grad += weight * torch.autograd.grad(loss.sum(), ws)[0]
    torch.testing.assert_close(value, exact.detach(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(grad, exact_grad, atol=1e-5, rtol=1e-4)


def test_bad_settings_are_one_line(distill_cli, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"problem": "Compute 1+2."}) + "\n")
    code, _, err = distill_cli("onpolicy", "-s", "qwen-1.5b", "--student-model", tmp_path, "--prompts", prompts,
                               "--teacher", "t", "--base-url", "http://127.0.0.1:9/v1", "--beta", "0.5", "-o", tmp_path / "o")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "beta must be 1" in err
    code, _, err = distill_cli("onpolicy", "-s", "qwen-1.5b", "--student-model", tmp_path / "none", "--prompts", prompts,
                               "--teacher", tmp_path, "-o", tmp_path / "o")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "student_model" in err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------- real steps (slow)


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    """A second random model with the teacher's tokenizer (trained on the same corpus) and half its depth."""
    from distill.quickstart.tiny import build_model

    return build_model(tmp_path_factory.mktemp("models") / "onpolicy-student", family="qwen", layers=1, seed=1)


def write_prompts(path: Path, count: int = 8) -> Path:
    path.write_text("".join(json.dumps({"problem": f"Compute {i}+{i + 3}."}) + "\n" for i in range(count)))
    return path


def config(student: Path, teacher: str, prompts: Path, out: Path, **overrides):
    from students.onpolicy_config import OnPolicyConfig

    values = dict(student="qwen-1.5b", student_model=str(student), teacher=teacher, prompts=str(prompts), output_dir=str(out),
                  max_new_tokens=12, max_steps=4, batch_size=2, learning_rate=1e-3, save_steps=2, seed=0)
    values.update(overrides)
    return OnPolicyConfig(**values)


class Crash(Exception):
    pass


@pytest.mark.slow
def test_local_teacher_steps_count_tokens_and_resume_gives_the_same_curve(tiny_qwen, student, tmp_path):
    from transformers import TrainerCallback

    from students.onpolicy import run

    prompts = write_prompts(tmp_path / "p.jsonl")
    whole = run(config(student, str(tiny_qwen), prompts, tmp_path / "whole"))
    on = whole["onpolicy"]
    assert whole["metrics"]["steps"] == 4 and whole["objective"] == "on-policy"
    # the teacher scores what the student wrote, less what its own prompt already ends with (R1's `<think>\n`)
    assert 0 < on["teacher_tokens"]["completion"] <= on["sampled_tokens"]
    assert on["teacher_tokens"]["prompt"] > 0 and on["completions"] == 8
    assert len(on["reverse_kl_curve"]) == 4 and all(v >= 0 for _, v in on["reverse_kl_curve"])  # exact KL: never negative
    assert (tmp_path / "whole" / "final" / "config.json").is_file() and (tmp_path / "whole" / "train.json").is_file()

    class CrashAtStep3(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise Crash

    with pytest.raises(Crash):
        run(config(student, str(tiny_qwen), prompts, tmp_path / "cut"), callbacks=[CrashAtStep3()])
    assert not (tmp_path / "cut" / "train.json").exists()
    resumed = run(config(student, str(tiny_qwen), prompts, tmp_path / "cut", resume=True))
    assert resumed["metrics"]["train_loss_curve"][-2:] == whole["metrics"]["train_loss_curve"][-2:]
    assert resumed["onpolicy"]["reverse_kl_curve"] == on["reverse_kl_curve"]
    assert resumed["onpolicy"]["teacher_tokens"] == on["teacher_tokens"]  # counted once, across the interruption


@pytest.mark.slow
def test_an_sft_adapter_is_trained_on_and_a_full_student_gets_a_new_one(tiny_qwen, student, tmp_path):
    import torch
    from safetensors.torch import load_file

    from students.onpolicy import run
    from students.train import run as train

    from .conftest import tiny_config, write_kept

    prompts = write_prompts(tmp_path / "p.jsonl", 4)
    kept = write_kept(tmp_path / "kept.jsonl", copies=1)
    train(tiny_config(student, kept, tmp_path / "sft", method="lora", lora_r=4, lora_alpha=8, max_steps=2))
    sft_adapter = load_file(tmp_path / "sft" / "final" / "adapter_model.safetensors")

    # an SFT LoRA run: its adapter goes on training (the default), on the base SFT loaded
    summary = run(config(tmp_path / "sft", str(tiny_qwen), prompts, tmp_path / "on-lora", max_steps=2))
    final = tmp_path / "on-lora" / "final"
    assert summary["method"] == "lora" and summary["base_model"] == str(student)
    assert (final / "adapter_config.json").is_file() and not (final / "model.safetensors").exists()
    adapter = load_file(final / "adapter_model.safetensors")
    assert adapter.keys() == sft_adapter.keys() and any(not torch.equal(adapter[k], sft_adapter[k]) for k in adapter)
    # ... publish merges it onto that base like any adapter run
    from students.publish import PublishConfig
    from students.publish import run as publish

    publish(PublishConfig(run_dir=str(tmp_path / "on-lora"), output=str(tmp_path / "published"), merge=True))
    assert (tmp_path / "published" / "config.json").is_file()
    # ... and compare-onpolicy evaluates the same merge (vLLM serves full weights, not an adapter on its own)
    from safetensors.torch import load_file as weights

    from distill.quickstart.onpolicy import evaluable

    merged = Path(evaluable(final, tmp_path / "compare"))
    assert merged == tmp_path / "compare" / "merged-on-lora" and (merged / "tokenizer_config.json").is_file()
    mine, published = weights(merged / "model.safetensors"), weights(tmp_path / "published" / "model.safetensors")
    assert mine.keys() == published.keys() and all(torch.allclose(mine[k].float(), published[k].float()) for k in mine)
    assert evaluable(student, tmp_path / "compare") == str(student)  # full weights: as they are

    # a full student with --method lora: a new adapter whose base is that student
    summary = run(config(student, str(tiny_qwen), prompts, tmp_path / "new-lora", max_steps=2, method="lora", lora_r=2))
    assert summary["method"] == "lora" and summary["base_model"] == str(student)
    assert json.loads((tmp_path / "new-lora" / "final" / "adapter_config.json").read_text())["r"] == 2

    # --method full on the adapter run: merged first, then every weight trains (the merge had frozen them)
    summary = run(config(tmp_path / "sft", str(tiny_qwen), prompts, tmp_path / "full", max_steps=1, method="full"))
    assert summary["method"] == "full" and summary["lora"] is None and (tmp_path / "full" / "final" / "model.safetensors").is_file()

    # an adapter run asked for another adapter kind is one line, nothing written
    from distill.core.errors import InputError

    with pytest.raises(InputError, match="continue it with --method lora"):
        run(config(tmp_path / "sft", str(tiny_qwen), prompts, tmp_path / "bad", max_steps=2, method="qlora"))
    assert not (tmp_path / "bad" / "train.json").exists()


@pytest.mark.slow
def test_vllm_server_teacher_scores_like_the_local_model_and_trains(request, tiny_qwen, tiny_llama, student, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.core.errors import InputError
    from students.onpolicy import run
    from students.onpolicy_teacher import ServerTeacher

    base_url = request.getfixturevalue("server")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    teacher = ServerTeacher(base_url, "tiny", "OPENAI_API_KEY", timeout=60, max_retries=1)
    tokenizer = AutoTokenizer.from_pretrained(student)
    teacher.check_same_tokenizer(tokenizer)
    with pytest.raises(InputError, match="tokenizes differently"):
        teacher.check_same_tokenizer(AutoTokenizer.from_pretrained(tiny_llama))
    # prompt log-probabilities are the teacher's log p(token | what precedes it), aligned token for token
    texts = ["Compute 7-3+5. First, 7-3=4. Then, 4+5=9.", "Compute 2+2. So the answer is 4."]
    sequences = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    served = teacher.logprobs(sequences, [3, 5])  # one request, two sequences of different lengths
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen, dtype=torch.float32)
    for ids, start, got in zip(sequences, [3, 5], served, strict=True):
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].log_softmax(-1)
        local = logits[start - 1 : -1].gather(1, torch.tensor(ids[start:])[:, None])[:, 0]
        torch.testing.assert_close(torch.tensor(got), local, atol=2e-2, rtol=1e-2)
    assert (teacher.tokens.prompt, teacher.tokens.completion) == (8, sum(map(len, sequences)) - 8)
    teacher.close()

    prompts = write_prompts(tmp_path / "p.jsonl", 4)
    summary = run(config(student, "tiny", prompts, tmp_path / "run", base_url=base_url, max_steps=2, save_steps=10))
    on = summary["onpolicy"]
    assert summary["metrics"]["steps"] == 2 and on["teacher_mode"] == "server"
    assert 0 < on["teacher_tokens"]["completion"] <= on["sampled_tokens"] and on["teacher_tokens"]["prompt"] > 0
    assert all(v == v for _, v in on["reverse_kl_curve"])  # finite estimates (may be negative: a sampled estimate)
    assert SECRET not in (tmp_path / "run" / "train.json").read_text()


def test_recipe_chains_sft_then_onpolicy_in_one_run_directory(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from cli import app

    recipe = str(Path(__file__).resolve().parents[2] / "recipes" / "quickstart-onpolicy.yaml")
    result = CliRunner().invoke(app, ["run", recipe, "-o", str(tmp_path / "run"), "--print-config"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(result.output)
    run_dir = str((tmp_path / "run").resolve())
    assert list(doc) == ["teacher", "generate", "filter", "train", "train-kd", "onpolicy", "compare-onpolicy"]
    # KD: the same kept traces, base and settings as SFT, on the teacher's recorded top-K
    assert doc["generate"]["logprobs"] == 20 and doc["train-kd"]["objective"] == "kd" and doc["train"]["objective"] == "sft"
    assert doc["train-kd"]["data"] == doc["train"]["data"] and doc["train-kd"]["base_model"] == doc["train"]["base_model"]
    assert doc["compare-onpolicy"]["kd"] == f"{run_dir}/train-kd/final"
    assert doc["onpolicy"]["student_model"] == f"{run_dir}/train"  # the SFT run's final/
    assert doc["onpolicy"]["prompts"] == f"{run_dir}/filter/kept.jsonl" and doc["onpolicy"]["teacher"] == f"{run_dir}/teacher/model"
    assert doc["compare-onpolicy"]["onpolicy"] == f"{run_dir}/onpolicy"
    result = CliRunner().invoke(app, ["run", recipe, "-o", str(tmp_path / "run"), "--dry-run"], catch_exceptions=False)
    assert result.exit_code == 0 and "settings valid for 7 stage(s)" in result.output
    assert not (tmp_path / "run").exists()


def test_verdicts_say_so_when_kd_or_onpolicy_does_not_help():
    from distill.quickstart.onpolicy import KD, ONPOLICY, SFT, onpolicy_verdicts

    def rows(sft, onp, kd=None):
        found = [{"model": SFT, "accuracy": sft, "accuracy_stderr": 0.02, "mixing": 0.1},
                 {"model": ONPOLICY, "accuracy": onp, "accuracy_stderr": 0.02, "mixing": 0.05}]
        return found + ([{"model": KD, "accuracy": kd, "accuracy_stderr": 0.02, "mixing": 0.0}] if kd is not None else [])

    tokens, sampled = {"prompt": 1000, "completion": 2000}, {"prompt": 700, "completion": 5000}
    assert "did NOT measurably help" in onpolicy_verdicts(rows(0.50, 0.52), sampled, tokens)[0]
    assert onpolicy_verdicts(rows(0.50, 0.70), sampled, tokens)[0].startswith("On-policy distillation raised accuracy")
    assert "LOWERED" in onpolicy_verdicts(rows(0.70, 0.50), sampled, tokens)[0]
    assert "3,000 more (1,000 prompt + 2,000 student-written, scored, not sampled): 53% more than SFT alone." in onpolicy_verdicts(rows(0.5, 0.5), sampled, tokens)[2]
    # KD: its verdict first, then the teacher tokens it shares with SFT (prompt and completion apart)
    lines = onpolicy_verdicts(rows(0.50, 0.50, kd=0.51), sampled, tokens)
    assert lines[0].startswith("Logit distillation (KD) did NOT measurably help here: 51.0% vs 50.0%")
    assert "same kept traces of the teacher's samples (generate: 700 prompt + 5,000 completion tokens)" in lines[1]
    assert onpolicy_verdicts(rows(0.50, 0.50, kd=0.70), sampled, tokens)[0].startswith("Logit distillation (KD) raised accuracy")
    assert "LOWERED" in onpolicy_verdicts(rows(0.50, 0.50, kd=0.30), sampled, tokens)[0]
    assert lines[3] == "Language mixing: 0.0% after KD, 5.0% after on-policy vs 10.0% after SFT alone."


@pytest.mark.slow
def test_distill_run_chains_sft_then_onpolicy_then_publish_with_stage_caching(tiny_qwen, student, tmp_path, monkeypatch):
    import yaml

    from distill.pipeline.run import execute, plan

    from .conftest import write_kept

    kept = write_kept(tmp_path / "kept.jsonl", copies=2)
    doc = {
        "name": "sft-onpolicy", "run": {"stages": ["train", "onpolicy", "publish"], "torch_threads": 1},
        "train": {"student": "qwen-1.5b", "data": str(kept), "base_model": str(student), "max_steps": 2, "max_seq_length": 128,
                  "batch_size": 2, "grad_accum": 1, "packing": False, "gradient_checkpointing": False, "eval_fraction": 0,
                  "save_steps": 1000, "logging_steps": 1},
        "onpolicy": {"student": "qwen-1.5b", "prompts": str(kept), "teacher": str(tiny_qwen), "max_new_tokens": 8,
                     "max_steps": 2, "batch_size": 2, "save_steps": 1000},
        "publish": {"merge": False},
    }
    recipe, out = tmp_path / "r.yaml", tmp_path / "run"
    recipe.write_text(yaml.safe_dump(doc))

    def run_recipe(sets=None):
        ctx, planned = plan(recipe, out, None, None, sets)
        return execute(ctx, planned, recipe.read_text())

    first = run_recipe()
    assert list(first) == ["train", "onpolicy", "publish"] and not any(r.get("skipped") for r in first.values())
    manifest = json.loads((out / "onpolicy" / "train.json").read_text())
    assert manifest["objective"] == "on-policy" and manifest["onpolicy"]["student_model"] == str(out / "train")
    assert manifest["onpolicy"]["prompts"]["distinct"] == 6 and manifest["sft"]["metrics"]["steps"] == 2
    assert (out / "publish" / "model" / "config.json").is_file()  # publish took the on-policy run
    assert all(r.get("skipped") for r in run_recipe().values())
    changed = run_recipe(sets=["onpolicy.max_steps=3"])
    assert changed["train"].get("skipped") and not changed["onpolicy"].get("skipped") and not changed["publish"].get("skipped")

    # compare-onpolicy's own part: which folders it evaluates, the table and the verdicts. The evaluation itself is
    # the quickstart's evaluate_models (vLLM, tested in tests/distill/quickstart); here a recorder stands in for it.
    import distill.quickstart.stages as quickstart_stages
    from distill.quickstart.onpolicy import KD, ONPOLICY, SFT, OnPolicyCompareConfig, run_compare

    seen = {}

    def evaluate_models(models, config, benchmarks, out, language):
        seen.update(models)
        return [{"model": label, "path": path, "benchmark": "heldout", "problems": 10, "samples": 20, "accuracy": 0.5,
                 "accuracy_stderr": 0.1, "mixing": 0.0, "no_answer": 0.0, "tokens_per_s": None} for label, path in models.items()]

    monkeypatch.setattr(quickstart_stages, "evaluate_models", evaluate_models)
    result = run_compare(OnPolicyCompareConfig(teacher=str(tiny_qwen), onpolicy=str(out / "onpolicy"), traces=str(kept),
                                               kd=str(student), benchmarks=[str(kept)], output_dir=str(tmp_path / "compare")))
    assert seen == {"teacher": str(tiny_qwen), SFT: str(out / "train" / "final"), KD: str(student),
                    ONPOLICY: str(out / "onpolicy" / "final")}
    assert "did NOT measurably help" in result["verdicts"][0] and "did NOT measurably help" in result["verdicts"][2]
    assert "did NOT measurably help" in (tmp_path / "compare" / "table.md").read_text()


def test_unreachable_teacher_server_is_one_line_exit_1_and_nothing_written(distill_cli, tiny_qwen, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    prompts = write_prompts(tmp_path / "p.jsonl", 2)
    code, _, err = distill_cli("onpolicy", "-s", "qwen-1.5b", "--student-model", tiny_qwen, "--prompts", prompts, "--teacher", "t",
                               "--base-url", "http://127.0.0.1:9/v1", "--max-retries", "0", "-o", tmp_path / "o")
    assert code == 1 and err.strip().splitlines() == [err.strip()] and "unreachable" in err and SECRET not in err
    assert not (tmp_path / "o").exists()
