"""`train.json`: what a training run records for publish, the model card and people, as one typed
model. Written by `students.train`, validated wherever it is read (`TrainManifest.read`).

Run folders written by earlier versions still read: every field has a default, unknown keys
are kept, keys read under their old names (`lr`, `max_length`), and the quantization record is
brought to one spelling (`distill.core.models`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from distill.core.config import read_old_names
from distill.core.errors import InputError
from distill.core.models import quantization_record


class TrainManifest(BaseModel):
    model_config = ConfigDict(extra="allow")
    renamed: ClassVar[dict[str, str]] = {"lr": "learning_rate", "max_length": "max_seq_length"}  # names before issue 25
    _read_old_names = model_validator(mode="before")(read_old_names)

    student: str | None = Field(default=None, description="Student preset name.")
    base_model: str | None = Field(default=None, description="Folder or hub id the student started from.")
    model_id: str | None = Field(default=None, description="The preset's base on the hub (for the card).")
    family: str | None = None
    method: str = Field(default="full", description="full, lora or qlora.")
    template: str | None = Field(default=None, description="Training chat template.")
    eos_token: str | None = None
    pad_token: str | None = None
    stop_token_ids: list[int] = Field(default_factory=list, description="Ids generation stops at.")
    quantization: dict[str, Any] | None = Field(default=None, description="QLoRA's 4-bit settings (None otherwise).")
    lora: dict[str, Any] | None = None
    config_overrides: dict[str, Any] = Field(default_factory=dict, description="Config changes publish must apply to the base (rope).")
    max_seq_length: int | None = Field(default=None, description="Longest training sequence in tokens.")
    learning_rate: float | None = None
    epochs: float | None = None
    max_steps: int | None = None
    batch_size: int | None = None
    grad_accum: int | None = None
    world_size: int = 1
    bf16: bool | None = None
    packing: bool | None = None
    loss_kernel: str | None = Field(default=None, description="The loss that ran: liger, chunked or plain.")
    sequence_parallel: int = Field(default=1, description="GPUs sharing each sequence (Ulysses).")
    data: str | None = Field(default=None, description="The training data; several sources: each with its share and counts.")
    mixture: list[dict[str, Any]] | None = Field(default=None, description="Per source: path, weight, available, used, repeated.")
    eval_data: str | None = None
    warnings: list[str] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict, description="The resolved TrainConfig.")

    @field_validator("quantization")
    @classmethod
    def _one_spelling(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return quantization_record(value) if value else None

    @field_validator("config_overrides", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return value or {}

    @classmethod
    def read(cls, path: Path) -> TrainManifest:
        """train.json at `path`, validated; InputError (file, line, field) when it is not one."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError("no train.json in the run directory", where=str(path.parent)) from None
        except json.JSONDecodeError as exc:
            raise InputError(f"malformed JSON ({exc.msg}, column {exc.colno})", where=f"{path}:{exc.lineno}") from None
        if not isinstance(data, dict):
            raise InputError("expected a JSON object", where=str(path))
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            raise InputError(error["msg"].lower(), where=str(path), field=".".join(map(str, error["loc"]))) from None

    def write(self, path: Path) -> None:
        from distill.core.data import atomic_path
        from distill.core.secrets import redact

        with atomic_path(path) as tmp:  # redacted: onpolicy's settings hold the teacher's URL, which may carry a key
            tmp.write_text(redact(json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False)) + "\n", encoding="utf-8")


def after_sft(config: Any, sft: TrainManifest | None, folder: Path, template: Any, tokenizer: Any, stops: list[int], use_bf16: bool,
              objective: str, section: dict[str, Any], metrics: dict[str, Any]) -> TrainManifest:
    """train.json of a stage that continued a student on prompts (onpolicy, grpo): the SFT run it started
    from (or the model folder), how it trained, and its own `section` under the objective's name."""
    from distill.core.config import settings

    base = sft.model_dump(mode="json") if sft else {"student": config.student, "model_id": config.student_preset.model_id,
                                                    "family": config.student_preset.family, "base_model": str(folder)}
    return TrainManifest(**{
        **base, "method": "full", "template": template.name, "eos_token": tokenizer.eos_token, "pad_token": tokenizer.pad_token,
        "stop_token_ids": stops, "learning_rate": config.learning_rate, "epochs": None, "max_steps": config.max_steps,
        "batch_size": config.batch_size, "grad_accum": config.grad_accum, "bf16": use_bf16, "packing": False,
        "data": str(config.prompts), "objective": objective, objective.replace("-", ""): section,
        "sft": {"base_model": sft.base_model, "data": sft.data, "metrics": sft.metrics} if sft else None,
        "metrics": metrics, "config": settings(config),
    })
