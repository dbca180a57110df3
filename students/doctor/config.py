"""`DoctorConfig`: a training run's settings (the train command's flags and recipe section), or a model folder."""

from __future__ import annotations

from pydantic import Field, field_validator

from students.config import TrainConfig, known_student


class DoctorConfig(TrainConfig):
    """`distill doctor MODEL_DIR`, or `distill doctor` with the flags of `distill train` (`--recipe`: its train section)."""

    model_dir: str | None = Field(default=None, description="A model folder to check before serving it (a published student "
                                  "or any Hugging Face model folder); without it, the training run the flags describe is checked.")
    student: str | None = Field(default=None, description=TrainConfig.model_fields["student"].description, json_schema_extra={"flags": ["-s"]})
    benchmarks: list[str] = Field(default_factory=list, description="Benchmark files whose problems must not be training prompts "
                                  "(default: the recipe's eval benchmarks that are files).")

    as_json: bool = Field(default=False, description="Print the checks as JSON: {checks: [{name, status, figure, fix}]}.",
                          json_schema_extra={"flags": ["--json"]})

    @field_validator("student")
    @classmethod
    def _known_student(cls, name: str | None) -> str | None:  # replaces TrainConfig's: a model folder needs no student
        return name if name is None else known_student(name)
