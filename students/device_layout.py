"""How a training run is laid out over devices: the GPUs, memory and sharding the planner assumes,
the loss kernel, and Ulysses sequence parallelism (its degree, checked before anything loads).

`distill train --plan`, `distill students` and `distill train` itself all ask here, so the plan
they print is the plan the run is checked against.
"""

from __future__ import annotations

import os
from typing import Any

from distill.core.errors import InputError
from students.config import TrainConfig
from students.planner import GIB, arch_of, estimate

# accelerate config (students/accelerate/NAME.yaml) -> how it shards states, for the planner
SHARDING_OF_CONFIG = {"ddp": "none", "fsdp2": "fsdp", "zero3-sp": "zero3"}


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def end_distributed() -> None:
    """Leave the process group together, once the command is done: a rank that exits while gloo's
    threads still run aborts ("terminate called without an active exception")."""
    import sys

    if "torch" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def plan_inputs(config: TrainConfig, base_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """GPUs, memory, sharding, loss kernel and sequence parallelism the planner assumes for this config."""
    import torch  # cheap next to a model load; needed for device facts

    from students.loss import resolve_loss
    from students.planner import check_sequence_parallel

    cuda = torch.cuda.is_available()
    gpus = config.gpus or (max(world_size(), torch.cuda.device_count()) if cuda else config.student_preset.gpus)
    memory = config.gpu_memory_gib or (torch.cuda.get_device_properties(0).total_memory / GIB if cuda else 80.0)
    sharding = config.sharding or SHARDING_OF_CONFIG.get(config.student_preset.accelerate, config.student_preset.accelerate)
    if gpus == 1 and sharding != "zero3-offload":
        sharding = "none"
    arch = arch_of(config.base_model, config.student_preset) if base_config is None else _arch(base_config)
    sp = config.sequence_parallel_degree
    problem = check_sequence_parallel(arch, sp, gpus, sharding)
    if problem and config.sequence_parallel is None:
        sp = 1  # the preset's degree does not fit these GPUs (one GPU, no DeepSpeed): each GPU takes whole sequences
    elif problem:
        raise InputError(problem, field="sequence_parallel")
    model_type = (base_config or {}).get("model_type") or {"qwen": "qwen2", "llama": "llama"}[config.student_preset.family]
    tokens = config.batch_size * config.max_seq_length
    return {"arch": arch, "gpus": gpus, "gpu_memory_gib": memory, "sharding": sharding, "tokens": tokens, "sp": sp,
            "loss": resolve_loss(config.loss_kernel, model_type), "loss_chunk": config.loss_chunk_size}


def predict(config: TrainConfig, inputs: dict[str, Any], method: str | None = None):
    """The planner's estimate for `method` (default: the config's) under `plan_inputs`."""
    return estimate(inputs["arch"], method or config.method, inputs["tokens"], inputs["gpus"], inputs["sharding"],
                    checkpointing=config.gradient_checkpointing, lora_rank=config.lora_r, loss=inputs["loss"],
                    loss_chunk=inputs["loss_chunk"], sp=inputs["sp"])


def sequence_parallel_from_launcher(config: TrainConfig) -> TrainConfig:
    """The launcher's sequence-parallel degree (an accelerate config with parallelism_config, e.g.
    students/accelerate/zero3-sp.yaml, exports it) when --sp is not given; both must agree."""
    launched = os.environ.get("PARALLELISM_CONFIG_SP_SIZE")
    if launched is None or not launched.isdigit():
        return config
    if config.sequence_parallel not in (None, int(launched)):
        raise InputError(f"--sp {config.sequence_parallel} disagrees with the accelerate config's sp_size {launched}",
                         field="sequence_parallel")
    return config.model_copy(update={"sequence_parallel": int(launched)})


def check_sequence_parallel_can_run(config: TrainConfig) -> None:
    """Ulysses runs on CUDA GPUs under DeepSpeed, with an attention that keeps packed samples apart
    after its all-to-all (DeepSpeed refuses packed rows with sdpa)."""
    import importlib.util

    import torch

    from distill.core.models import attention

    sp = config.sequence_parallel
    where = {"field": "sequence_parallel"}
    if not torch.cuda.is_available():
        raise InputError(f"--sp {sp} needs CUDA GPUs (Ulysses sequence parallelism does not run on CPU)", **where)
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() != "true" or importlib.util.find_spec("deepspeed") is None:
        raise InputError(f"--sp {sp} runs under DeepSpeed: launch with students/accelerate/zero3-sp.yaml", **where)
    if world_size() % sp:
        raise InputError(f"{world_size()} processes are not a multiple of --sp {sp}", **where)
    attn = attention(config.attn_implementation)
    if attn not in ("flash_attention_2", "flash_attention_3"):
        raise InputError(f"--sp {sp} needs flash_attention_2 or _3 for packed rows (install flash-attn), not {attn}",
                         field="attn_implementation")


def _arch(base_config: dict[str, Any]):
    from students.planner import arch_from_config

    return arch_from_config(base_config)
