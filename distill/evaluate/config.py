"""Configuration of `distill eval`: which model, which benchmarks, the R1 protocol's sampling."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from distill.core.data import FieldMap
from distill.core.r1_format import MATH_INSTRUCTION
from distill.core.verify.options import CodeOptions
from distill.evaluate.benchmarks import names_help, parse_k
from teacher.sampling import Layout, NestsSampling, with_defaults

# The model under evaluation is sampled with R1's protocol; `model` is the evaluated model (eval
# sets it; the quickstart's comparisons sample several).
EvalSampling = with_defaults("EvalSampling", {"model": "Model folder (vllm backend), served model name (openai backend) or .gguf file."},
                             model=None)
# The recipe keys and flags eval had before the nesting. `k` stays eval's own setting (it may differ per
# benchmark): eval's sampling jobs carry their sample indices, so the layer's n is not read.
LAYOUT = Layout(merged="generate", keys=(
    "temperature", "top_p", "max_tokens", "backend", "base_url", "seed",
    "max_model_len", "max_num_seqs", "gpu_memory_utilization", "kv_cache_memory_bytes"))


class EvalSettings(NestsSampling, CodeOptions):
    """How models are sampled and graded (shared by `eval` and the quickstart's comparison)."""

    model_config = ConfigDict(extra="forbid")
    sampling_layout: ClassVar[Layout] = LAYOUT

    k: int | str = Field(default=4, description="Samples per problem (pass@1 is their mean correctness): N, or per benchmark 'aime24=64,math500=4' (a bare N sets the rest).")
    sampling: EvalSampling = Field(default_factory=EvalSampling, description="How the model is sampled (the sampling layer; R1 protocol).",
                                   # the flags eval had; the other settings through --generate or the recipe's sampling section
                                   json_schema_extra={"flatten": True, "only": ["model", *LAYOUT.keys]})
    instruction: str = Field(default=MATH_INSTRUCTION, description="Appended to every math problem on a new line (empty: none).")
    limit: int | None = Field(default=None, ge=1, description="Only the first N problems of each benchmark.")
    fields: FieldMap = Field(default_factory=FieldMap, description="Column names in benchmark files.")
    workers: int = Field(default=max(1, (os.cpu_count() or 2) - 1), ge=1, description="Answer-checking worker processes.")
    timeout: float = Field(default=10.0, gt=0, description="Seconds one math answer check may take (code tests: --code-timeout).")
    delimiters: Literal["r1", "sky-t1"] = Field(default="r1", description="Reasoning/answer tags of the completions (r1: <think>...</think>).")
    generate: dict[str, Any] = Field(default_factory=dict, exclude=True, description="Further sampling settings (engine options), "
                                     "merged into the sampling section (kept for recipes written before it).")

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


class EvalConfig(EvalSettings):
    """One `distill eval` run (the `eval` section of a recipe)."""

    sampling_layout: ClassVar[Layout] = Layout(renames=LAYOUT.renames, merged=LAYOUT.merged, keys=("model", *LAYOUT.keys))
    # fingerprints see them once given
    added: ClassVar[tuple[str, ...]] = ("since", "until", "shuffle_seed", "student", "think_budget", "answer_tokens", "answer_prefix")

    benchmarks: list[str] = Field(min_length=1, description=f"Benchmark names: {names_help()}; or files: problem/answer, or GPQA's or LiveCodeBench's public layout.", json_schema_extra={"flags": ["--benchmark", "-b"]})
    since: str | None = Field(default="2024-08", description="LiveCodeBench: first contest month or day kept (YYYY-MM[-DD]; the R1 paper's window starts 2024-08).")
    until: str | None = Field(default="2025-01", description="LiveCodeBench: last contest month or day kept (the R1 paper's window ends 2025-01).")
    shuffle_seed: int = Field(default=0, description="GPQA: seed of the option order (recorded in summary.json).")
    student: str | None = Field(default=None, description="The R1-Distill base or student preset this model was trained from, for the published row beside it (default: read from train.json next to the model).")
    think_budget: list[int] = Field(default_factory=list, description="Budget forcing (s1): also sample with the reasoning cut at each N thinking tokens "
                                    "(closed with </think> and the answer prefix, then answered); a table and a chart of accuracy against budget.")
    answer_tokens: int = Field(default=1024, ge=1, description="With --think-budget: most tokens of the answer written after the reasoning is closed.")
    answer_prefix: str = Field(default="Final Answer: ", description="With --think-budget: what follows </think> when the budget closes the reasoning "
                               "(s1's; a sample that closed it by itself goes on as it would have).")
    output_dir: Path | None = Field(default=None, description="Folder for per-problem results, samples, summary.json and eval_table.md (default: eval/<model name>).", json_schema_extra={"flags": ["-o"]})

    @field_validator("think_budget", mode="before")
    @classmethod
    def _budgets(cls, value: Any, info: ValidationInfo) -> list[int]:
        """Whole numbers of tokens >= 1, no larger than max_tokens; in increasing order (the table's and the chart's)."""
        items = [] if value is None else value.split(",") if isinstance(value, str) else value if isinstance(value, list | tuple) else [value]
        budgets = set()
        for item in items:
            text = str(item).strip()
            try:
                if isinstance(item, bool):
                    raise ValueError
                budgets.add(int(text))  # not 1.5, not "abc", not true
            except ValueError:
                raise ValueError(f"a think budget is a whole number of tokens, got {text!r}") from None
        sampling = info.data.get("sampling")
        for budget in sorted(budgets):
            if budget < 1:
                raise ValueError(f"a think budget must be at least 1 token, got {budget}")
            if sampling is not None and budget > sampling.max_tokens:
                raise ValueError(f"think budget {budget} is larger than max_tokens ({sampling.max_tokens}): raise --max-tokens or lower the budget")
        return sorted(budgets)

    @model_validator(mode="after")
    def _defaults(self) -> EvalConfig:
        if not self.sampling.model:
            raise ValueError("the model to evaluate is required (eval.model, or the MODEL argument)")
        if self.model.lower().endswith(".gguf") and "backend" not in self.sampling.model_fields_set:
            self.sampling.backend = "llamacpp"  # a GGUF file is served by llama.cpp, as its users run it
        if self.output_dir is None:
            self.output_dir = Path("eval") / Path(self.model.rstrip("/")).name
        if self.think_budget and (self.sampling.backend == "llamacpp" or (self.sampling.backend == "openai" and self.sampling.api == "chat")):
            # the answer step continues the model's own text, which a chat endpoint cannot (llama.cpp is served through one)
            raise ValueError("--think-budget needs the vllm backend, or the openai backend with api: completions")
        return self

    @property
    def model(self) -> str:
        return self.sampling.model
