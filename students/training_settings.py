"""The settings both training stages share, as models: the optimizer's schedule, checkpoints and
logging, and the LoRA adapter's shape. `TrainConfig`, `OnPolicyConfig` and `GrpoConfig` are made of them (their
recipe keys and flags stay flat: `learning_rate`, `--lr`, `--save-steps`); a stage whose defaults
differ states only the difference, with `changed`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, Field, field_validator


def changed(model: type[BaseModel], name: str, **settings: Any) -> Any:
    """`model`'s field `name` with other `settings` (a default, a description); its limits and flags stay."""
    info = model.model_fields[name]
    limits = {key: value for item in info.metadata for key, value in dataclasses.asdict(item).items()}  # gt=0, ge=1, ...
    return Field(**{"default": info.default, "description": info.description, "json_schema_extra": info.json_schema_extra,
                    **limits, **settings})


def bf16_in_use(setting: bool | None) -> tuple[bool, str | None]:
    """Whether training runs in bf16, and the warning it printed when the setting was overruled. Unset: where the GPU
    supports it. Set on a CPU without bf16 instructions (AVX512-BF16, AMX): fp32 instead, since
    oneDNN then emulates bf16 and a step is ~60x slower (measured: 277 s vs 4.3 s, a 152k-vocabulary
    student on an AVX2 CPU); a CPU that has them trains in bf16 as asked."""
    import torch

    if torch.cuda.is_available():
        return (torch.cuda.is_bf16_supported() if setting is None else setting), None
    if not setting:
        return False, None
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return True, None
    from rich.console import Console

    warning = (f"bf16 asked for, but this CPU ({torch.backends.cpu.get_cpu_capability()}) has no bf16 instructions and "
               "would emulate them ~60x slower: training in fp32 (set bf16: false to silence)")
    Console(stderr=True).print(f"[yellow]warning:[/yellow] {warning}")
    return False, warning


def all_linear(value: list[str] | str) -> list[str] | str:
    """A validator's check: `--lora-targets all-linear` arrives as a one-item list; PEFT wants the string."""
    return "all-linear" if value == ["all-linear"] else value


class Schedule(BaseModel):
    """How the optimizer steps (the defaults are supervised fine-tuning's)."""

    learning_rate: float | None = Field(default=None, gt=0, description="Peak learning rate (default: the student preset's).", json_schema_extra={"flags": ["--lr"]})
    max_steps: int | None = Field(default=None, gt=0, description="Stop after this many optimizer steps (overrides epochs).")
    batch_size: int = Field(default=1, ge=1, description="Packed sequences (or padded samples) per GPU per micro-step.")
    grad_accum: int | None = Field(default=None, ge=1, description="Gradient accumulation steps (default: reach the student preset's global batch).")
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1, description="Fraction of steps with linear warmup.")
    lr_scheduler: str = Field(default="cosine", description="transformers scheduler name (cosine, linear, constant_with_warmup, ...).")
    max_grad_norm: float = Field(default=1.0, gt=0, description="Gradient clipping norm.")
    seed: int = Field(default=42, description="Seed for initialisation, data order and dropout.")
    gradient_checkpointing: bool = Field(default=True, description="Recompute activations in backward to save memory.")
    bf16: bool | None = Field(default=None, description="bf16 mixed precision (default: on where the GPU supports it; on a CPU without bf16 instructions, fp32 with a warning).")


class Checkpoints(BaseModel):
    """Checkpoints, resuming and logging."""

    save_steps: int = Field(default=200, ge=1, description="Checkpoint every N optimizer steps.")
    save_total_limit: int = Field(default=2, ge=1, description="Checkpoints kept.")
    logging_steps: int = Field(default=5, ge=1, description="Log the loss every N steps.")
    resume: bool = Field(default=False, description="Continue from the newest checkpoint in output_dir/checkpoints.")
    overwrite: bool = Field(default=False, description="Replace a finished run in output_dir.")


class LoraShape(BaseModel):
    """The adapter trained by --lora / --qlora."""

    lora_r: int = Field(default=64, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(default=128, ge=1, description="LoRA alpha (scale = alpha / r).")
    lora_dropout: float = Field(default=0.05, ge=0, lt=1, description="LoRA dropout.")
    lora_targets: list[str] | str = Field(default="all-linear", description="Modules LoRA wraps ('all-linear' or a list of names).")

    _all_linear = field_validator("lora_targets")(all_linear)


class AfterSft(Schedule, Checkpoints, LoraShape):
    """The schedule of the stages that continue an SFT student on prompts (onpolicy, grpo): a small constant
    learning rate, a fixed number of steps, a checkpoint every 50 and a log line every step."""

    learning_rate: float = changed(Schedule, "learning_rate", default=1e-6, description="Peak learning rate.")
    max_steps: int = changed(Schedule, "max_steps", default=100, description="Optimizer steps.")
    batch_size: int = changed(Schedule, "batch_size", default=4, description="Prompts sampled per micro-step.")
    grad_accum: int = changed(Schedule, "grad_accum", default=1, description="Micro-steps per optimizer step.")
    warmup_ratio: float = changed(Schedule, "warmup_ratio", default=0.0)
    lr_scheduler: str = changed(Schedule, "lr_scheduler", default="constant", description="transformers scheduler name (constant, cosine, linear, ...).")
    seed: int = changed(Schedule, "seed", description="Seed for prompt order and sampling.")
    gradient_checkpointing: bool = changed(Schedule, "gradient_checkpointing", default=False)
    save_steps: int = changed(Checkpoints, "save_steps", default=50)
    logging_steps: int = changed(Checkpoints, "logging_steps", default=1)
