"""Configuration of `distill difficulty`: which student, which prompts, how it is sampled and graded.

The student is sampled through the sampling layer (`sampling`, nested as generate and eval nest it;
its keys stay at the section's top level too: `difficulty.k`, `difficulty.temperature`), asked as
generate asks the teacher (`PromptSettings`), and graded with the verifier's options (`VerifyOptions`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from pydantic import ConfigDict, Field, model_validator

from distill.core.data import FieldMap
from distill.core.verify.options import VerifyOptions
from students.presets import STUDENTS
from teacher.prompts import PromptSettings
from teacher.sampling import Layout, NestsSampling, with_defaults

StudentSampling = with_defaults(
    "StudentSampling",
    {"model": f"The student: a preset ({', '.join(STUDENTS)}: its base model), a model folder, a `distill train` run "
              "(its final/), or a served model's name (--backend openai).",
     "n": "Samples per prompt (k): a prompt's pass rate is correct / k, so k=4 measures it in steps of 1/4, k=8 of 1/8."},
    model=None)
# A recipe's `difficulty` section may hold every sampling key at its top level, as generate's does (`k` is the layer's `n`).
LAYOUT = Layout(renames={"k": "n"})


class DifficultyConfig(NestsSampling, PromptSettings, VerifyOptions):
    """One `distill difficulty` run (the `difficulty` section of a recipe)."""

    model_config = ConfigDict(extra="forbid")
    sampling_layout: ClassVar[Layout] = LAYOUT
    panels: ClassVar[dict[str, tuple[str, ...]]] = {
        "Inputs and outputs": ("student", "prompts", "output", "samples", "fields", "split", "limit"),
        "Prompt": ("system_prompt", "prompt_template", "math_instruction", "general_cot", "general_cot_instruction", "think_prefill"),
        "Grading": ("workers", "timeout", "memory_mb", "float_rounding", "code_timeout", "code_memory_mb", "code_float_tolerance"),
    }

    prompts: str = Field(description="The training prompts with their reference answers (or code tests), in any layout "
                         "`distill generate` reads; in a run, generate's.", json_schema_extra={"flags": ["--prompts", "-p"]})
    output: str = Field(description="Per-prompt rows (JSONL), as `filter --prompt-stats` writes them: for `train --pass-rates` "
                        "and `filter --pass-rates`.", json_schema_extra={"flags": ["-o"]})
    samples: str | None = Field(default=None, description="The student's samples (JSONL), appended to: a re-run samples only "
                                "what it lacks (default: OUTPUT with .samples.jsonl).")
    fields: FieldMap = Field(default_factory=FieldMap, description="Which input columns hold the prompt, answer, id...")
    split: str = Field(default="train", description="Dataset split to read (datasets and hub ids).")
    limit: int | None = Field(default=None, ge=1, description="Use only the first N prompts.")
    student: str | None = Field(default=None, description=f"A student preset ({', '.join(STUDENTS)}) whose base model is sampled "
                                "when no model is given (in a run: train's student, unless train names its base_model).")
    workers: int = Field(default=max(1, (os.cpu_count() or 2) - 1), ge=1, description="Answer-checking worker processes.")
    sampling: StudentSampling = Field(default_factory=StudentSampling, description="The student and how it is sampled (the sampling layer).",
                                      json_schema_extra={"flatten": True, "names": {"n": "k"}, "flags": {"model": ["-m"], "n": ["-k"]}})

    @model_validator(mode="after")
    def _defaults(self) -> DifficultyConfig:
        if self.student is not None and self.student not in STUDENTS:
            raise ValueError(f"unknown student '{self.student}' (known: {', '.join(STUDENTS)})")
        if not self.sampling.model:
            if self.student is None:
                raise ValueError("the student to sample is required (a MODEL, or --student PRESET)")
            self.sampling.model = self.student  # the preset's base model (distill.difficulty.stage.student_model)
        if not self.output.endswith(".jsonl"):
            raise ValueError(f"output must end in .jsonl (per-prompt rows), got {self.output!r}")
        if self.samples is None:
            self.samples = str(Path(self.output).with_suffix(".samples.jsonl"))
        return self

    @property
    def model(self) -> str:
        return self.sampling.model
