"""`TrainConfig`: everything `distill train` needs, as one validated model.

Unset hyperparameters fall back to the student preset (students/presets.py), so a recipe only
names what it changes; validation fills them in, so that --print-config shows what runs.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from distill.core.config import read_old_names
from distill.core.trace_layout import TraceLayout
from students.presets import STUDENTS, StudentPreset
from students.templates import TEMPLATES
from students.training_settings import Checkpoints, LoraShape, Schedule


class DataSource(BaseModel):
    """One training source of a mixture (`data: [{path: kept.jsonl, weight: 0.75}, ...]` in a recipe)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Kept traces or SFT rows (JSONL/Parquet/dataset/hub id).")
    weight: float | None = Field(default=None, gt=0, description="Share of the training set (normalised over the sources).")


def known_student(name: str) -> str:
    """A validator's check: the name of a student preset."""
    if name not in STUDENTS:
        import difflib

        close = difflib.get_close_matches(name, list(STUDENTS), n=1)
        raise ValueError(f"unknown student '{name}'" + (f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(STUDENTS)})"))
    return name


class TrainConfig(TraceLayout, Schedule, Checkpoints, LoraShape):
    """One `distill train` run (the `train` section of a recipe); `data` is read in the --preset layout.
    The schedule, checkpoints and LoRA shape are the models `onpolicy` shares (students.training_settings)."""

    model_config = ConfigDict(extra="forbid")
    panels: ClassVar[dict[str, tuple[str, ...]]] = {
        **TraceLayout.panels,
        "Student, data and output": ("student", "data", "mix", "mix_size", "order", "pass_rates", "subset", "hard_pass_rate_max", "output_dir", "method", "base_model", "template"),
        "Schedule": ("max_seq_length", "learning_rate", "epochs", "max_steps", "batch_size", "grad_accum", "warmup_ratio",
                     "lr_scheduler", "weight_decay", "max_grad_norm", "seed"),
        "Memory and speed": ("packing", "gradient_checkpointing", "bf16", "attn_implementation", "loss_kernel",
                             "loss_chunk_size", "sequence_parallel"),
        "Objective (--objective kd)": ("objective", "kd_alpha", "kd_temperature", "teacher_tokenizer"),
        "LoRA / QLoRA": ("lora_r", "lora_alpha", "lora_dropout", "lora_targets"),
        "Context window": ("extend_context", "rope_theta"),
        "Evaluation, checkpoints, logging": ("eval_fraction", "eval_data", "eval_steps", "save_steps", "save_total_limit",
                                             "logging_steps", "report_to", "resume", "overwrite", "doctor"),
        "Memory planner (--plan)": ("gpus", "gpu_memory_gib", "sharding"),
    }
    renamed: ClassVar[dict[str, str]] = {"max_length": "max_seq_length"}  # old recipe key -> its name now
    _read_old_names = model_validator(mode="before")(read_old_names)
    _filled: set[str] = PrivateAttr(default_factory=set)  # settings the preset gave (fingerprints see them unset)

    student: str = Field(description=f"Student preset: {', '.join(STUDENTS)}.", json_schema_extra={"flags": ["-s"]})
    # Optional here so that `distill train --student NAME --plan` works without data; run()
    # requires both before doing anything else.
    data: str | list[DataSource] | None = Field(
        default=None, json_schema_extra={"flags": ["-d"]},
        description="Kept traces (JSONL/Parquet/dataset/hub id) with `messages` or problem + completion, or a public trace "
                    "set in its --preset layout; repeat --data for several sources (mixed by --mix).")
    mix: list[float] | None = Field(default=None, validate_default=True, description="Shares of the training set per --data source, in the order given "
                                                              "(e.g. 0.75,0.25); default: every source once.")
    mix_size: int | None = Field(default=None, ge=1, description="Conversations in the mixed training set (default: the largest "
                                                                "that keeps the shares without repeating a source).")
    output_dir: str | None = Field(default=None, description="Run directory: final/, train.json, checkpoints/.", json_schema_extra={"flags": ["--output", "-o"]})
    method: Literal["full", "lora", "qlora"] = Field(default="full", description="full fine-tuning, LoRA or QLoRA (4-bit NF4).", json_schema_extra={"switches": {"--lora": "lora", "--qlora": "qlora"}})
    base_model: str | None = Field(default=None, description="Path or hub id overriding the student preset's base model.")
    template: str | None = Field(default=None, description=f"Training chat template ({', '.join(TEMPLATES)}); default: the family's.")

    max_seq_length: int | None = Field(default=None, ge=16, json_schema_extra={"old_flags": ["--max-length"]},
                                       description="Longest sequence in tokens; longer samples are dropped and counted (default: the student preset's).")
    epochs: float | None = Field(default=None, gt=0, description="Training epochs (default: the student preset's).")
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay.")
    packing: bool = Field(default=True, description="Padding-free best-fit packing; off = padded batches.")
    attn_implementation: str | None = Field(
        default=None,
        description="flash_attention_2, sdpa_varlen (causal sdpa per packed sample, no dense mask), sdpa or eager "
        "(default: flash_attention_2 if installed on a GPU, else sdpa_varlen).",
    )
    loss_kernel: Literal["auto", "liger", "chunked", "plain"] = Field(
        default="auto",
        description="How the loss is computed from the last hidden states: liger (Liger's fused linear cross-entropy, "
        "CUDA), chunked (students/loss.py: one chunk of logits at a time, any device), plain (transformers' loss on "
        "the full logits). auto: liger where it runs, else chunked.",
    )
    loss_chunk_size: int = Field(default=1024, ge=16, description="Tokens per chunk of logits for the chunked loss.")
    sequence_parallel: int | None = Field(
        default=None, ge=1, json_schema_extra={"flags": ["--sp"]},
        description="Ulysses sequence parallelism (DeepSpeed ALST): each sequence is split over this many GPUs "
        "(DeepSpeed, flash-attention; students/accelerate/zero3-sp.yaml). 1: off. Default: the preset's.",
    )

    objective: Literal["sft", "kd"] = Field(
        default="sft",
        description="sft: cross-entropy on the traces' text. kd: cross-entropy on the teacher's own token ids mixed with "
        "a KL divergence to its recorded top-K distribution (the data's .logprobs side file, from `generate --logprobs K`).",
    )
    kd_alpha: float = Field(default=0.5, ge=0, le=1, description="Weight of the KL term (kd): loss = (1 - a) CE + a T^2 KL.")
    kd_temperature: float = Field(default=1.0, gt=0, description="Softening temperature T of both distributions in the KL term (kd).")
    teacher_tokenizer: str | None = Field(
        default=None, description="The teacher's tokenizer, to check it against the student's (kd; default: the teacher recorded in the data)."
    )

    extend_context: bool = Field(default=True, description="Raise rope_theta when max_seq_length exceeds the base's native window (presets.py).")
    rope_theta: float | None = Field(default=None, gt=0, description="Explicit rope_theta (overrides extend_context).")

    order: Literal["shuffle", "length", "difficulty"] = Field(
        default="shuffle", description="Training order: shuffled, shortest first, or easy prompts first and hard ones last (--pass-rates).")
    pass_rates: str | None = Field(default=None, description="Per-prompt pass rates (the JSONL `filter --prompt-stats` writes) for --order difficulty and --subset hard.")
    subset: Literal["all", "hard"] = Field(default="all", description="Train on every prompt, or on the hard ones only (pass rate <= --hard-pass-rate-max; "
                                           "the `train-hard` stage of a run sets it).")
    hard_pass_rate_max: float = Field(default=0.5, ge=0, le=1, description="The hard prompts' largest pass rate (--subset hard, the `train-hard` stage).")

    eval_fraction: float = Field(default=0.02, ge=0, lt=1, description="Share of problems held out for the eval loss (0: none).")
    eval_data: str | None = Field(default=None, description="Separate eval file (instead of eval_fraction).")
    eval_steps: int | None = Field(default=None, ge=1, description="Evaluate every N steps (default: at each save and at the end).")
    report_to: Literal["none", "tensorboard", "wandb"] = Field(default="none", description="Experiment tracker.")
    doctor: bool = Field(default=True, description="Run `distill doctor`'s fast checks of the run before loading the model "
                         "(a failure stops training; --no-doctor skips them).")

    gpus: int | None = Field(default=None, ge=1, description="GPUs for the planner (default: visible GPUs or the student preset's).")
    gpu_memory_gib: float | None = Field(default=None, gt=0, description="Memory per GPU for the planner (default: detected, else 80).", json_schema_extra={"flags": ["--gpu-memory"]})
    sharding: Literal["none", "zero2", "zero3", "zero3-offload", "fsdp"] | None = Field(
        default=None, description="How states are sharded over GPUs, for the planner (default: from the student preset)."
    )

    @field_validator("student")
    @classmethod
    def _known_student(cls, name: str) -> str:
        return known_student(name)

    @field_validator("data", mode="before")
    @classmethod
    def _sources(cls, value: Any) -> Any:
        """A path stays a path; a list names several sources (one source without a weight is a path)."""
        if not isinstance(value, list):
            return value
        sources = [{"path": item} if isinstance(item, str) else item for item in value]
        if len(sources) == 1 and isinstance(sources[0], dict) and sources[0].get("weight") is None and "path" in sources[0]:
            return sources[0]["path"]
        return sources

    @field_validator("objective")
    @classmethod
    def _one_kd_source(cls, value: str, info: ValidationInfo) -> str:
        if value == "kd" and isinstance(info.data.get("data"), list) and len(info.data["data"]) > 1:
            raise ValueError("--objective kd trains on one --data source (traces with the teacher's log-probabilities)")
        return value

    @field_validator("mix")
    @classmethod
    def _shares(cls, value: list[float] | None, info: ValidationInfo) -> list[float] | None:
        data = info.data.get("data")
        if value is None:
            weights = [source.weight for source in data] if isinstance(data, list) else []
            if any(w is None for w in weights) and any(w is not None for w in weights):
                raise ValueError("some --data sources have a weight and some not")
            return value
        if not isinstance(data, list):
            raise ValueError("--mix gives shares of several --data sources; there is one")
        if len(value) != len(data):
            raise ValueError(f"{len(value)} shares for {len(data)} --data sources")
        if any(share <= 0 for share in value):
            raise ValueError("every share must be positive")
        if any(source.weight is not None for source in data):
            raise ValueError("give the shares either with --mix or as the sources' weights, not both")
        return value

    @field_validator("mix_size")
    @classmethod
    def _size_needs_shares(cls, value: int | None, info: ValidationInfo) -> int | None:
        data = info.data.get("data")
        weighted = isinstance(data, list) and (info.data.get("mix") or all(source.weight is not None for source in data))
        if value is not None and not weighted:
            raise ValueError("--mix-size needs several --data sources with shares (--mix)")
        return value

    @model_validator(mode="after")
    def _order(self) -> TrainConfig:
        for needs, flag in ((self.order == "difficulty", "--order difficulty"), (self.subset == "hard", "--subset hard")):
            if needs and not self.pass_rates:
                raise ValueError(f"{flag} needs --pass-rates FILE (per-prompt statistics: `distill filter --prompt-stats`)")
        if (self.order != "shuffle" or self.subset != "all") and self.objective == "kd":
            raise ValueError("--order and --subset choose SFT data; --objective kd trains on every record, shuffled")
        return self

    def sources(self) -> list[tuple[str, float | None]]:
        """(path, share) of every training source; shares sum to 1, or are all None (no mixture)."""
        if not isinstance(self.data, list):
            return [(self.data, None)] if self.data else []
        weights = self.mix or [source.weight for source in self.data]
        if any(w is None for w in weights):
            return [(source.path, None) for source in self.data]
        return [(source.path, w / sum(weights)) for source, w in zip(self.data, weights, strict=True)]

    @field_validator("template")
    @classmethod
    def _known_template(cls, name: str | None) -> str | None:
        if name is not None and name not in TEMPLATES:
            raise ValueError(f"unknown template '{name}' (known: {', '.join(TEMPLATES)})")
        return name

    @property
    def student_preset(self) -> StudentPreset:
        return STUDENTS[self.student]

    @model_validator(mode="after")
    def _preset_defaults(self) -> TrainConfig:
        """The student preset's sequence length, learning rate and epochs where the config names none."""
        preset = self.student_preset
        for name, default in (("max_seq_length", preset.max_length), ("learning_rate", preset.learning_rate), ("epochs", preset.epochs)):
            if getattr(self, name) is None:
                self.__dict__[name] = default  # not an assignment: the field stays unset (model_fields_set)
                self._filled.add(name)
        return self

    @property
    def sequence_parallel_degree(self) -> int:
        """--sp, else the preset's degree (the field stays None: a preset's degree may give way to one GPU)."""
        return self.sequence_parallel or self.student_preset.sequence_parallel
