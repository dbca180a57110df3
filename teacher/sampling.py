"""The sampling layer's settings: which model, on which backend, how to sample, and the backend panels.

`SamplingConfig` is nested as `sampling` in every config that samples a model (generate, eval, the
filter's judge, onpolicy). The recipe keys and flags of those configs predate the nesting, so a
parent keeps them (`NestsSampling` with its `Layout`): today's top-level keys (`generate.temperature`,
`eval.k`, `judge.settings: {...}`) move into the nested section when validated, and the parent's field says, with
`json_schema_extra={"flatten": True, "flags": {...}}`, that its flags keep their unprefixed names
(`--temperature`, not `--sampling-temperature`; see distill.core.flags). `unnest` gives the
fingerprint the shape it had before the nesting, so finished stages of a run directory stay done.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator
from pydantic.fields import FieldInfo

from distill.core.secrets import public_url
from teacher import backends


class SamplingConfig(BaseModel):
    """How one model is sampled (R1's defaults: temperature 0.6, top_p 0.95, 32k new tokens)."""

    model_config = ConfigDict(extra="forbid")
    panels: ClassVar[dict[str, tuple[str, ...]]] = {
        "Model and sampling": ("model", "backend", "n", "temperature", "top_p", "max_tokens", "seed", "stop", "logprobs"),
        "vLLM engine (--backend vllm)": ("tokenizer", "tensor_parallel_size", "pipeline_parallel_size", "distributed_executor_backend",
                                         "max_model_len", "gpu_memory_utilization", "kv_cache_memory_bytes", "dtype", "quantization",
                                         "enable_prefix_caching", "enforce_eager", "max_num_seqs", "trust_remote_code", "reproducible",
                                         "engine_kwargs", "max_pending"),
        "Endpoint (--backend openai; llamacpp serves through it)": (
            "base_url", "api_key_env", "api", "concurrency", "request_timeout", "max_retries", "retry_base_delay", "retry_max_delay",
            "request_seed", "extra_body"),
    }

    # --- model and sampling
    model: str = Field(description="Model path or hub id (vllm), the served model name (openai), or a .gguf file (llamacpp).")
    backend: str = Field(default="vllm", description="vllm (in-process engine), openai (any OpenAI-compatible endpoint) or llamacpp (a .gguf file served by llama.cpp): a module of teacher/backends.")
    n: int = Field(default=4, ge=1, description="Samples per prompt.")
    temperature: float = Field(default=0.6, ge=0, description="Sampling temperature (R1: 0.6).")
    top_p: float = Field(default=0.95, gt=0, le=1, description="Nucleus sampling (R1: 0.95).")
    max_tokens: int = Field(default=32768, ge=1, description="Most new tokens per sample (R1: 32768).")
    seed: int | None = Field(default=0, description="Engine seed (vllm, llamacpp); sent per request to endpoints only when request_seed is set.")
    stop: list[str] | None = Field(default=None, description="Strings that end a sample (not included in it); default: none, the model's end of turn.")
    logprobs: int = Field(
        default=0, ge=0, le=1000,
        description="Record, per generated token, the model's token id and its top-K token log-probabilities (for "
        "`train --objective kd`); 0: off. vLLM servers return at most 20.",
    )

    # --- vllm engine (llamacpp reads max_model_len as its context and engine_kwargs as server flags)
    tokenizer: str | None = Field(default=None, description="Tokenizer path or id (default: the model's).")
    tensor_parallel_size: int = Field(default=1, ge=1, description="GPUs per model replica, splitting every layer.")
    pipeline_parallel_size: int = Field(default=1, ge=1, description="Pipeline stages (layers split across GPUs or nodes).")
    distributed_executor_backend: Literal["mp", "ray"] | None = Field(
        default=None, description="'ray' to span several nodes (start a Ray cluster first); default: vLLM's choice.")
    max_model_len: int | None = Field(default=None, ge=16, description="Context length (prompt + completion); default: the model's.")
    gpu_memory_utilization: float | None = Field(
        default=None, gt=0, le=1, description="Share of GPU memory vLLM may use (default 0.9). On CPU vLLM reads it as a share of all "
        "memory: leave it unset there and the KV cache is sized to the run.")
    kv_cache_memory_bytes: int | None = Field(
        default=None, ge=1, description="KV cache size in bytes (overrides gpu_memory_utilization). Unset on CPU: max_model_len x "
        "max_num_seqs x the model's cache bytes per token, within half of the available memory.")
    dtype: str = Field(default="auto", description="Weights dtype: auto, bfloat16, float16, float32.")
    quantization: str | None = Field(default=None, description="vLLM quantization method (awq, gptq, fp8...).")
    enable_prefix_caching: bool | None = Field(default=None, description="Share the prompt's KV cache between samples (default: vLLM's).")
    enforce_eager: bool = Field(default=False, description="Disable CUDA graphs (less memory, slower).")
    max_num_seqs: int | None = Field(default=None, ge=1, description="Most sequences vLLM runs at once (default: vLLM's, 256 on CPU).")
    trust_remote_code: bool = Field(default=False, description="Allow model code from the model repository.")
    reproducible: bool = Field(
        default=False, description="Run vLLM's engine core in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0, vLLM's documented switch) "
        "so batches, and with the seed the samples, are the same on every run; a little slower.")
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="Further vllm.LLM / EngineArgs options (llamacpp: server flags), passed as they are.")
    max_pending: int = Field(default=4096, ge=1, description="Prompts handed to the engine ahead of the results (keeps its scheduler full, memory bounded).")

    # --- openai-compatible endpoint
    base_url: str | None = Field(default=None, description="Endpoint root, e.g. http://127.0.0.1:8000/v1 or https://api.deepseek.com/v1.")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="Environment variable holding the API key (never printed).")
    api: Literal["chat", "completions"] = Field(
        default="chat", description="chat: /chat/completions (server's template); completions: prompt rendered here with the prefill.")
    concurrency: int = Field(default=64, ge=1, le=4096, description="Requests in flight.")
    request_timeout: float = Field(default=1800.0, gt=0, description="Seconds one request may take (long CoT takes minutes).")
    max_retries: int = Field(default=8, ge=0, description="Retries per request on 429, 5xx, timeouts and dropped connections.")
    retry_base_delay: float = Field(default=1.0, ge=0, description="First backoff delay in seconds (doubles each retry, with jitter).")
    retry_max_delay: float = Field(default=60.0, ge=0, description="Longest backoff delay in seconds (Retry-After is honoured up to 5 min).")
    request_seed: bool = Field(default=False, description="Send seed + sample index with each request (servers that support it).")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="Extra JSON fields for every request (e.g. top_k, min_p).")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        return backends.check_name(value)

    def info(self, prefill: str, **more: Any) -> dict[str, Any]:
        """What every record's `teacher` field says about how it was sampled (never the key)."""
        info: dict[str, Any] = {
            "model": self.model, "backend": self.backend, "temperature": self.temperature, "top_p": self.top_p,
            "max_tokens": self.max_tokens, "seed": self.seed if self.backend in ("vllm", "llamacpp") or self.request_seed else None,
            "think_prefill": prefill, **more,
        }
        if self.backend == "openai":
            info["base_url"] = public_url(self.base_url)  # never a key written into the URL
        if self.logprobs:
            info["logprobs"] = self.logprobs
        if self.stop:
            info["stop"] = self.stop
        return info



def with_defaults(name: str, descriptions: dict[str, str] | None = None, **defaults: Any) -> type[SamplingConfig]:
    """A SamplingConfig whose defaults (and, where given, help) suit one stage: the judge samples once at
    temperature 0, the student on-policy at temperature 1. Same fields, same validation."""
    fields: dict[str, Any] = {}
    for field, info in SamplingConfig.model_fields.items():
        if field in defaults or field in (descriptions or {}):
            changes: dict[str, Any] = {}
            annotation = info.annotation
            if field in defaults:
                changes["default"] = defaults[field]
                annotation = annotation | None if defaults[field] is None else annotation
            if field in (descriptions or {}):
                changes["description"] = descriptions[field]
            fields[field] = (annotation, FieldInfo.merge_field_infos(info, **changes))
    module = sys._getframe(1).f_globals["__name__"]  # the caller's module names it at its top level: the class pickles (filter workers)
    return create_model(name, __base__=SamplingConfig, __doc__=SamplingConfig.__doc__, __module__=module, **fields)


@dataclass(frozen=True)
class Layout:
    """Where a parent config kept its sampling settings before the nesting (its recipe keys and flags)."""

    renames: dict[str, str] = dataclass_field(default_factory=dict)  # old key -> sampling key (`teacher` -> `model`, `k` -> `n`)
    keys: tuple[str, ...] | None = None  # the sampling keys the parent had at its top level, old names (None: all)
    merged: str | None = None  # the parent's old mapping of further sampling settings (`eval.generate`, `judge.settings`)

    def old_names(self) -> dict[str, str]:
        """old key -> sampling key."""
        if self.keys is not None:
            return {key: self.renames.get(key, key) for key in self.keys}
        return {key: key for key in SamplingConfig.model_fields if key not in self.renames.values()} | self.renames


class NestsSampling(BaseModel):
    """A config with a nested `sampling` section that still reads the recipe keys it had before."""

    sampling_layout: ClassVar[Layout] = Layout()

    @model_validator(mode="before")
    @classmethod
    def _nest_sampling(cls, values: Any) -> Any:
        return nest(values, cls.sampling_layout)

    def fold(self, data: dict[str, Any]) -> dict[str, Any]:
        """This config's JSON dump in the shape it had before the nesting (distill.core.config.folded_dump):
        the fingerprint of an unchanged recipe stays what it was, so finished stages stay done."""
        return unnest(data, self, self.sampling_layout)


def nest(values: Any, layout: Layout) -> Any:
    """Recipe values with the old top-level sampling keys moved into `sampling`, and the old mapping of
    further settings merged in (it wins, as it did). A key given both ways (a recipe's old key and a flag,
    which is nested): the nested one wins."""
    if not isinstance(values, dict) or not isinstance(values.get("sampling") or {}, dict):
        return values  # not a mapping: validation says so
    values = dict(values)
    nested = dict(values.get("sampling") or {})
    for old, new in layout.old_names().items():
        if old in values:  # a flag (given nested) wins over the recipe's old key, as flags do
            value = values.pop(old)
            nested.setdefault(new, value)
    if layout.merged and isinstance(values.get(layout.merged), dict):
        nested.update(values[layout.merged])  # the mapping stays as given (out of the dump): the fingerprint reads it
    if nested:
        values["sampling"] = nested
    return values


def unnest(data: dict[str, Any], parent: BaseModel, layout: Layout) -> dict[str, Any]:
    """`data` (the parent's JSON dump) with its `sampling` section back under the old keys: a setting
    that came from the old mapping stays there (its old key at the default), the settings that had no
    old key go to the old mapping when set, and fields new to the layer, at their default, are left out."""
    data = dict(data)
    section = data.pop("sampling", None) or {}
    sampling: BaseModel = parent.sampling
    given = dict(getattr(parent, layout.merged) or {}) if layout.merged else {}
    back = {new: old for old, new in layout.old_names().items()}
    extra: dict[str, Any] = {}
    for key, value in section.items():
        default = type(sampling).model_fields[key].get_default(call_default_factory=True)
        if key in back:
            if key in NEW_FIELDS and value == default:
                continue
            data[back[key]] = default if key in given else value
        elif key in sampling.model_fields_set and key not in given:
            extra[key] = value
    if layout.merged is not None:
        data[layout.merged] = {**extra, **given}
    return data


NEW_FIELDS = ("stop",)  # fields no config had before the layer: left out of fingerprints at their default
