"""Loss and peer benchmarks (prints tables; not a test). CPU, fp32, each measurement in a fresh process.

1. Chunked vs plain loss (students/loss.py vs transformers' loss on the full logits): a tiny Qwen2
   with a real-size vocabulary (32k; hidden 256, 4 layers), packed rows of 4096 tokens, AdamW
   steps: peak RSS growth, tokens/s and the final loss of each.
2. `distill train` vs TRL's SFTTrainer (padding-free best-fit packing, assistant-only loss) on the
   same tiny model, the same real traces (../shared/data/traces) and the same training template,
   one epoch each: tokens/s of training, peak RSS growth of the process, final loss (mean of the
   last 5 logged). Target: distill >= 1.0x TRL's tokens/s at <= TRL's peak memory.

    .venv/bin/python bench/bench_loss.py [--traces N] [--max-length L] [--skip-loss] [--skip-trl]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.bench_train import MEASURE_ENV, TRACES, wide_vocab_model, write_trace_rows  # noqa: E402

LOSS_STEP = r"""
import json, resource, sys, time, torch
from students.config import TrainConfig
from students.dataset import collate_packed
from students.trainer import load_model, prepare_loss
base, kernel, tokens, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
config = TrainConfig(student="qwen-1.5b", base_model=base, loss_kernel=kernel)
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
torch.manual_seed(0)
items = [{"input_ids": torch.randint(10, 32000, (tokens // 4,)).tolist(), "position_ids": list(range(tokens // 4))} for _ in range(4)]
for item in items: item["labels"] = item["input_ids"]
batch = collate_packed(items)
before = rss()
model = load_model(config, base, {}, use_bf16=False)
ran = prepare_loss(model, config)
model.train()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
def step():
    loss = model(**batch).loss
    loss.backward(); optimizer.step(); optimizer.zero_grad(set_to_none=True)
    return loss.item()
step()
started = time.perf_counter()
for _ in range(steps): last = step()
elapsed = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
print(json.dumps({"kernel": ran, "peak": peak, "tokens_per_s": tokens * steps / elapsed, "loss": last}))
"""

DISTILL_EPOCH = r"""
import json, resource, sys
from students.config import TrainConfig
from students.train import run
base, data, out, max_length = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
config = TrainConfig(student="qwen-1.5b", data=data, output_dir=out, base_model=base, max_seq_length=max_length, epochs=1,
                     batch_size=1, grad_accum=1, learning_rate=1e-4, eval_fraction=0.0, gradient_checkpointing=False,
                     save_steps=10**6, logging_steps=1)
summary = run(config)
metrics = summary["metrics"]
losses = [loss for _, loss in metrics["train_loss_curve"]]
print(json.dumps({"tokens": metrics["tokens_seen"], "seconds": metrics["train_runtime_s"], "steps": metrics["steps"],
                  "loss": sum(losses[-5:]) / len(losses[-5:]), "loss_kernel": summary["loss_kernel"],
                  "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before}))
"""

TRL_EPOCH = r"""
import json, resource, sys, time
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
from datasets import Dataset
from transformers import AutoModelForCausalLM
from trl import SFTConfig, SFTTrainer
from students.config import TrainConfig
from students.dataset import load_conversations, tokenize
from students.train import load_tokenizer
base, data, out, max_length = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
tokenizer, _ = load_tokenizer(base, TrainConfig(student="qwen-1.5b"))  # distill's template: same text, same mask
kept = [m for m in load_conversations(data) if len(tokenize(tokenizer, m)[0]) <= max_length]  # same samples as distill
tokens = sum(len(tokenize(tokenizer, m)[0]) for m in kept)
model = AutoModelForCausalLM.from_pretrained(base, attn_implementation="sdpa", dtype="float32")
args = SFTConfig(output_dir=out, max_length=max_length, packing=True, packing_strategy="bfd", padding_free=True,
                 assistant_only_loss=True, per_device_train_batch_size=1, gradient_accumulation_steps=1,
                 num_train_epochs=1, learning_rate=1e-4, lr_scheduler_type="cosine", warmup_steps=0.03, logging_steps=1,
                 save_strategy="no", report_to=[], use_cpu=True, bf16=False, seed=42, data_seed=42,
                 dataloader_num_workers=0, gradient_checkpointing=False, disable_tqdm=True)
trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list([{"messages": m} for m in kept]),
                     processing_class=tokenizer)
started = time.perf_counter()
trainer.train()
elapsed = time.perf_counter() - started
losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
print(json.dumps({"tokens": tokens, "seconds": elapsed, "steps": trainer.state.global_step,
                  "loss": sum(losses[-5:]) / len(losses[-5:]),
                  "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before}))
"""


def fresh(script: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, **MEASURE_ENV})
    if out.returncode != 0:
        sys.exit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=int, default=96, help="Real traces for the TRL comparison.")
    parser.add_argument("--max-length", type=int, default=8192)
    parser.add_argument("--tokens", type=int, default=4096, help="Tokens per step in the loss comparison.")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--traces-dir", default=str(TRACES), help="Folder of the real trace files (*.jsonl).")
    parser.add_argument("--skip-loss", action="store_true")
    parser.add_argument("--skip-trl", action="store_true")
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    from distill.quickstart.tiny import build_model

    console = Console(width=160)
    work = Path(tempfile.mkdtemp(prefix="bench-loss-"))
    if not args.skip_loss:
        model = wide_vocab_model(work / "vocab", 32768)
        rows = [fresh(LOSS_STEP, str(model), kernel, str(args.tokens), str(args.steps)) for kernel in ("plain", "chunked")]
        table = Table(title=f"Loss on the full logits vs chunked: tiny Qwen2 (h256, 4 layers, 32k vocabulary), "
                            f"{args.tokens} tokens/step, fp32, CPU, {args.steps} AdamW steps")
        from students.planner import arch_from_config, estimate

        arch = arch_from_config(json.loads((model / "config.json").read_text()))
        for column in ("loss", "peak RSS growth", "planner", "tokens/s", "final loss"):
            table.add_column(column, justify="right")
        for r in rows:
            planned = estimate(arch, "full", args.tokens, precision="fp32", checkpointing=False, device="cpu",
                               loss=r["kernel"]).total
            table.add_row(r["kernel"], f"{r['peak'] / 2**20:.0f} MiB", f"{planned / 2**20:.0f} MiB ({planned / r['peak'] - 1:+.0%})",
                          f"{r['tokens_per_s']:.0f}", f"{r['loss']:.4f}")
        console.print(table)
        plain, chunked = rows
        console.print(f"chunked / plain: peak memory [bold]{chunked['peak'] / plain['peak']:.2f}x[/bold], "
                      f"tokens/s [bold]{chunked['tokens_per_s'] / plain['tokens_per_s']:.2f}x[/bold]")
    if not args.skip_trl:
        import bench.bench_train as shared

        shared.TRACES = Path(args.traces_dir)  # write_trace_rows reads from there
        if not shared.TRACES.is_dir():
            sys.exit(f"real traces not found at {shared.TRACES}")
        model = build_model(work / "tiny", family="qwen")
        data = work / "traces.jsonl"
        write_trace_rows(data, args.traces)
        results = {name: fresh(script, str(model), str(data), str(work / name), str(args.max_length))
                   for name, script in (("distill", DISTILL_EPOCH), ("trl", TRL_EPOCH))}
        table = Table(title=f"distill train vs TRL SFTTrainer: tiny Qwen2, {args.traces} real traces, max_length "
                            f"{args.max_length}, padding-free packing, assistant-only loss, 1 epoch, fp32, CPU")
        for column in ("trainer", "steps", "tokens", "seconds", "tokens/s", "peak RSS growth", "final loss"):
            table.add_column(column, justify="right")
        for name, r in results.items():
            label = f"distill ({r['loss_kernel']} loss, sdpa_varlen)" if name == "distill" else "TRL SFTTrainer (bfd, sdpa)"
            table.add_row(label, str(r["steps"]), str(r["tokens"]), f"{r['seconds']:.1f}",
                          f"{r['tokens'] / r['seconds']:.0f}", f"{r['peak'] / 2**20:.0f} MiB", f"{r['loss']:.4f}")
        console.print(table)
        ours, theirs = results["distill"], results["trl"]
        speed = (ours["tokens"] / ours["seconds"]) / (theirs["tokens"] / theirs["seconds"])
        console.print(f"distill / TRL: tokens/s [bold]{speed:.2f}x[/bold] (target >= 1.0), peak memory "
                      f"[bold]{ours['peak'] / theirs['peak']:.2f}x[/bold] (target <= 1.0)")


if __name__ == "__main__":
    main()
