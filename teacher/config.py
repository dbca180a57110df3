"""Configuration of `distill generate`: what to sample, from which teacher, on which backend.

Defaults follow the DeepSeek-R1 paper and DeepSeek's usage notes: temperature 0.6, top_p 0.95,
32k new tokens, no system prompt, math prompts end with the boxed-answer instruction, the
response opens with "<think>\\n", several samples per prompt. How the teacher is sampled is the
sampling layer's `SamplingConfig`, nested as `sampling`; its recipe keys and flags stay where
they were (`generate.temperature`, `generate.teacher`, `--temperature`, `--teacher`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ConfigDict, Field, field_validator

from distill.core.cost import CostSettings
from distill.core.data import FieldMap
from teacher.prompts import GENERAL_COT_INSTRUCTION, PromptSettings
from teacher.sampling import Layout, NestsSampling, SamplingConfig

__all__ = ["GENERAL_COT_INSTRUCTION", "GenerateConfig"]
_SHARD = re.compile(r"^(\d+)/(\d+)$")

# Flags of the nested sampling settings, as `distill generate` spelled them before the nesting.
SAMPLING_FLAGS = {"flatten": True, "names": {"model": "teacher"}, "flags": {
    "model": ["-m"], "n": ["-n"], "tensor_parallel_size": ["--tp"], "pipeline_parallel_size": ["--pp"], "enable_prefix_caching": ["--prefix-caching"]}}


class GenerateConfig(NestsSampling, PromptSettings, CostSettings):
    """One `distill generate` run (the `generate` section of a recipe)."""

    model_config = ConfigDict(extra="forbid")
    sampling_layout: ClassVar[Layout] = Layout(renames={"teacher": "model"})
    panels: ClassVar[dict[str, tuple[str, ...]]] = {
        "Inputs and outputs": ("prompts", "output", "fields", "split", "limit", "shard", "problem_ids"),
        "Prompt": ("system_prompt", "prompt_template", "math_instruction", "general_cot", "general_cot_instruction", "think_prefill"),
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
    # --- the teacher and how it is sampled (recipe keys and flags as before: generate.teacher, --temperature)
    sampling: SamplingConfig = Field(description="The teacher and how it is sampled (the sampling layer).",
                                     json_schema_extra=SAMPLING_FLAGS)

    @field_validator("shard")
    @classmethod
    def _check_shard(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = _SHARD.match(value.strip())
        if not match or int(match.group(1)) >= int(match.group(2)):
            raise ValueError(f"shard must be 'I/N' with 0 <= I < N, got {value!r}")
        return value.strip()

    @property
    def teacher(self) -> str:
        return self.sampling.model

    def shard_index(self) -> tuple[int, int]:
        """(I, N); (0, 1) without sharding."""
        if self.shard is None:
            return 0, 1
        index, count = self.shard.split("/")
        return int(index), int(count)

    def teacher_info(self) -> dict[str, Any]:
        """What every record's `teacher` field says about how it was produced (never the key)."""
        more = {"general_cot_instruction": self.general_cot_instruction} if self.general_cot else {}
        return self.sampling.info(self.think_prefill, **more)
