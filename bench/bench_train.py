"""Training benchmarks (prints tables; not a test).

1. Padding-free packing vs naive padded batches: same tiny model, same data, one epoch each.
   The data are the real traces in ../shared/data/traces (their own lengths under the tiny
   tokenizer), so the length distribution is the real one. Reports tokens/s of real tokens and
   the share of processed tokens that are real. Targets: ratio >= 1.5, packed >= 98% real.
2. Planner vs measured peak memory for one training step of a tiny model (per method and
   sequence length). CPU: peak RSS growth of a fresh process (fp32); GPU (if present): torch
   max_memory_allocated (bf16). Target: within 15%.

    .venv/bin/python bench/bench_train.py [--traces N] [--max-length L]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from transformers import TrainerCallback

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT.parent / "shared" / "data" / "traces"


def trace_lengths(model: Path, data: Path) -> list[int]:
    from students.config import TrainConfig
    from students.dataset import load_conversations, tokenize
    from students.train import load_tokenizer

    config = TrainConfig(student="qwen-1.5b", data=str(data), output_dir="-", base_model=str(model))
    tokenizer, _ = load_tokenizer(str(model), config)
    return [len(tokenize(tokenizer, messages)[0]) for messages in load_conversations(data)]


def write_trace_rows(path: Path, limit: int) -> int:
    rows = 0
    with open(path, "w", encoding="utf-8") as out:
        for file in sorted(TRACES.glob("*.jsonl")):
            for line in open(file, encoding="utf-8"):
                row = json.loads(line)
                messages = [{"role": "user", "content": row["question"]}, {"role": "assistant", "content": row["code"][0]}]
                out.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
                rows += 1
                if rows >= limit:
                    return rows
    return rows


class CountProcessed(TrainerCallback):
    """Counts every token slot the model actually processes in training (padding included),
    with a forward pre-hook on the input embeddings."""

    def __init__(self):
        self.processed = 0

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        def hook(module, inputs):
            if module.training:
                self.processed += inputs[0].numel()

        model.get_input_embeddings().register_forward_pre_hook(hook)


def padded_batch_for(lengths: list[int], max_length: int) -> int:
    """Samples per padded micro-step carrying, on average, the same real tokens as one packed
    bin of max_length tokens (the same token budget per micro-step)."""
    kept = [n for n in lengths if n <= max_length]
    return max(1, round(max_length / (sum(kept) / len(kept))))


def bench_packing(model: Path, data: Path, max_length: int, padded_batch: int, mode: str) -> dict:
    """One epoch, packed (best fit, one bin of max_length tokens per micro-step) or naive padded
    (Trainer's seeded random order, `padded_batch` samples padded to the longest of the batch)."""
    from students.config import TrainConfig
    from students.train import run

    packing = mode == "packed"
    config = TrainConfig(
        student="qwen-1.5b", data=str(data), output_dir=tempfile.mkdtemp(), base_model=str(model), max_seq_length=max_length,
        epochs=1, batch_size=1 if packing else padded_batch, grad_accum=1, learning_rate=1e-4, packing=packing,
        eval_fraction=0.0, gradient_checkpointing=False, save_steps=10**6, logging_steps=10**6,
    )
    counter = CountProcessed()
    load_before = os.getloadavg()[0]
    summary = run(config, callbacks=[counter])
    metrics = summary["metrics"]
    real = metrics["tokens_seen"]  # Trainer's non-padding token count
    elapsed = metrics["train_runtime_s"]
    return {
        "mode": "packed (best fit, sdpa_varlen)" if packing else f"padded (batch {padded_batch}, random order)",
        "samples": metrics["examples"], "dropped": metrics["dropped_too_long"], "steps": metrics["steps"],
        "real_tokens": real, "processed_tokens": counter.processed, "seconds": elapsed,
        "tokens_per_s": real / elapsed, "real_share": real / counter.processed,
        "load": f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}",
    }


MEASURE = r"""
import json, resource, sys, torch
from students.dataset import collate_packed
from students.config import TrainConfig
from students.trainer import load_model
base, method, tokens, checkpointing = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
cuda = torch.cuda.is_available()
config = TrainConfig(student="qwen-1.5b", data="-", output_dir="-", base_model=base, method=method, lora_r=16,
                     gradient_checkpointing=checkpointing, lora_dropout=0.0)
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
torch.manual_seed(0)
lengths = [tokens // 4] * 4
items = [{"input_ids": torch.randint(10, 400, (n,)).tolist(), "position_ids": list(range(n))} for n in lengths]
for item in items: item["labels"] = item["input_ids"]
batch = collate_packed(items)
if cuda:
    torch.cuda.reset_peak_memory_stats()
before = rss()
model = load_model(config, base, {}, use_bf16=cuda)
if cuda:
    model = model.to("cuda"); batch = {k: v.cuda() for k, v in batch.items()}
if checkpointing:
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
model.train()
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
for _ in range(2):
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
print(json.dumps({"peak": peak, "device": "cuda" if cuda else "cpu"}))
"""


# A fixed glibc mmap threshold: every tensor above 64 KiB is mmapped and goes back to the OS
# when freed, so the CPU peak RSS tracks live tensor bytes, as torch.cuda.max_memory_allocated
# does on a GPU. With glibc's default (a threshold that grows to 32 MiB after frees) the heap
# fragments and RSS overstates LoRA/QLoRA peaks by up to 2x (measured: 899 vs 395 MiB).
MEASURE_ENV = {"TOKENIZERS_PARALLELISM": "false", "MALLOC_MMAP_THRESHOLD_": "65536"}


def wide_vocab_model(out: Path, vocab: int) -> Path:
    """A tiny Qwen2 with a real-size vocabulary (no tokenizer needed: the step uses random ids),
    so the logits term weighs as it does on the real students."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=vocab, hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                         tie_word_embeddings=True)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    return out


def bench_planner(models: dict[str, Path], cases: list[tuple[str, str, int, bool]]) -> list[dict]:
    """Each case in a fresh process: peak memory of two full training steps against the planner."""
    from students.planner import CUDA_CONTEXT, arch_from_config, estimate

    rows = []
    for name, method, tokens, checkpointing in cases:
        model = models[name]
        arch = arch_from_config(json.loads((model / "config.json").read_text()))
        out = subprocess.run([sys.executable, "-c", MEASURE, str(model), method, str(tokens), "1" if checkpointing else "0"],
                             capture_output=True, text=True, cwd=ROOT, env={**os.environ, **MEASURE_ENV})
        if out.returncode != 0:
            print(out.stderr[-2000:])
            continue
        measured = json.loads(out.stdout.strip().splitlines()[-1])
        cuda = measured["device"] == "cuda"
        # MEASURE loads the model without students/loss.py's chunked loss: the plain loss is what it measures
        predicted = estimate(arch, method, tokens, precision="bf16" if cuda else "fp32", checkpointing=checkpointing,
                             lora_rank=16, device="cuda" if cuda else "cpu", loss="plain")
        # max_memory_allocated (GPU) and RSS growth (CPU) both exclude the CUDA context.
        total = predicted.total - (CUDA_CONTEXT if cuda else 0.0)
        rows.append({"model": name, "method": method, "tokens": tokens, "checkpointing": checkpointing,
                     "device": measured["device"], "predicted": total, "measured": measured["peak"],
                     "error": total / measured["peak"] - 1})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=int, default=96, help="Real traces to train on (packing bench).")
    parser.add_argument("--max-length", type=int, default=8192)
    parser.add_argument("--padded-batch", type=int, default=0,
                        help="Samples per padded micro-step (default: max_length / mean length, the packed token budget).")
    parser.add_argument("--repeats", type=int, default=1, help="Packed/padded pairs to run, alternating.")
    parser.add_argument("--skip-packing", action="store_true")
    parser.add_argument("--skip-planner", action="store_true")
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    from distill.quickstart.tiny import build_model

    console = Console(width=200)
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    if not args.skip_packing:
        if not TRACES.is_dir():
            sys.exit(f"real traces not found at {TRACES}")
        model = build_model(work / "tiny", family="qwen")
        data = work / "traces.jsonl"
        write_trace_rows(data, args.traces)
        padded_batch = args.padded_batch or padded_batch_for(trace_lengths(model, data), args.max_length)
        results = []
        for _ in range(args.repeats):  # alternate, so both modes see the same machine load
            for mode in ("packed", "padded"):
                results.append(bench_packing(model, data, args.max_length, padded_batch, mode))
        table = Table(title=f"Packing vs padding: tiny Qwen2, {args.traces} real traces, max_length {args.max_length}, "
                            "1 epoch each, CPU")
        columns = ("mode", "samples", "dropped", "steps", "real tokens", "processed", "real share", "seconds",
                   "real tokens/s", "load avg (1 min)")
        for column in columns:
            table.add_column(column, justify="right")
        for r in results:
            table.add_row(r["mode"], str(r["samples"]), str(r["dropped"]), str(r["steps"]), str(r["real_tokens"]),
                          str(r["processed_tokens"]), f"{r['real_share']:.1%}", f"{r['seconds']:.1f}",
                          f"{r['tokens_per_s']:.0f}", r["load"])
        console.print(table)
        for packed, padded in zip(results[0::2], results[1::2], strict=True):
            console.print(f"packed / padded real tokens/s: [bold]{packed['tokens_per_s'] / padded['tokens_per_s']:.2f}x[/bold]")
    if not args.skip_planner:
        models = {
            "h256 L4 V506": build_model(work / "mid", family="qwen", hidden_size=256, layers=4, heads=4, kv_heads=2,
                                         intermediate_size=704),
            "h256 L4 V32k": wide_vocab_model(work / "vocab", 32768),
        }
        small, wide = models
        cases = [(small, method, tokens, checkpointing) for method in ("full", "lora", "qlora")
                 for tokens, checkpointing in ((4096, False), (4096, True))]
        cases += [(wide, "full", 4096, True), (wide, "lora", 4096, False),
                  (wide, "qlora", 4096, True)]
        rows = bench_planner(models, cases)
        table = Table(title="Planner vs measured peak (two steps + AdamW; tiny Qwen2 models, LoRA r=16)")
        for column in ("model", "method", "tokens", "checkpointing", "device", "predicted", "measured", "error"):
            table.add_column(column, justify="right")
        for r in rows:
            table.add_row(r["model"], r["method"], str(r["tokens"]), "on" if r["checkpointing"] else "off", r["device"],
                          f"{r['predicted'] / 2**20:.0f} MiB", f"{r['measured'] / 2**20:.0f} MiB", f"{r['error']:+.1%}")
        console.print(table)
        worst = max(abs(r["error"]) for r in rows) if rows else float("nan")
        console.print(f"largest planner error: [bold]{worst:.1%}[/bold] (target: within 15%)")

if __name__ == "__main__":
    main()
