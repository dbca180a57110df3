"""The one model loader: training, publishing and evaluation load causal LMs through here, so
the QLoRA quantization settings, the long-context rope override and the attention choice are
decided once.

- QLoRA: 4-bit NF4 with double quantization and bf16 compute (the QLoRA paper's settings).
  `NF4` is what train.json records; `bnb_config` reads that record back, also in the spellings
  older run folders used.
- Rope: a run that trained past the base's window raised rope_theta (see students/presets.py);
  the same override must be applied wherever the base is loaded again (publish merges an
  adapter onto the base, which holds no trace of it).
- Attention: flash-attention's varlen kernel on GPUs that have it, else `sdpa_varlen`
  (distill.core.attention), which keeps packed samples apart without a dense mask.

Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

import os
from typing import Any

# What train.json records for QLoRA, in its canonical spelling.
NF4: dict[str, Any] = {"load_in_4bit": True, "quant_type": "nf4", "double_quant": True, "compute_dtype": "bfloat16"}
# Earlier spellings of the same settings (bitsandbytes' own names, an older train.json) -> ours.
_ALIASES = {"bnb_4bit_quant_type": "quant_type", "bnb_4bit_use_double_quant": "double_quant", "use_double_quant": "double_quant",
            "bnb_4bit_compute_dtype": "compute_dtype"}


def quantization_record(recorded: dict[str, Any] | None) -> dict[str, Any]:
    """A quantization record in the canonical spelling, QLoRA defaults for what it does not say."""
    values = dict(NF4)
    for key, value in (recorded or {}).items():
        if value is not None:
            values[_ALIASES.get(key, key)] = str(value).removeprefix("torch.") if "dtype" in key else value
    return values


def bnb_config(recorded: dict[str, Any] | None = None, storage_dtype: Any = None):
    """The BitsAndBytesConfig of a quantization record (QLoRA's NF4 settings by default)."""
    import torch
    from transformers import BitsAndBytesConfig

    q = quantization_record(recorded)
    extra = {"bnb_4bit_quant_storage": storage_dtype} if storage_dtype is not None else {}
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=q["quant_type"],
        bnb_4bit_use_double_quant=bool(q["double_quant"]),
        bnb_4bit_compute_dtype=getattr(torch, q["compute_dtype"]),
        **extra,
    )


def apply_overrides(model_config: Any, overrides: dict[str, Any] | None) -> Any:
    """A transformers config with a training run's changes (rope_theta, max_position_embeddings)."""
    overrides = overrides or {}
    if "rope_theta" in overrides:
        rope = dict(getattr(model_config, "rope_parameters", None) or {"rope_type": "default"})
        rope["rope_theta"] = overrides["rope_theta"]
        model_config.rope_parameters = rope
    if "max_position_embeddings" in overrides:
        model_config.max_position_embeddings = overrides["max_position_embeddings"]
    return model_config


def load_config(path: str, overrides: dict[str, Any] | None = None):
    from transformers import AutoConfig

    return apply_overrides(AutoConfig.from_pretrained(str(path)), overrides)


def attention(requested: str | None = None) -> str:
    """flash_attention_2 on GPUs that have it (its varlen kernel takes the packed samples'
    cu_seqlens from the position ids); elsewhere `sdpa_varlen`, which runs causal sdpa per
    packed sample instead of the dense block-diagonal mask stock "sdpa" builds (3x slower than
    padding on CPU)."""
    from distill.core.attention import register

    register()  # a registered name is needed even when chosen explicitly
    if requested:
        return requested
    import importlib.util

    import torch

    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa_varlen"


def local_device():
    """This process's device for a quantized load: its GPU under a launcher, else the CPU."""
    import torch

    return int(os.environ.get("LOCAL_RANK", "0")) if torch.cuda.is_available() else "cpu"


def torch_dtype(name: Any):
    """'auto', a dtype name ('bfloat16') or a torch dtype, as from_pretrained takes it."""
    import torch

    if name is None or name == "auto" or isinstance(name, torch.dtype):
        return name or "auto"
    return getattr(torch, str(name).removeprefix("torch."))


def load_causal_lm(path: str, *, overrides: dict[str, Any] | None = None, dtype: Any = "auto",
                   quantization: dict[str, Any] | None = None, attn: str | None = None, training: bool = False):
    """A causal LM from a folder or hub id, with the run's config changes, quantized if asked.

    training: no KV cache (a cache hides the packed-sample boundaries from the mask builder:
    masking_utils only derives them without one) and the attention implementation chosen here.
    """
    from transformers import AutoModelForCausalLM

    model_config = load_config(path, overrides)
    kwargs: dict[str, Any] = {"config": model_config, "dtype": torch_dtype(dtype)}
    if training:
        model_config.use_cache = False
        kwargs["attn_implementation"] = attention(attn)
    elif attn:
        kwargs["attn_implementation"] = attention(attn)
    if quantization is not None:
        storage = kwargs["dtype"] if training and kwargs["dtype"] != "auto" else None  # lets ZeRO-3/FSDP shard the 4-bit weights
        kwargs["quantization_config"] = bnb_config(quantization, storage)
        kwargs["device_map"] = {"": local_device()}
    return AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
