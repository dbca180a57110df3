"""Settings of the quickstart's own stages: `teacher` (task + tiny teacher, the recipe's `quickstart`
section), `train-unfiltered` (the control arm, the `train` section) and `compare` (the `compare`
section: how every model is evaluated for the table)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from distill.evaluate.config import EvalSettings
from distill.filters.rules.language import LanguageOptions
from distill.quickstart.teacher import TeacherSettings
from students.config import TrainConfig
from teacher.sampling import with_defaults


class StudentShape(BaseModel):
    """The untrained student: a smaller model of the same family as the teacher."""

    model_config = ConfigDict(extra="forbid")

    hidden_size: int = Field(default=128, description="Width (head_dim = hidden_size / heads must be >= 64 for vLLM on CPU).")
    layers: int = Field(default=2, description="Transformer blocks.")
    heads: int = Field(default=2, description="Attention heads.")
    seed: int = Field(default=1, description="Seed of its random initial weights.")
    tokenizer: Literal["trained", "released"] = Field(
        default="trained",
        description="trained: a small BPE trained on the task (fast, but llama.cpp's converter refuses it); released: "
        "Qwen2.5's real tokenizer and embedding size (152k tokens, slower to train; converts to GGUF).",
    )


class QuickstartConfig(BaseModel):
    """The synthetic task and the tiny teacher (the recipe's `quickstart` section)."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(default=0, description="Seed of the task generator (teacher data, prompts and held-out problems).")
    teacher_problems: int = Field(default=3000, ge=10, description="Problems (one trace each) the teacher is trained on.")
    prompts: int = Field(default=1000, ge=1, description="Fresh problems the teacher is sampled on for distillation.")
    heldout: int = Field(default=200, ge=1, description="Held-out problems every model is evaluated on.")
    wrong_rate: float = Field(default=0.15, ge=0, le=1, description="Share of teacher training traces with an arithmetic slip.")
    mixed_rate: float = Field(default=0.3, ge=0, le=1, description="Share of teacher training traces with Chinese sentences.")
    teacher: TeacherSettings = Field(default_factory=TeacherSettings, description="Tiny teacher size and training.")
    student: StudentShape = Field(default_factory=StudentShape, description="Untrained student size.")
    output_dir: str = Field(description="Where task files, the teacher (model/) and the untrained student (student-base/) go.")


class UnfilteredConfig(TrainConfig):
    """The control arm: the `train` section's settings, on as many raw traces as the filter kept."""

    traces: str = Field(description="All teacher samples (the generate stage's traces.jsonl).")
    kept: str = Field(description="The filter's kept records: only their count is used.")


class CompareConfig(EvalSettings):
    """The quickstart's final comparison: every model on the held-out problems, one table and chart."""

    teacher: str = Field(description="The tiny teacher's folder.")
    student_base: str = Field(description="The untrained student's folder.")
    filtered: str = Field(description="The student trained on filtered traces (published folder).")
    unfiltered: str = Field(description="The student trained on as many unfiltered traces (its run's final/).")
    benchmarks: list[str] = Field(min_length=1, description="Held-out problem files.")
    filter_report: str | None = Field(default=None, description="Filter report JSON (kept/rejected counts for the table's notes).")
    language: LanguageOptions = Field(default_factory=LanguageOptions, description="Language rule that defines 'mixes languages'.")
    output_dir: str = Field(description="Folder for per-model evaluations, results.json, table.md and chart.png.")

    def models(self) -> dict[str, str]:
        """Label -> folder, in table order."""
        return {"teacher": self.teacher, "student before training": self.student_base,
                "student, filtered traces": self.filtered, "student, unfiltered traces": self.unfiltered}


GgufSampling = with_defaults("GgufSampling", {"backend": "Each file is served by llama.cpp's OpenAI-compatible server."},
                             model=None, backend="llamacpp")


class QuantizedConfig(EvalSettings):
    """The deploy recipe's comparison: the published student's GGUF files, each served by llama.cpp."""

    # `model` is the folder of GGUF files here, not a sampling setting; each file is served by llama.cpp.
    sampling: GgufSampling = Field(default_factory=GgufSampling, description=EvalSettings.model_fields["sampling"].description,
                                   json_schema_extra={**EvalSettings.model_fields["sampling"].json_schema_extra,
                                                      "only": [key for key in EvalSettings.model_fields["sampling"].json_schema_extra["only"]
                                                               if key != "model"]})  # `model` is the folder of GGUF files
    model: str = Field(description="Published model folder holding the GGUF files (publish with --gguf).")
    types: list[str] = Field(default_factory=lambda: ["bf16", "q8_0", "q4_k_m"], description="GGUF types to compare, in table order.")
    benchmarks: list[str] = Field(min_length=1, description="Held-out problem files.")
    language: LanguageOptions = Field(default_factory=LanguageOptions, description="Language rule that defines 'mixes languages'.")
    output_dir: str = Field(description="Folder for per-file evaluations, results.json, table.md and chart.png.")
