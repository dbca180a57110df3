"""bench/gpu_check.py's pieces: what its child process prepares (the student, the data, the packed-sample
isolation check), the FLOPs and peak behind MFU, and the markdown table. Nothing heavy is imported at the
top: the parent process reads this before the carried wheels are installed and never touches CUDA."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

GIB = 1024**3
STUDENT = "qwen-1.5b"
# Sample lengths as shares of a micro-step: best-fit decreasing packing puts one of each in every pack, as no
# two of a kind fit in what the larger ones leave (0.55 > 1/2, 0.25 > 0.45/2, 0.15 > 0.20/2).
SHARES = (0.55, 0.25, 0.15)
LORA_RANK = 64  # distill train's default --lora-r
# Dense bf16 tensor-core peaks (the vendor's figures without sparsity), by device name.
PEAK_BF16_TFLOPS = {"H100 SXM": 989, "H100 PCIe": 756, "H100 NVL": 835, "H200": 989, "A100": 312}
WORDS = ("let", "us", "compute", "the", "sum", "of", "first", "odd", "numbers", "we", "check", "each", "term", "so",
         "that", "total", "is", "then", "wait", "verify", "again", "because", "answer", "must", "be", "square", "and",
         "equal", "to", "n", "squared", "which", "matches", "every", "case", "hence", "result", "holds")


# ---------------------------------------------------------------------------- the child process


def prepare(work: Path, smoke: bool, tokens: list[int], steps: int) -> None:
    """Build the student, write the data, check packed-sample isolation; writes work/prepare.json."""
    import torch

    from distill.quickstart.tiny import build_model
    from students.loss import liger_available
    from students.planner import arch_from_config
    from students.presets import STUDENTS

    cuda = torch.cuda.is_available()
    if smoke:
        model = build_model(work / "model", family="qwen")
    else:  # the preset's shape with the real tokenizer and vocabulary; initialised on the GPU (minutes on a CPU)
        arch = STUDENTS[STUDENT].arch
        model = build_model(work / "model", family="qwen", tokenizer="released", hidden_size=arch["hidden_size"],
                            layers=arch["num_hidden_layers"], heads=arch["num_attention_heads"], kv_heads=arch["num_key_value_heads"],
                            intermediate_size=arch["intermediate_size"], dtype="bfloat16" if cuda else "float32",
                            device="cuda" if cuda else "cpu")
    config = json.loads((model / "config.json").read_text())
    tokenizer = _tokenizer(model)
    data, lengths = {}, {}
    for size in tokens:
        data[size], lengths[size] = write_data(work / f"data-{size}.jsonl", tokenizer, size, steps)
    isolation = packed_isolation(model, cuda, (1024, 3072, 512) if cuda else (37, 20, 51))
    prepared = {
        "model": str(model), "data": data, "lengths": lengths, "isolation": isolation,
        "arch": dataclasses.asdict(arch_from_config(config)), "liger": liger_available(config["model_type"]),
        "device": {"cuda": cuda, "name": torch.cuda.get_device_name(0) if cuda else "cpu",
                   "memory_gib": round(torch.cuda.get_device_properties(0).total_memory / GIB, 1) if cuda else None},
        "versions": _versions(),
    }
    (work / "prepare.json").write_text(json.dumps(prepared, indent=2))


def _tokenizer(model: Path):
    from students.config import TrainConfig
    from students.train import load_tokenizer

    tokenizer, _ = load_tokenizer(str(model), TrainConfig(student=STUDENT, base_model=str(model)))
    return tokenizer


def _versions() -> dict[str, str | None]:
    import importlib.metadata
    import platform

    found = {"python": platform.python_version()}
    for name in ("torch", "transformers", "accelerate", "peft", "liger-kernel", "triton", "flash-attn", "pydantic"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def conversation(number: int, words: int) -> list[dict[str, str]]:
    """A reasoning-shaped conversation whose assistant turn holds `words` words."""
    thought = " ".join(WORDS[i % len(WORDS)] for i in range(words))
    return [{"role": "user", "content": f"Problem {number:04d}: what is the sum of the first {number:04d} odd numbers?"},
            {"role": "assistant", "content": f"<think>\n{thought}\n</think>\n\nThe answer is \\boxed{{{number:04d}}}."}]


def write_data(path: Path, tokenizer, capacity: int, packs: int) -> tuple[str, list[int]]:
    """`packs` x three conversations of SHARES of `capacity` tokens (counted by the training tokenizer
    and template), which `distill train` packs into `packs` identical packs (checked with its own
    packing); returns the path and every sample's length."""
    from students.dataset import best_fit_packs, tokenize

    def length(number: int, words: int) -> int:
        return len(tokenize(tokenizer, conversation(number, words))[0])

    base, cycle = length(0, 0), length(0, len(WORDS)) - length(0, 0)
    sizes = []
    for share in SHARES:
        target = int(share * capacity)
        words = max(0, (target - base) * len(WORDS) // cycle)
        while words and length(0, words) > target:
            words -= 1 + words // 200
        sizes.append(words)
    rows = [conversation(pack * len(SHARES) + index, words) for pack in range(packs) for index, words in enumerate(sizes)]
    lengths = [len(tokenize(tokenizer, messages)[0]) for messages in rows]
    shapes = {tuple(sorted(lengths[i] for i in pack)) for pack in best_fit_packs(lengths, capacity)}
    if len(best_fit_packs(lengths, capacity)) != packs or len(shapes) != 1:
        raise SystemExit(f"the data for {capacity} tokens does not pack into {packs} identical packs: {sorted(shapes)}")
    with open(path, "w", encoding="utf-8") as out:
        out.writelines(json.dumps({"messages": messages}) + "\n" for messages in rows)
    return str(path), lengths


def packed_isolation(model_dir: Path, cuda: bool, lengths: tuple[int, ...]) -> dict:
    """A packed sample's logits equal its logits alone (tests/students/test_dataset.py's check, on this
    device, through load_causal_lm's attention choice and the training collator); the control, the same
    row read as one sequence, must differ far more. In fp32, where the two agree to rounding, so that the
    check is sharp (which samples see which is the same in every dtype); flash-attention runs bf16 only."""
    import torch

    from distill.core.models import attention, load_causal_lm
    from students.dataset import collate_packed

    device = "cuda" if cuda else "cpu"
    flash = attention().startswith("flash")
    dtype = torch.bfloat16 if flash else torch.float32
    model = load_causal_lm(str(model_dir), dtype=dtype, training=True).to(device).eval()
    generator = torch.Generator().manual_seed(0)
    samples = [torch.randint(10, model.config.vocab_size - 1, (n,), generator=generator).tolist() for n in lengths]
    packed = collate_packed([{"input_ids": s, "labels": s, "position_ids": list(range(len(s)))} for s in samples])
    ids, positions = packed["input_ids"].to(device), packed["position_ids"].to(device)
    worst = control = scale = 0.0
    with torch.no_grad():
        together = model(input_ids=ids, position_ids=positions).logits[0].float()
        merged = model(input_ids=ids).logits[0].float()
        start = 0
        for sample in samples:
            alone = model(input_ids=torch.tensor([sample], device=device)).logits[0].float()
            end = start + len(sample)
            worst = max(worst, (together[start:end] - alone).abs().max().item())
            if start:  # the first sample has nothing before it: the control differs only after it
                control = max(control, (merged[start:end] - alone).abs().max().item())
            scale = max(scale, alone.abs().max().item())
            start = end
    tolerance = 0.05 if flash else 1e-3 if cuda else 1e-4  # of the largest logit: rounding differs with the row's length
    return {"attention": model.config._attn_implementation, "dtype": str(dtype).removeprefix("torch."), "lengths": list(lengths),
            "max_abs_diff": worst, "control_max_abs_diff": control, "max_abs_logit": scale, "tolerance": tolerance,
            "passed": worst <= tolerance * scale and control > 4 * worst}


# ---------------------------------------------------------------------------- the figures


def flops_per_token(arch: dict, lengths: list[int], method: str) -> float:
    """Model FLOPs per trained token (the MFU convention: gradient checkpointing's recomputation is not
    counted): 2 per weight for the forward matmuls (the LM head included, the embedding lookup not), 2 for
    the activations' gradient and, for full fine-tuning, 2 for the weights' gradient; LoRA's frozen base
    skips those, its adapters count 6 per parameter. Causal attention: QK^T and AV over len/2 keys on average,
    forward and backward: 6 x layers x hidden x len per token, weighted by the samples' lengths."""
    from students.planner import Arch

    a = Arch(**arch)
    linear = a.block_linear_params + a.vocab * a.hidden
    weights = 6 * linear if method == "full" else 4 * linear + 6 * a.lora_params(LORA_RANK)
    attention = 6 * a.layers * a.hidden * sum(n * n for n in lengths) / sum(lengths)
    return weights + attention


def peak_tflops(name: str, override: float | None = None) -> dict | None:
    """The GPU's dense bf16 peak and where it comes from; None when the name is not known."""
    if override:
        return {"tflops": override, "source": "--peak-tflops"}
    for key, variants in (("H100", ("PCIe", "NVL")), ("H200", ()), ("A100", ())):
        if key in name:
            variant = next((v for v in variants if v in name), "SXM" if key == "H100" else "")
            label = f"{key} {variant}".strip()
            return {"tflops": PEAK_BF16_TFLOPS[label], "source": f"{label} bf16 dense peak, by device name"}
    return None


def markdown(data: dict) -> str:
    """The results as a markdown table, a line on the isolation check and the conventions."""
    device = data.get("device") or {}
    versions = data.get("versions") or {}
    gpu = device.get("cuda")
    peak = data.get("peak_tflops")
    lines = [f"### distill train on {device.get('name', '?')}: {data.get('student', STUDENT)}-shaped random-weight student, "
             f"{data.get('steps', '?')} steps per run",
             "",
             f"torch {versions.get('torch')}, transformers {versions.get('transformers')}, peft {versions.get('peft')}, "
             f"liger-kernel {versions.get('liger-kernel')}, Python {versions.get('python')}; gradient checkpointing on, "
             "one packed sequence per micro-step, no gradient accumulation.",
             "",
             "| tokens/micro-step | method | loss | tokens/s | MFU | peak GiB | device GiB | planner GiB | planner error | wall s | status |",
             "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in data.get("rows", []):
        peak_bytes = row.get("peak_gpu_allocated_bytes") or row.get("peak_rss_bytes")
        measured, predicted = row.get("measured_bytes"), row.get("predicted_peak_bytes")
        cells = [f"{row['tokens']:,}", row["method"], row["loss"], _number(row.get("tokens_per_s"), "{:,.0f}"),
                 _number(row.get("mfu"), "{:.1%}"), _number(peak_bytes and peak_bytes / GIB, "{:.1f}"),
                 _number(measured and measured / GIB, "{:.1f}"), _number(predicted and predicted / GIB, "{:.1f}"),
                 _number(measured and predicted and predicted / measured - 1, "{:+.0%}"), _number(row.get("wall_s"), "{:.0f}"),
                 row["status"]]
        lines.append("| " + " | ".join(cells) + " |")
    isolation = data.get("isolation")
    if isolation:
        lines += ["", f"Packed-sample isolation ({isolation['attention']}, {isolation['dtype']}, samples of {isolation['lengths']} tokens): "
                      f"largest logit difference packed vs alone {isolation['max_abs_diff']:.3g} (largest logit "
                      f"{isolation['max_abs_logit']:.3g}, tolerance {isolation['tolerance']:g} of it); the same row read as one "
                      f"sequence differs by {isolation['control_max_abs_diff']:.3g}: **{'passed' if isolation['passed'] else 'FAILED'}**."]
    if data.get("error"):
        lines += ["", f"**{data['error']}**"]
    lines += ["", "tokens/s: after the first optimizer step (kernel compilation and the final checkpoint's save left out). "
              + ("peak GiB: torch's peak allocated; device GiB: the allocator's peak reserved plus what the device holds "
                 "outside it (CUDA context, libraries), which is what the planner's total stands for; planner error: "
                 "planner / device - 1. " if gpu else "peak GiB: the process's peak RSS (CPU; the planner predicts a GPU's). ")
              + ("MFU: model FLOPs per token (6 per weight for full, 4 per frozen weight for LoRA, the LM head included; "
                 f"causal attention; recomputation not counted) x tokens/s / {peak['tflops']:g} TFLOPS ({peak['source']})."
                 if peak else "MFU: needs a known GPU peak (--peak-tflops).")]
    if data.get("wall_s") is not None:
        lines.append(f"Whole check: {data['wall_s']:.0f} s.")
    return "\n".join(lines) + "\n"


def _number(value, form: str) -> str:
    return "-" if value is None or value is False else form.format(value)
