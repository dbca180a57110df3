"""`distill publish` on real run directories: LoRA and QLoRA adapters trained for a few real
steps on the tiny models, merged and compared with the adapter models they came from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from distill.core.models import load_causal_lm
from distill.core.publishing import MARK
from students.inference import INFERENCE_TEMPLATES
from students.publish import PublishConfig, run
from students.templates import TEMPLATES

from .conftest import tiny_config, write_kept

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ["What is 12 plus 30?", "Let me think about this problem.", "The answer is", "首先，我们计算"]


@pytest.fixture(scope="module")
def runs(tiny_qwen, tmp_path_factory) -> dict[str, Path]:
    """Run directories made by `distill train` itself (a few real steps), LoRA and QLoRA.

    rope_theta is set explicitly so that train.json carries config overrides: an adapter has no
    config of its own, and publish must re-apply them when it merges.
    """
    from students.train import run as train

    kept = write_kept(tmp_path_factory.mktemp("data") / "kept.jsonl", copies=1)
    out = {}
    for method in ("lora", "qlora"):
        config = tiny_config(tiny_qwen, kept, tmp_path_factory.mktemp(method) / "run", method=method, max_steps=6,
                             learning_rate=5e-2, lora_r=8, lora_alpha=16, lora_dropout=0.0, rope_theta=50000.0)
        train(config)
        out[method] = Path(config.output_dir)
    return out


@pytest.fixture(scope="module")
def llama_full_run(tiny_llama, tmp_path_factory) -> Path:
    from students.train import run as train

    kept = write_kept(tmp_path_factory.mktemp("data") / "kept.jsonl", copies=1)
    config = tiny_config(tiny_llama, kept, tmp_path_factory.mktemp("full") / "run", student="llama-8b", method="full", max_steps=4)
    train(config)
    return Path(config.output_dir)


def test_full_weight_run_llama(llama_full_run, tmp_path):
    """A full fine-tune is re-saved as is (no merge), with the Llama-3 inference template."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    out = tmp_path / "out"
    assert run(PublishConfig(run_dir=llama_full_run, output=out, merge=True))["kind"] == "full"
    trained = {k: v for f in (llama_full_run / "final").glob("*.safetensors") for k, v in load_file(f).items()}
    published = {k: v for f in out.glob("*.safetensors") for k, v in load_file(f).items()}
    assert trained.keys() == published.keys() and all(torch.equal(trained[k], published[k]) for k in trained)
    tokenizer = AutoTokenizer.from_pretrained(out)
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "<think>\nhidden\n</think>\n\nHello"}, {"role": "user", "content": "2+2?"}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    text = tokenizer.decode(ids)
    assert text.count("<|begin_of_text|>") == 1 and ids[0] == tokenizer.convert_tokens_to_ids("<|begin_of_text|>")
    assert "hidden" not in text and text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n<think>\n")
    card = (out / "README.md").read_text()
    assert "license: llama3.1" in card and "training_loss.png" in card and (out / "training_loss.png").stat().st_size > 1000


def _adapter_model(run_dir: Path):
    """The model as training left it: base (4-bit for QLoRA) + adapter."""
    from peft import PeftModel

    info = json.loads((run_dir / "train.json").read_text())
    base = load_causal_lm(info["base_model"], overrides=info["config_overrides"], dtype=torch.float32,
                          quantization=info["quantization"] if info["method"] == "qlora" else None)
    return PeftModel.from_pretrained(base, str(run_dir / "final")).eval()


def _compare(a, b, tokenizer) -> tuple[float, int]:
    """(largest logit difference, prompts whose 12 greedy tokens differ)."""
    worst, differ = 0.0, 0
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = tokenizer(prompt, return_tensors="pt").input_ids
            worst = max(worst, (a(input_ids=ids).logits - b(input_ids=ids).logits).abs().max().item())
            kw = dict(max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            differ += not torch.equal(a.generate(ids, **kw), b.generate(ids, **kw))
    return worst, differ


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_merged_model_matches_adapter_model(runs, method, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "out"
    summary = run(PublishConfig(run_dir=runs[method], output=out, merge=True))
    assert summary["kind"] == "merged"
    adapter = _adapter_model(runs[method])
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    scale = max(adapter(input_ids=tokenizer(p, return_tensors="pt").input_ids).logits.abs().max().item() for p in PROMPTS)
    diff, differ = _compare(merged, adapter, tokenizer)
    # LoRA: float32 both ways, equal to rounding. QLoRA: bitsandbytes' CPU 4-bit matmul itself is
    # accurate to ~0.3% of the output, so the trained model is only known to that precision.
    assert diff < (1e-3 if method == "lora" else 0.05) * scale, (diff, scale)
    assert differ == 0
    # The adapter really moved the model (otherwise the comparison above proves nothing).
    info = json.loads((runs[method] / "train.json").read_text())
    base = load_causal_lm(info["base_model"], overrides=info["config_overrides"]).eval()
    assert _compare(base, adapter, tokenizer)[0] > 5 * diff
    # The training run's rope change is carried into the merged model's config.
    saved = json.loads((out / "config.json").read_text())
    assert saved["rope_parameters"]["rope_theta"] == 50000.0 and saved["max_position_embeddings"] == 32768
    assert saved["use_cache"] is True
    if method == "qlora":
        # Merging into the original weights instead adds the quantization error back.
        run(PublishConfig(run_dir=runs[method], output=tmp_path / "orig", merge=True, qlora_merge="original"))
        original = AutoModelForCausalLM.from_pretrained(tmp_path / "orig").eval()
        assert _compare(original, adapter, tokenizer)[0] > 2 * diff


@pytest.fixture(scope="module")
def published(runs, tmp_path_factory) -> Path:
    """A merged LoRA run, sharded small, with recipe, filter report and eval summary in the card."""
    root = tmp_path_factory.mktemp("published")
    (root / "recipe.yaml").write_text(yaml.safe_dump({"generate": {"teacher": "deepseek-r1", "api_key": "sk-do-not-show"}, "train": {"student": "qwen-1.5b"}}))
    (root / "report.json").write_text(json.dumps({"input": 100, "kept": 61, "rules": {"correctness": {"rejected": 30}, "length": {"rejected": 9}}}))
    summary = {"model": "out", "backend": "vllm", "k": 4, "temperature": 0.6, "top_p": 0.95, "max_tokens": 32768,
               "benchmarks": {"aime24": {"problems": 30, "samples": 120, "pass@1": 0.289, "pass@1_stderr": 0.07, "cons@4": 0.333,
                                         "pass@4": 0.4, "no_answer": 0.0, "truncated": 0.1, "mean_tokens": 12000.0}}}
    (root / "summary.json").write_text(json.dumps(summary))
    out = root / "model"
    run(PublishConfig(run_dir=runs["lora"], output=out, merge=True, max_shard_size="200KB", recipe_file=root / "recipe.yaml",
                      filter_report=root / "report.json", eval=[root / "summary.json"], datasets=["me/traces"]))
    return out


def test_published_folder_layout(published):
    names = {p.name for p in published.iterdir()}
    shards = [n for n in names if n.endswith(".safetensors")]
    assert len(shards) > 1 and "model.safetensors.index.json" in names
    assert not any(n.endswith((".bin", ".pt")) for n in names)
    assert {"config.json", "generation_config.json", "tokenizer.json", "README.md"} <= names
    assert not any(n.startswith(".") and n != MARK for n in names)  # no temporaries; the mark says publish wrote it
    generation = json.loads((published / "generation_config.json").read_text())
    assert generation["do_sample"] is True and generation["temperature"] == 0.6 and generation["top_p"] == 0.95
    assert "quantization_config" not in json.loads((published / "config.json").read_text())


def test_inference_template_is_r1_style(published, runs):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(published)
    training = AutoTokenizer.from_pretrained(runs["lora"] / "final")
    first = [{"role": "user", "content": "What is 2+2?"}]
    prompt = tokenizer.apply_chat_template(first, add_generation_prompt=True, tokenize=False)
    # Same turn format as training, and the answer opens with the reasoning tag.
    assert prompt == training.apply_chat_template(first, add_generation_prompt=True, tokenize=False) + "<think>\n"
    history = first + [{"role": "assistant", "content": "<think>\nsecret reasoning\n</think>\n\n4"}, {"role": "user", "content": "And 3+3?"}]
    text = tokenizer.apply_chat_template(history, add_generation_prompt=True, tokenize=False)
    assert "secret reasoning" not in text and "<|im_start|>assistant\n4<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n<think>\n")
    stops = json.loads((published / "generation_config.json").read_text())["eos_token_id"]
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in stops


def test_model_card(published):
    text = (published / "README.md").read_text()
    front = yaml.safe_load(text.split("---")[1])
    # A base trained from a local folder is named in the text; the hub metadata takes repo ids only.
    assert "base_model" not in front and front["license"] == "apache-2.0" and front["datasets"] == ["me/traces"]
    assert "reasoning" in front["tags"] and front["library_name"] == "transformers"
    assert "| aime24 | 30 | 28.9 ± 7.0 | 33.3 | 40.0 | 12000 |" in text
    assert "rules.correctness.rejected" in text and "| kept | 61 |" in text
    assert "train_loss" in text and "teacher: deepseek-r1" in text
    assert "sk-do-not-show" not in text


def test_card_only_refresh_adds_eval_table(runs, tmp_path):
    out = tmp_path / "model"
    run(PublishConfig(run_dir=runs["lora"], output=out))
    weights = (out / "adapter_model.safetensors").read_bytes()
    assert "## Evaluation" not in (out / "README.md").read_text()
    summary = {"model": str(out), "k": 2, "temperature": 0.6, "top_p": 0.95, "max_tokens": 512,
               "benchmarks": {"mini": {"problems": 3, "pass@1": 0.5, "pass@1_stderr": 0.1, "cons@2": 0.5, "pass@2": 1.0, "mean_tokens": 50.0}}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    run(PublishConfig(run_dir=runs["lora"], output=out, card_only=True, eval=[tmp_path / "summary.json"]))
    assert "| mini | 3 | 50.0 ± 10.0 | 50.0 | 100.0 | 50 |" in (out / "README.md").read_text()
    assert (out / "adapter_model.safetensors").read_bytes() == weights
    assert not any(p.name.startswith(".") and p.name != MARK for p in out.iterdir())


def test_model_card_metadata_for_hub_base(tmp_path):
    from students.model_card import render_card

    info = {"student": "llama-8b", "base_model": "meta-llama/Llama-3.1-8B", "method": "qlora",
            "metrics": {"tokens_seen": 12345}, "eos_token": "<|eot_id|>", "api_key": "sk-secret-value"}
    text = render_card(PublishConfig(run_dir=tmp_path, output=tmp_path / "m", push="me/r1-llama"), info, kind="merged", chat_format="llama3")
    front = yaml.safe_load(text.split("---")[1])
    assert front["base_model"] == "meta-llama/Llama-3.1-8B" and front["license"] == "llama3.1" and "qlora" in front["tags"]
    assert "# me/r1-llama" in text and "dequantized" in text  # the QLoRA merge choice is documented in the card
    assert "12345" in text and "\\|eot_id\\|" in text and "sk-secret-value" not in text


# Loading the published folder with vLLM is tested in tests/distill/test_evaluate.py: the
# end-to-end eval samples from a published (sharded) tiny model, so one engine load covers both.


def test_adapter_only_publish(runs, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "adapter"
    assert run(PublishConfig(run_dir=runs["lora"], output=out))["kind"] == "adapter"
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "generation_config.json"} <= {p.name for p in out.iterdir()}
    assert "library_name: peft" in (out / "README.md").read_text()
    base = AutoModelForCausalLM.from_pretrained(json.loads((runs["lora"] / "train.json").read_text())["base_model"])
    PeftModel.from_pretrained(base, str(out))


def test_push_uploads_folder_and_never_writes_token(runs, tmp_path, monkeypatch, hub_api):
    token = "hf_SeCrEtToKeN1234567890abcdef"
    monkeypatch.setenv("HF_TOKEN", token)
    api = hub_api
    out = tmp_path / "pushed"
    summary = run(PublishConfig(run_dir=runs["lora"], output=out, push="me/student", private=True), api=api)
    assert [c[0] for c in api.calls] == ["create_repo", "upload_folder"]
    assert api.calls[0][2]["private"] is True and api.calls[1][1] == "me/student"
    assert api.calls[0][2]["repo_type"] == api.calls[1][2]["repo_type"] == "model"
    assert set(api.calls[1][2]["files"]) == {p.name for p in out.iterdir()} - {MARK}  # the mark stays local
    assert summary["url"].endswith("me/student")
    for path in out.rglob("*"):
        assert token.encode() not in path.read_bytes()
    # A token that would end up in the card is redacted before anything is written.
    run(PublishConfig(run_dir=runs["lora"], output=tmp_path / "leak", model_name=token))
    card = (tmp_path / "leak" / "README.md").read_text()
    assert token not in card and "<redacted>" in card


def test_bad_run_dir_is_one_line_error(runs, tmp_path):
    cli = [sys.executable, "-m", "cli", "publish"]
    result = subprocess.run([*cli, str(tmp_path / "nope"), "-o", str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0 and "no such run directory" in result.stderr
    broken = tmp_path / "broken"
    (broken / "final").mkdir(parents=True)
    (broken / "train.json").write_text('{"method": "lora",\n oops}')
    result = subprocess.run([*cli, str(broken), "-o", str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "train.json:2" in result.stderr
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    result = subprocess.run([*cli, str(runs["lora"]), "-o", str(existing)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "not empty" in result.stderr
    assert (existing / "keep.txt").read_text() == "mine" and not (tmp_path / "o").exists()


def test_templates_cover_training_formats():
    assert set(INFERENCE_TEMPLATES) == set(TEMPLATES)
