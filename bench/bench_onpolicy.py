"""On-policy distillation speed on CPU (prints a table; not a test).

Tokens per second of the student's sampled tokens through each part of an on-policy step:
student sampling (in-process `generate`), teacher scoring (a local teacher's forward pass, and
with --server a vLLM server's prompt log-probabilities) and the update (student forward,
divergence, backward, optimizer). Tiny random models (distill.quickstart.tiny: student 2 layers,
teacher 3, width 128) on the quickstart-style arithmetic prompts; the split shows where a step's
time goes, which is what changes with real sizes (sampling dominates: one forward per token).

    .venv/bin/python bench/bench_onpolicy.py [--steps 6] [--batch 8] [--new-tokens 64] [--server]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def trl_peer(student: Path, teacher: Path, problems: list[str], args, out: Path) -> dict:
    """The same steps with TRL 1.16's DistillationTrainer (local teacher, in-process generation, reverse KL)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DistillationConfig, DistillationTrainer

    from students.presets import STUDENTS
    from students.templates import TEMPLATES, prepare_tokenizer

    preset = STUDENTS["qwen-1.5b"]
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(student), TEMPLATES[preset.template], preset.pad_token)
    tokenizer.padding_side = "left"
    config = DistillationConfig(
        output_dir=str(out), per_device_train_batch_size=args.batch, gradient_accumulation_steps=1, max_steps=args.steps,
        learning_rate=1e-4, lr_scheduler_type="constant", max_completion_length=args.new_tokens, temperature=1.0, top_p=1.0,
        top_k=0, beta=1.0, use_vllm=False, report_to=[], save_strategy="no", logging_steps=1, use_cpu=True, bf16=False,
        seed=0, disable_tqdm=True)
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p in problems])
    trainer = DistillationTrainer(model=AutoModelForCausalLM.from_pretrained(student, dtype=torch.float32),
                                  teacher_model=AutoModelForCausalLM.from_pretrained(teacher, dtype=torch.float32),
                                  args=config, train_dataset=dataset, processing_class=tokenizer)
    started = time.perf_counter()
    trainer.train()
    elapsed = time.perf_counter() - started
    tokens = sum(e["completions/mean_length"] * args.batch for e in trainer.state.log_history if "completions/mean_length" in e)
    return {"sampled_tokens": int(tokens), "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--server", action="store_true", help="also score with the teacher on a local vLLM server")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from distill.quickstart.tiny import build_model
    from students.onpolicy import run
    from students.onpolicy_config import OnPolicyConfig

    work = Path(tempfile.mkdtemp(prefix="bench-onpolicy-"))
    teacher = build_model(work / "teacher", family="qwen", layers=3, seed=0)
    student = build_model(work / "student", family="qwen", layers=2, seed=1)
    prompts = work / "prompts.jsonl"
    problems = [f"Compute {i % 9 + 1}-{i % 5}+{i % 7}." for i in range(64)]
    prompts.write_text("".join(json.dumps({"problem": p}) + "\n" for p in problems))
    modes = {"local teacher": {"teacher": str(teacher)}}
    server = None
    if args.server:
        from bench_generate import start_server

        limits = SimpleNamespace(kv_bytes=256 * 1024**2, max_model_len=512)
        server, url = start_server(str(teacher), limits, SimpleNamespace(max_num_seqs=64, max_num_batched_tokens=4096))
        modes["teacher on a vLLM server"] = {"teacher": "teacher", "base_url": url}
    rows = []
    try:
        for label, teacher_settings in modes.items():
            config = OnPolicyConfig(student="qwen-1.5b", student_model=str(student), prompts=str(prompts),
                                    output_dir=str(work / label.replace(" ", "-")), max_new_tokens=args.new_tokens,
                                    max_steps=args.steps, batch_size=args.batch, learning_rate=1e-4, save_steps=10_000,
                                    seed=0, **teacher_settings)
            summary = run(config)
            rows.append((label, summary["onpolicy"], summary["metrics"]["train_runtime_s"]))
    finally:
        if server is not None:
            from distill.core import processes

            processes.stop(server)
    try:
        peer = trl_peer(student, teacher, problems, args, work / "trl")
    except Exception as exc:  # the peer's failure is a row, not the end of the bench
        peer = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:150]}"}

    table = Table(title=f"on-policy steps on CPU ({os.cpu_count()} cores, torch threads {__import__('torch').get_num_threads()}): "
                        f"{args.steps} steps x {args.batch} prompts, up to {args.new_tokens} new tokens")
    for column in ("teacher", "sampled tokens", "sample tok/s", "score tok/s", "update tok/s", "tok/s, whole run",
                   "share: sample / score / update", "teacher tokens read (prompt / completion)"):
        table.add_column(column, justify="left" if column == "teacher" else "right")
    for label, on, runtime in rows:
        seconds = on["seconds"]
        total = sum(seconds.values())
        speed = on["tokens_per_s"]
        table.add_row(label, f"{on['sampled_tokens']:,}", *(f"{speed[k]:,.0f}" for k in ("sample", "score", "update")),
                      f"{on['sampled_tokens'] / runtime:,.0f}",
                      " / ".join(f"{seconds[k] / total:.0%}" for k in ("sample", "score", "update")),
                      f"{on['teacher_tokens']['prompt']:,} / {on['teacher_tokens']['completion']:,}")
    if "error" in peer:
        table.add_row("TRL DistillationTrainer (local teacher)", "-", "-", "-", "-", "-", peer["error"], "-")
    else:
        table.add_row("TRL DistillationTrainer (local teacher)", f"{peer['sampled_tokens']:,}", "-", "-", "-",
                      f"{peer['sampled_tokens'] / peer['seconds']:,.0f}", "(not split)", "-")
    Console(width=220).print(table)


if __name__ == "__main__":
    main()
