"""How much memory the vLLM engine asks for, decided and checked before it starts.

On a GPU vLLM takes `gpu_memory_utilization` of the device (0.9 unless set) and that stays so.
On a CPU vLLM reads the same setting as the share of *all* the machine's memory: 90% of a
24 GiB machine for the KV cache of a 30 MB model, and a failed start when other programs hold
part of it. So on CPU, unless told otherwise, the KV cache gets what the run can use: the
context (max_model_len) x the sequences the engine runs at once (max_num_seqs) x the cache
bytes per token (from the model's config), within half of the memory available now after the
weights, and one line says what was chosen. Memory settings the machine cannot honour fail
here, in one line naming the setting to change, instead of in the engine process.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from distill.core.errors import StageError

GPU_MEMORY_UTILIZATION = 0.9  # vLLM's default, kept on GPU
CPU_MAX_NUM_SEQS = 256  # vLLM's default max_num_seqs for the offline engine on CPU (EngineArgs)
SHARE_OF_AVAILABLE = 0.5  # of MemAvailable after the weights: room for activations and everything else
# The engine options that decide the model's shape and context (the rest are the scheduler's).
_MODEL_KEYS = ("tokenizer", "trust_remote_code", "dtype", "max_model_len", "quantization", "seed", "revision",
               "code_revision", "hf_overrides", "tokenizer_mode")


def plan(teacher: str, options: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The vllm.LLM options with the memory settings decided, and the line that says so (or None)."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return {"gpu_memory_utilization": GPU_MEMORY_UTILIZATION, **options}, None
    if os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
        return options, None  # vLLM's own switch for the CPU KV cache size: the user chose
    model = _model_config(teacher, options)
    workers = options.get("tensor_parallel_size", 1) * options.get("pipeline_parallel_size", 1)
    per_token = _kv_bytes_per_token(model, options)
    tokens = model.max_model_len
    one = tokens * per_token
    available = available_memory()
    if options.get("kv_cache_memory_bytes"):
        asked = options["kv_cache_memory_bytes"]
        if asked * workers > available:
            raise StageError(f"--kv-cache-memory-bytes asks for {_size(asked * workers)} and only {_size(available)} of memory is "
                             "available: lower it, or leave it unset so that the KV cache is sized to the run")
        if asked < one:
            raise StageError(f"--kv-cache-memory-bytes {_size(asked)} holds fewer tokens than one sequence of {tokens} tokens needs "
                             f"({_size(one)}): raise it, or lower --max-model-len")
        return options, None
    if options.get("gpu_memory_utilization"):
        share = options["gpu_memory_utilization"]
        asked = int(share * _total_memory())
        if asked > available:
            raise StageError(f"--gpu-memory-utilization {share} asks for {_size(asked)} on CPU (a share of all memory) and only "
                             f"{_size(available)} is available: lower it, or leave it unset so that the KV cache is sized to the run")
        return options, None
    sequences = options.get("max_num_seqs") or CPU_MAX_NUM_SEQS
    budget = int(SHARE_OF_AVAILABLE * max(0, available - _weights_bytes(teacher)) / workers)
    if budget < one:
        raise StageError(f"not enough memory for the KV cache of one sequence of {tokens} tokens ({_size(one)}; half of what is "
                         f"available after the weights: {_size(budget)}): lower --max-model-len or free memory")
    need = sequences * one
    chosen = _round_mib(min(need, budget))
    bounded = "" if chosen >= need else (f", bounded by half of the {_size(available)} available (so it follows free memory: "
                                         "set --kv-cache-memory-bytes for runs that must repeat exactly)")
    line = (f"KV cache (vLLM on CPU): {_size(chosen)} = {min(sequences, chosen // one)} sequences x {tokens} tokens x "
            f"{_size(per_token)} per token{bounded}; --kv-cache-memory-bytes, --max-num-seqs or --max-model-len to change")
    return {**options, "kv_cache_memory_bytes": chosen}, line


def startup_failure(exc: BaseException) -> str:
    """One line for an engine that did not start: what happened and which settings to look at."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    # pydantic's wrapping of vLLM's config checks ("1 validation error for ModelConfig Value error, ..."),
    # and only the first sentence: what is wrong; the hint below says what to change.
    text = re.sub(r"^\d+ validation errors? for \w+ (Value error, )?", "", text).split(". ")[0]
    if "initialization failed" in text:  # the engine process died; its log above has the traceback
        text = "its engine process failed (the cause is in vLLM's log above)"
    lowered = text.lower()
    if "max_model_len" in lowered or "max seq len" in lowered:
        hint = "lower --max-model-len (or give the KV cache more memory)"
    elif "memory" in lowered or "kv cache" in lowered:
        hint = "lower --gpu-memory-utilization, --kv-cache-memory-bytes, --max-model-len or --max-num-seqs, or free memory"
    else:
        hint = "check the engine options (--max-model-len, --dtype, --tensor-parallel-size, memory) against the model and machine"
    return f"the vLLM engine did not start: {text[:400]}; {hint}"


def _model_config(teacher: str, options: dict[str, Any]):
    from vllm.engine.arg_utils import EngineArgs

    try:
        return EngineArgs(model=teacher, **{k: options[k] for k in _MODEL_KEYS if k in options}).create_model_config()
    except Exception as exc:  # vLLM validates the model and its context here, as the engine would
        raise StageError(startup_failure(exc)) from None


def _kv_bytes_per_token(model, options: dict[str, Any]) -> int:
    """Cache bytes one token takes in one worker: keys and values of every attention layer."""
    import torch

    cache_dtype = str(options.get("kv_cache_dtype", "auto"))
    element = 1 if cache_dtype.startswith("fp8") else torch.empty((), dtype=model.dtype).element_size()
    layers = -(-model.get_total_num_hidden_layers() // options.get("pipeline_parallel_size", 1))
    if model.use_mla:  # one compressed latent per token and layer instead of keys and values per head
        return layers * model.get_head_size() * element
    heads = max(1, model.get_total_num_kv_heads() // options.get("tensor_parallel_size", 1))
    return 2 * layers * heads * model.get_head_size() * element


def _meminfo(field: str) -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise StageError(f"/proc/meminfo has no {field}")


def available_memory() -> int:
    """Memory that can be had now without swapping (the kernel's MemAvailable)."""
    return _meminfo("MemAvailable")


def _total_memory() -> int:
    return _meminfo("MemTotal")


def _weights_bytes(teacher: str) -> int:
    """Size of a local model's weight files (0 for a hub id: not downloaded yet)."""
    folder = Path(teacher)
    if not folder.is_dir():
        return 0
    return sum(f.stat().st_size for pattern in ("*.safetensors", "*.bin", "*.pt") for f in folder.glob(pattern))


def _round_mib(value: int) -> int:
    return max(1, value // 2**20) * 2**20


def _size(value: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if value >= 100 or unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
