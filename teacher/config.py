"""Configuration of `distill generate`: what to sample, from which teacher, on which backend.

Defaults follow the DeepSeek-R1 paper and DeepSeek's usage notes: temperature 0.6, top_p 0.95,
32k new tokens, no system prompt, math prompts end with the boxed-answer instruction, the
response opens with "<think>\\n", several samples per prompt.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator

from distill.core.cost import CostSettings
from distill.core.data import FieldMap
from distill.core.r1_format import MATH_INSTRUCTION
from distill.core.secrets import public_url
from teacher import backends

# A non-reasoning model (R1 used DeepSeek-V3) writes a chain of thought only when asked, in the
# R1 form the filter and the students expect.
GENERAL_COT_INSTRUCTION = ("Before answering, think the request through step by step inside <think> and </think> tags; "
                           "then write your answer after </think>.")
_SHARD = re.compile(r"^(\d+)/(\d+)$")

# The vLLM engine's memory settings, shared with `distill eval` (which samples through this stage).
MaxModelLen = Annotated[int | None, Field(ge=16, description="Context length (prompt + completion); default: the model's.")]
MaxNumSeqs = Annotated[int | None, Field(ge=1, description="Most sequences vLLM runs at once (default: vLLM's, 256 on CPU).")]
GpuMemoryUtilization = Annotated[float | None, Field(
    gt=0, le=1, description="Share of GPU memory vLLM may use (default 0.9). On CPU vLLM reads it as a share of all memory: "
    "leave it unset there and the KV cache is sized to the run.")]
KvCacheMemoryBytes = Annotated[int | None, Field(
    ge=1, description="KV cache size in bytes (overrides gpu_memory_utilization). Unset on CPU: max_model_len x max_num_seqs "
    "x the model's cache bytes per token, within half of the available memory.")]
MEMORY_FIELDS = ("max_model_len", "max_num_seqs", "gpu_memory_utilization", "kv_cache_memory_bytes")


class GenerateConfig(CostSettings):
    """One `distill generate` run (the `generate` section of a recipe)."""

    model_config = ConfigDict(extra="forbid")
    panels: ClassVar[dict[str, tuple[str, ...]]] = {
        "Inputs and outputs": ("prompts", "output", "fields", "split", "limit", "shard", "problem_ids"),
        "Teacher and sampling": ("teacher", "backend", "n", "temperature", "top_p", "max_tokens", "seed", "logprobs"),
        "Prompt": ("system_prompt", "prompt_template", "math_instruction", "general_cot", "general_cot_instruction", "think_prefill"),
        "vLLM engine (--backend vllm)": ("tokenizer", "tensor_parallel_size", "pipeline_parallel_size", "distributed_executor_backend",
                                         "max_model_len", "gpu_memory_utilization", "kv_cache_memory_bytes", "dtype", "quantization",
                                         "enable_prefix_caching", "enforce_eager", "max_num_seqs", "trust_remote_code", "reproducible",
                                         "engine_kwargs", "max_pending"),
        "Endpoint (--backend openai)": ("base_url", "api_key_env", "api", "concurrency", "request_timeout", "max_retries",
                                        "retry_base_delay", "retry_max_delay", "request_seed", "extra_body"),
        "Cost and budget": ("price_in", "price_out", "budget", "budget_tokens"),
    }

    # --- inputs and outputs
    prompts: str = Field(description="Prompts: JSONL, JSON, Parquet, a saved dataset folder or a hub id.")
    output: Path = Field(description="Output JSONL of trace records; appended to, so a re-run resumes.", json_schema_extra={"flags": ["-o"]})
    fields: FieldMap = Field(default_factory=FieldMap, description="Which input columns hold the prompt, answer, id...")
    split: str = Field(default="train", description="Dataset split to read (datasets and hub ids).")
    limit: int | None = Field(default=None, ge=1, description="Use only the first N prompts (after sharding).")
    shard: str | None = Field(
        default=None, description="'I/N': take every N-th prompt starting at I (0-based); one process per shard."
    )
    problem_ids: str | None = Field(
        default=None, description="A file of problem ids, one per line: sample only these prompts (the rejection loop's resampling)."
    )

    # --- teacher and sampling
    teacher: str = Field(description="Model path or hub id (vllm), or the served model name (openai).", json_schema_extra={"flags": ["-m"]})
    backend: str = Field(default="vllm", description="vllm (in-process engine), openai (any OpenAI-compatible endpoint) or llamacpp (a .gguf file served by llama.cpp): a module of teacher/backends.")
    n: int = Field(default=4, ge=1, description="Samples per prompt.", json_schema_extra={"flags": ["-n"]})
    temperature: float = Field(default=0.6, ge=0, description="Sampling temperature (R1: 0.6).")
    top_p: float = Field(default=0.95, gt=0, le=1, description="Nucleus sampling (R1: 0.95).")
    max_tokens: int = Field(default=32768, ge=1, description="Most new tokens per sample (R1: 32768).")
    seed: int | None = Field(default=0, description="Engine seed (vllm); sent per request to endpoints only when request_seed is set.")
    logprobs: int = Field(
        default=0, ge=0, le=1000,
        description="Record, per generated token, the teacher's token id and its top-K token log-probabilities (for "
        "`train --objective kd`) in OUTPUT's .logprobs side file; 0: off. vLLM servers return at most 20.",
    )

    # --- prompt
    system_prompt: str | None = Field(default=None, description="System message; R1 recommends none (instructions go in the user turn).")
    prompt_template: str = Field(default="{problem}", description="User turn; '{problem}' is replaced by the prompt text.")
    math_instruction: str | None = Field(
        default=MATH_INSTRUCTION, description="Appended (on a new line) to math prompts; empty or null to leave them as they are."
    )
    general_cot: bool = Field(
        default=False, description="Ask for a chain of thought before the answer on general (non-reasoning) prompts too, as R1 "
                                   "prompted DeepSeek-V3 (default: general prompts are asked as they are, answered without one).")
    general_cot_instruction: str = Field(
        default=GENERAL_COT_INSTRUCTION, description="With general_cot: appended (on a new line) to general prompts.")
    think_prefill: str = Field(
        default="<think>\n", description="Opens the response (unless the chat template already does); restored in every completion."
    )

    # --- vllm engine
    tokenizer: str | None = Field(default=None, description="Tokenizer path or id (default: the teacher's).")
    tensor_parallel_size: int = Field(default=1, ge=1, description="GPUs per model replica, splitting every layer.", json_schema_extra={"flags": ["--tp"]})
    pipeline_parallel_size: int = Field(default=1, ge=1, description="Pipeline stages (layers split across GPUs or nodes).", json_schema_extra={"flags": ["--pp"]})
    distributed_executor_backend: Literal["mp", "ray"] | None = Field(
        default=None, description="'ray' to span several nodes (start a Ray cluster first); default: vLLM's choice."
    )
    max_model_len: MaxModelLen = None
    gpu_memory_utilization: GpuMemoryUtilization = None
    kv_cache_memory_bytes: KvCacheMemoryBytes = None
    dtype: str = Field(default="auto", description="Weights dtype: auto, bfloat16, float16, float32.")
    quantization: str | None = Field(default=None, description="vLLM quantization method (awq, gptq, fp8...).")
    enable_prefix_caching: bool | None = Field(default=None, description="Share the prompt's KV cache between samples (default: vLLM's).", json_schema_extra={"flags": ["--prefix-caching"]})
    enforce_eager: bool = Field(default=False, description="Disable CUDA graphs (less memory, slower).")
    max_num_seqs: MaxNumSeqs = None
    trust_remote_code: bool = Field(default=False, description="Allow model code from the model repository.")
    reproducible: bool = Field(
        default=False,
        description="Run vLLM's engine core in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0, vLLM's documented switch) so "
        "batches, and with the seed the samples, are the same on every run; a little slower.",
    )
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="Further vllm.LLM / EngineArgs options, passed as they are.")
    max_pending: int = Field(
        default=4096, ge=1, description="Prompts handed to the engine ahead of the results (keeps its scheduler full, memory bounded)."
    )

    # --- openai-compatible endpoint
    base_url: str | None = Field(default=None, description="Endpoint root, e.g. http://127.0.0.1:8000/v1 or https://api.deepseek.com/v1.")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="Environment variable holding the API key (never printed).")
    api: Literal["chat", "completions"] = Field(
        default="chat", description="chat: /chat/completions (server's template); completions: prompt rendered here with the prefill."
    )
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

    @field_validator("shard")
    @classmethod
    def _check_shard(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = _SHARD.match(value.strip())
        if not match or int(match.group(1)) >= int(match.group(2)):
            raise ValueError(f"shard must be 'I/N' with 0 <= I < N, got {value!r}")
        return value.strip()

    @field_validator("prompt_template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        if "{problem}" not in value:
            raise ValueError("prompt_template must contain '{problem}'")
        return value

    def shard_index(self) -> tuple[int, int]:
        """(I, N); (0, 1) without sharding."""
        if self.shard is None:
            return 0, 1
        index, count = self.shard.split("/")
        return int(index), int(count)

    def teacher_info(self) -> dict[str, Any]:
        """What every record's `teacher` field says about how it was produced (never the key)."""
        info: dict[str, Any] = {
            "model": self.teacher,
            "backend": self.backend,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed if self.backend in ("vllm", "llamacpp") or self.request_seed else None,
            "think_prefill": self.think_prefill,
        }
        if self.general_cot:
            info["general_cot_instruction"] = self.general_cot_instruction
        if self.backend == "openai":
            info["base_url"] = public_url(self.base_url)  # never a key written into the URL
        if self.logprobs:
            info["logprobs"] = self.logprobs
        return info
