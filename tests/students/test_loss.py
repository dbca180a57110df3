"""The chunked head loss: the same loss and gradients as transformers' own loss on the full
logits (tied and untied heads, frozen heads, packed rows, shift_labels, token normalisation
across accumulation), and a measured peak memory far below it with a real-size vocabulary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from students.loss import causal_lm_loss, supports_chunked, use_chunked_loss

ROOT = Path(__file__).resolve().parents[2]


def _model(family: str, tied: bool, vocab: int = 300, seed: int = 0):
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    torch.manual_seed(seed)
    kind = Qwen2Config if family == "qwen" else LlamaConfig
    config = kind(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, max_position_embeddings=512, tie_word_embeddings=tied, use_cache=False)
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").float()


def _packed_batch(vocab: int, lengths=(23, 40, 17), seed: int = 1):
    """One flattened row of packed samples (position ids restart), labels -100 on each prompt."""
    generator = torch.Generator().manual_seed(seed)
    ids, labels, positions = [], [], []
    for n in lengths:
        sample = torch.randint(0, vocab, (n,), generator=generator).tolist()
        ids += sample
        labels += [-100] * (n // 3) + sample[n // 3:]
        positions += range(n)
    return {key: torch.tensor([values]) for key, values in
            (("input_ids", ids), ("labels", labels), ("position_ids", positions))}


def _loss_and_grads(model, batch, **extra):
    model.zero_grad(set_to_none=True)
    loss = model(**batch, **extra).loss
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family,tied", [("qwen", True), ("llama", False)])
def test_chunked_loss_equals_transformers_loss_and_gradients(family, tied):
    plain = _model(family, tied)
    chunked = _model(family, tied)
    assert supports_chunked(chunked)
    use_chunked_loss(chunked, chunk_size=7)  # many chunks, a ragged last one
    batch = _packed_batch(plain.config.vocab_size)
    for extra in ({}, {"num_items_in_batch": torch.tensor(97)}):  # per-batch mean, and Trainer's accumulated count
        want, want_grads = _loss_and_grads(plain, batch, **extra)
        got, got_grads = _loss_and_grads(chunked, batch, **extra)
        assert got.item() == pytest.approx(want.item(), rel=1e-5)
        assert got_grads.keys() == want_grads.keys()
        for name, grad in want_grads.items():
            torch.testing.assert_close(got_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    out = chunked(**batch)
    assert out.logits is None  # the full logits never exist
    with torch.no_grad():  # eval: same loss, no gradient work
        assert chunked(**batch).loss.item() == pytest.approx(plain(**batch).loss.item(), rel=1e-5)
    inference = chunked(input_ids=batch["input_ids"][:, :10])  # without labels the model is itself
    torch.testing.assert_close(inference.logits, plain(input_ids=batch["input_ids"][:, :10]).logits)


def test_chunked_loss_with_shift_labels_and_a_frozen_head():
    """DeepSpeed's sequence-parallel loader passes pre-shifted `shift_labels`; LoRA freezes the head."""
    plain, chunked = _model("qwen", False), _model("qwen", False)
    for model in (plain, chunked):
        model.lm_head.weight.requires_grad_(False)
    use_chunked_loss(chunked, chunk_size=16)
    batch = _packed_batch(plain.config.vocab_size)
    shifted = torch.nn.functional.pad(batch["labels"], (0, 1), value=-100)[:, 1:]
    inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"]}
    want, want_grads = _loss_and_grads(plain, {**inputs, "labels": shifted}, shift_labels=shifted)
    got, got_grads = _loss_and_grads(chunked, {**inputs, "labels": shifted}, shift_labels=shifted)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    assert "lm_head.weight" not in got_grads
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_bf16_head_matches_within_bf16_precision():
    torch.manual_seed(0)
    hidden = torch.randn(1, 50, 32, dtype=torch.bfloat16, requires_grad=True)
    weight = torch.randn(1000, 32, dtype=torch.bfloat16, requires_grad=True)
    labels = torch.randint(0, 1000, (1, 50))
    labels[0, :5] = -100
    want = torch.nn.functional.cross_entropy((hidden @ weight.t()).float()[0, :-1], labels[0, 1:], ignore_index=-100)
    want.backward()
    want_grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    got = causal_lm_loss(hidden, weight, labels, chunk_size=8)
    got.backward()
    assert got.item() == pytest.approx(want.item(), rel=1e-3)
    assert weight.grad.dtype == torch.bfloat16
    torch.testing.assert_close(hidden.grad, want_grads[0], rtol=2e-2, atol=2e-3)
    torch.testing.assert_close(weight.grad, want_grads[1], rtol=2e-2, atol=2e-3)


def test_autocast_runs_an_fp32_head_in_bf16_like_nn_linear():
    """QLoRA upcasts the head to fp32 and trains under bf16 autocast: the head's matmul follows autocast."""
    torch.manual_seed(0)
    hidden = torch.randn(1, 40, 16, requires_grad=True)
    weight = torch.randn(300, 16, requires_grad=True)
    labels = torch.randint(0, 300, (1, 40))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = causal_lm_loss(hidden, weight, labels, chunk_size=8)
        logits = torch.nn.functional.linear(hidden, weight)
        want = torch.nn.functional.cross_entropy(logits[0, :-1].float(), labels[0, 1:])
    assert logits.dtype == torch.bfloat16 and got.item() == pytest.approx(want.item(), rel=1e-5)
    got.backward()
    assert weight.grad.dtype == hidden.grad.dtype == torch.float32


MEASURE = r"""
import json, re, sys, torch
from transformers import AutoModelForCausalLM, Qwen2Config
from students.loss import use_chunked_loss
mode, vocab, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
config = Qwen2Config(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=1,
                     num_key_value_heads=1, tie_word_embeddings=True, use_cache=False)
model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").float()
if mode == "chunked":
    use_chunked_loss(model, chunk_size=512)
ids = torch.randint(0, vocab, (1, tokens))
def status(field):
    return int(re.search(field + r":\s+(\d+)", open("/proc/self/status").read()).group(1)) * 1024
# The peak is reset here, so that whatever importing or building the model took earlier is not the figure measured
# (ru_maxrss is the whole life's peak: on another machine the imports peaked higher than the step itself).
open("/proc/self/clear_refs", "w").write("5")
before = status("VmRSS")
loss = model(input_ids=ids, labels=ids).loss
loss.backward()
peak = status("VmHWM") - before
print(json.dumps({"peak": peak, "loss": loss.item()}))
"""


@pytest.mark.slow
def test_chunked_loss_peak_memory_is_lower_with_a_large_vocabulary():
    """Peak RSS growth of one forward + backward in a fresh process, 32k vocabulary, 2048 tokens:
    the full logits (fp32) are 256 MiB a copy; the chunked loss holds 512 x 32k at a time."""
    results = {}
    for mode in ("plain", "chunked"):
        out = subprocess.run([sys.executable, "-c", MEASURE, mode, "32768", "2048"], capture_output=True, text=True,
                             cwd=ROOT, timeout=300, env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})
        assert out.returncode == 0, out.stderr[-2000:]
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    assert results["chunked"]["loss"] == pytest.approx(results["plain"]["loss"], rel=1e-5)
    assert results["chunked"]["peak"] < 0.25 * results["plain"]["peak"], results
