"""GGUF export: how closely each file llama.cpp runs reproduces the published model, how big and how fast it is.

Trains a tiny student on Qwen2.5's real tokenizer (width 256, so the k-quants apply) for a few
real steps with `distill train`, publishes it with `distill publish --gguf f32,f16,q8_0,q4_k_m`,
and runs every file with llama.cpp (llama-cpp-python) against the transformers model: largest
logit difference over 8 prompts, greedy agreement over 16 tokens, file size, single-stream decode
tokens/s on this CPU. Run: python bench/bench_gguf.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["What is 12 plus 30?", "What is 7 plus 6?", "Let me think about this problem.", "The answer is", "首先，我们计算",
           "def solve(x):", "Wait, let me double-check", "The quick brown fox"]
TYPES = ["f32", "f16", "q8_0", "q4_k_m"]


def main() -> None:
    import numpy as np
    import torch
    from llama_cpp import Llama
    from rich.console import Console
    from rich.table import Table
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sys.path.insert(0, str(ROOT / "tests" / "students"))
    from conftest import tiny_config, write_kept  # the training tests' cheap config

    from distill.quickstart.tiny import build_model
    from students.publish import PublishConfig, run
    from students.train import run as train

    table = Table(title="GGUF files vs the published model (tiny Qwen2, Qwen2.5 tokenizer, width 256, 8 prompts)")
    for column in ("GGUF", "size MiB", "max |Δlogit|", "Δ / max |logit|", "greedy 16 tok equal", "decode tokens/s"):
        table.add_column(column, justify="left" if column == "GGUF" else "right")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = build_model(tmp / "base", family="qwen", tokenizer="released", hidden_size=256, layers=2, heads=4, kv_heads=2,
                           intermediate_size=512)
        train(tiny_config(base, write_kept(tmp / "kept.jsonl", copies=2), tmp / "run", max_steps=12, learning_rate=2e-3))
        started = time.perf_counter()
        run(PublishConfig(run_dir=tmp / "run", output=tmp / "model", gguf=TYPES, model_name="bench"))
        seconds = time.perf_counter() - started
        tokenizer = AutoTokenizer.from_pretrained(tmp / "model")
        model = AutoModelForCausalLM.from_pretrained(tmp / "model", dtype=torch.float32).eval()
        prompts = [tokenizer(p)["input_ids"] for p in PROMPTS]
        with torch.no_grad():
            logits = [model(torch.tensor([ids])).logits[0].numpy() for ids in prompts]
            greedy = [model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False, eos_token_id=None,
                                     pad_token_id=tokenizer.pad_token_id)[0, len(ids):].tolist() for ids in prompts]
        scale = max(np.abs(x).max() for x in logits)
        for kind in TYPES:
            path = tmp / "model" / f"bench-{kind.upper()}.gguf"
            llm = Llama(str(path), n_ctx=512, logits_all=True, n_threads=2, seed=0, verbose=False)
            worst, equal = 0.0, 0
            for ids, expected, tokens in zip(prompts, logits, greedy, strict=True):
                llm.reset()
                llm.eval(ids)
                worst = max(worst, float(np.abs(np.array(llm.scores[: len(ids)]) - expected).max()))
                got = []
                for token in llm.generate(ids, temp=0.0, top_k=1, reset=True):
                    got.append(token)
                    if len(got) == 16:
                        break
                equal += got == tokens
            llm.reset()
            start = time.perf_counter()
            generated = 0
            for _ in llm.generate(prompts[0], temp=0.0, top_k=1, reset=True):
                generated += 1
                if generated == 256:
                    break
            rate = generated / (time.perf_counter() - start)
            llm.close()
            table.add_row(kind, f"{path.stat().st_size / 2**20:.1f}", f"{worst:.4f}", f"{100 * worst / scale:.2f}%", f"{equal}/{len(prompts)}",
                          f"{rate:.0f}")
    console = Console()
    console.print(table)
    console.print(f"publish with the four GGUF files (convert once, quantize three times): {seconds:.1f} s")


if __name__ == "__main__":
    main()
