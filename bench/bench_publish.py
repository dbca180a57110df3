"""Publish: how closely the merged model reproduces the trained adapter model, and how long it takes.

Trains a LoRA and a QLoRA adapter on a tiny Qwen2-architecture model with `distill train` (a few
real steps), publishes each with `distill publish --merge`, and measures the largest logit
difference and greedy-token agreement against the adapter model, for the QLoRA merge into the
dequantized base (default) and into the original weights. Run: python bench/bench_publish.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["What is 12 plus 30?", "What is 7 plus 6?", "Let me think about this problem.", "The answer is", "首先，我们计算",
           "def solve(x):", "Wait, let me double-check", "The quick brown fox"]


def main() -> None:
    import torch
    from peft import PeftModel
    from rich.console import Console
    from rich.table import Table
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sys.path.insert(0, str(ROOT / "tests" / "students"))
    from conftest import tiny_config, write_kept  # the training tests' cheap config

    from distill.core.models import load_causal_lm
    from distill.quickstart.tiny import build_model
    from students.publish import PublishConfig, run
    from students.train import run as train

    table = Table(title="merged model vs trained adapter model (tiny Qwen2, 8 prompts)")
    for column in ("method", "merged into", "adapter effect", "max |Δlogit|", "Δ / max |logit|", "greedy 16 tok equal", "publish s"):
        table.add_column(column, justify="left" if column in ("method", "merged into") else "right")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = build_model(tmp / "base", family="qwen", hidden_size=256, layers=4, heads=4, kv_heads=2, intermediate_size=512)
        kept = write_kept(tmp / "kept.jsonl", copies=2)
        for method in ("lora", "qlora"):
            config = tiny_config(base, kept, tmp / method, method=method, max_steps=12, learning_rate=2e-3, lora_r=16, lora_alpha=32, lora_dropout=0.0)
            train(config)
            info = json.loads((tmp / method / "train.json").read_text())
            quantization = info["quantization"] if method == "qlora" else None
            adapter = PeftModel.from_pretrained(
                load_causal_lm(str(base), overrides=info["config_overrides"], dtype=torch.float32, quantization=quantization),
                str(tmp / method / "final"),
            ).eval()
            tokenizer = AutoTokenizer.from_pretrained(tmp / method / "final")
            plain = load_causal_lm(str(base), overrides=info["config_overrides"], dtype=torch.float32).eval()
            with torch.no_grad():  # how far training moved the model: the scale the merge error is judged against
                effect = max((adapter(input_ids=tokenizer(p, return_tensors="pt").input_ids).logits
                              - plain(input_ids=tokenizer(p, return_tensors="pt").input_ids).logits).abs().max().item() for p in PROMPTS)
            for target in (("dequantized", "original") if method == "qlora" else ("original",)):
                out = tmp / f"{method}-{target}"
                started = time.perf_counter()
                run(PublishConfig(run_dir=tmp / method, output=out, merge=True, qlora_merge=target))
                seconds = time.perf_counter() - started
                merged = AutoModelForCausalLM.from_pretrained(out).eval()
                worst = scale = 0.0
                equal = 0
                with torch.no_grad():
                    for prompt in PROMPTS:
                        ids = tokenizer(prompt, return_tensors="pt").input_ids
                        reference = adapter(input_ids=ids).logits
                        worst = max(worst, (merged(input_ids=ids).logits - reference).abs().max().item())
                        scale = max(scale, reference.abs().max().item())
                        kw = dict(max_new_tokens=16, do_sample=False, pad_token_id=tokenizer.pad_token_id)
                        equal += torch.equal(merged.generate(ids, **kw), adapter.generate(ids, **kw))
                label = {"original": "original weights", "dequantized": "dequantized NF4 base"}[target]
                table.add_row(method, label, f"{effect:.3f}", f"{worst:.4f}", f"{worst / scale:.2%}", f"{equal}/{len(PROMPTS)}", f"{seconds:.1f}")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
