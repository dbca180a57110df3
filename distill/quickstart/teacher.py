"""Training the quickstart's tiny teacher: plain PyTorch next-token training on the synthetic task.

The teacher is a stand-in for R1: a small Qwen2-architecture model (built by `distill.quickstart.tiny`)
that learns the task's traces, slips and language switches included, so that sampling it
with vLLM gives the pipeline realistic material to filter. A hand-written loop (no Trainer)
keeps this step independent of the `train` stage it is meant to feed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from distill.quickstart.task import Example, tokenizer_corpus

END_OF_TURN = "<｜end▁of▁sentence｜>"  # what the R1 chat template closes an assistant turn with


class TeacherSettings(BaseModel):
    """Size and training of the tiny teacher."""

    model_config = ConfigDict(extra="forbid")

    hidden_size: int = Field(default=128, description="Width; head_dim = hidden_size / heads must be >= 64 for vLLM on CPU.")
    layers: int = Field(default=3, description="Transformer blocks.")
    heads: int = Field(default=2, description="Attention heads.")
    vocab_size: int = Field(default=400, description="BPE vocabulary trained on the task text (small: near character level).")
    steps: int = Field(default=400, description="Optimizer steps.")
    batch_size: int = Field(default=32, description="Sequences per step.")
    learning_rate: float = Field(default=2e-3, description="Peak AdamW learning rate (cosine decay, short warm-up).")
    seed: int = Field(default=0, description="Seed for the weights and the batch order.")
    threads: int = Field(default=1, description="Torch CPU threads. One is fastest for a model this small, and "
                         "immune to the slow-down of oversubscribed cores on a busy machine.")


def training_text(tokenizer, example: Example) -> tuple[str, str]:
    """(prompt, completion) exactly as a chat-template user turn plus the R1 `<think>\\n` prefill."""
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": example.problem.problem}],
                                           add_generation_prompt=True, tokenize=False)
    return prompt, example.completion + END_OF_TURN


def train_teacher(examples: list[Example], out_dir: str | Path, settings: TeacherSettings,
                  progress: Callable[[int, float], None] | None = None) -> dict:
    """Build the tiny teacher under `out_dir` and train it on `examples`; returns metrics."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.quickstart.tiny import build_model

    torch.set_num_threads(settings.threads)
    out = Path(out_dir)
    build_model(out, family="qwen", corpus=tokenizer_corpus(examples), vocab_size=settings.vocab_size,
                hidden_size=settings.hidden_size, layers=settings.layers, heads=settings.heads,
                kv_heads=max(1, settings.heads // 2), intermediate_size=2 * settings.hidden_size,
                max_positions=1024, seed=settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)

    # Tokenize once; the loss covers the completion only (the prompt is given at sampling time).
    sequences: list[tuple[list[int], int]] = []
    for example in examples:
        prompt, completion = training_text(tokenizer, example)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
        sequences.append((prompt_ids + completion_ids, len(prompt_ids)))

    generator = torch.Generator().manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, settings.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, settings.steps) / settings.steps)))
    pad = tokenizer.pad_token_id
    model.train()
    started, loss_value, order = time.perf_counter(), float("nan"), torch.empty(0, dtype=torch.long)
    for step in range(settings.steps):
        if len(order) < settings.batch_size:
            order = torch.cat([order, torch.randperm(len(sequences), generator=generator)])
        batch, order = [sequences[i] for i in order[: settings.batch_size].tolist()], order[settings.batch_size:]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (ids, prompt_len) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, prompt_len: len(ids)] = torch.tensor(ids[prompt_len:])
            attention[row, : len(ids)] = 1
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = loss.item()
        if progress is not None:
            progress(step + 1, loss_value)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    parameters = sum(p.numel() for p in model.parameters())
    return {"final_loss": round(loss_value, 4), "steps": settings.steps, "parameters": parameters,
            "examples": len(examples), "seconds": round(time.perf_counter() - started, 1)}
