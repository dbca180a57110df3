"""Configuration of `distill eval`: which model, which benchmarks, the R1 protocol's sampling."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from distill.core.data import FieldMap
from distill.core.r1_format import MATH_INSTRUCTION
from distill.core.verify.options import CodeOptions
from distill.evaluate.benchmarks import names_help, parse_k
from teacher import backends
from teacher.config import GpuMemoryUtilization, KvCacheMemoryBytes, MaxModelLen, MaxNumSeqs


class EvalSettings(CodeOptions):
    """How models are sampled and graded (shared by `eval` and the quickstart's comparison)."""

    model_config = ConfigDict(extra="forbid")

    k: int | str = Field(default=4, description="Samples per problem (pass@1 is their mean correctness): N, or per benchmark 'aime24=64,math500=4' (a bare N sets the rest).")
    temperature: float = Field(default=0.6, ge=0, description="Sampling temperature (R1 protocol: 0.6).")
    top_p: float = Field(default=0.95, gt=0, le=1, description="Nucleus sampling (R1 protocol: 0.95).")
    max_tokens: int = Field(default=32768, ge=1, description="Most new tokens per sample (R1 protocol: 32768).")
    backend: str = Field(default="vllm", description="vllm (local engine), openai (an OpenAI-compatible endpoint) or llamacpp (a .gguf file served by llama.cpp; the default for .gguf models).")
    base_url: str | None = Field(default=None, description="Endpoint URL for the openai backend.")
    instruction: str = Field(default=MATH_INSTRUCTION, description="Appended to every math problem on a new line (empty: none).")
    limit: int | None = Field(default=None, ge=1, description="Only the first N problems of each benchmark.")
    fields: FieldMap = Field(default_factory=FieldMap, description="Column names in benchmark files.")
    seed: int = Field(default=0, description="Sampling seed.")
    workers: int = Field(default=max(1, (os.cpu_count() or 2) - 1), ge=1, description="Answer-checking worker processes.")
    timeout: float = Field(default=10.0, gt=0, description="Seconds one math answer check may take (code tests: --code-timeout).")
    delimiters: Literal["r1", "sky-t1"] = Field(default="r1", description="Reasoning/answer tags of the completions (r1: <think>...</think>).")
    # The vLLM engine's memory (the same settings as generate's; on CPU the KV cache is sized to the run).
    max_model_len: MaxModelLen = None
    max_num_seqs: MaxNumSeqs = None
    gpu_memory_utilization: GpuMemoryUtilization = None
    kv_cache_memory_bytes: KvCacheMemoryBytes = None
    generate: dict[str, Any] = Field(default_factory=dict, description="Extra settings passed to the generate stage (engine options).")

    @field_validator("k", mode="before")
    @classmethod
    def _k(cls, value: Any) -> int | str:
        if isinstance(value, dict):  # a recipe's mapping {aime24: 64, math500: 4}
            value = ",".join(f"{name}={n}" for name, n in value.items())
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError("k must be at least 1")
            return value
        parse_k(str(value))  # NAME=N,...: checked now, read per benchmark (benchmarks.k_for)
        return str(value)

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        return backends.check_name(value)


class EvalConfig(EvalSettings):
    """One `distill eval` run (the `eval` section of a recipe)."""

    model: str = Field(description="Model folder (vllm backend) or served model name (openai backend).")
    benchmarks: list[str] = Field(min_length=1, description=f"Benchmark names: {names_help()}; or files: problem/answer, or GPQA's or LiveCodeBench's public layout.", json_schema_extra={"flags": ["--benchmark", "-b"]})
    since: str | None = Field(default="2024-08", description="LiveCodeBench: first contest month or day kept (YYYY-MM[-DD]; the R1 paper's window starts 2024-08).")
    until: str | None = Field(default="2025-01", description="LiveCodeBench: last contest month or day kept (the R1 paper's window ends 2025-01).")
    shuffle_seed: int = Field(default=0, description="GPQA: seed of the option order (recorded in summary.json).")
    student: str | None = Field(default=None, description="The R1-Distill base or student preset this model was trained from, for the published row beside it (default: read from train.json next to the model).")
    output_dir: Path | None = Field(default=None, description="Folder for per-problem results, samples, summary.json and eval_table.md (default: eval/<model name>).", json_schema_extra={"flags": ["-o"]})

    @model_validator(mode="after")
    def _defaults(self) -> EvalConfig:
        if self.model.lower().endswith(".gguf") and "backend" not in self.model_fields_set:
            self.backend = "llamacpp"  # a GGUF file is served by llama.cpp, as its users run it
        if self.output_dir is None:
            self.output_dir = Path("eval") / Path(self.model.rstrip("/")).name
        return self
