"""`OnPolicyConfig`: one `distill onpolicy` run (the `onpolicy` section of a recipe).

On-policy distillation continues a student (usually the SFT run's) on its own samples: the
student writes a completion for a prompt, the teacher scores every token of it, and the student
is pulled toward the teacher's distribution at the positions it actually visits. See
students/onpolicy.py for the stage and the choices behind it.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from distill.core.config import read_old_names
from students.presets import STUDENTS, StudentPreset
from students.templates import TEMPLATES, known_template
from students.training_settings import AfterSft, changed
from teacher.sampling import Layout, NestsSampling, with_defaults

StudentSampling = with_defaults(
    "StudentSampling", {"temperature": "Student sampling temperature (the loss uses both models at 1).",
                        "max_tokens": "Longest completion the student samples."},
    model=None, n=1, temperature=1.0, top_p=1.0, max_tokens=2048)


class OnPolicyConfig(NestsSampling, AfterSft):
    """One on-policy distillation run; its schedule, checkpoints and LoRA shape are train's models, its
    student's sampling the sampling layer's."""

    model_config = ConfigDict(extra="forbid")
    sampling_layout: ClassVar[Layout] = Layout(keys=("temperature", "max_new_tokens"), renames={"max_new_tokens": "max_tokens"})
    panels: ClassVar[dict[str, tuple[str, ...]]] = {
        "Student, prompts and output": ("student", "student_model", "prompts", "field_problem", "output_dir", "template"),
        "Teacher": ("teacher", "base_url", "teacher_stop_token", "api_key_env", "request_timeout", "max_retries"),
        "Loss and sampling": ("beta", "sampling", "max_prompt_length"),
        "Schedule": ("learning_rate", "max_steps", "batch_size", "grad_accum", "warmup_ratio", "lr_scheduler",
                     "max_grad_norm", "seed", "gradient_checkpointing", "bf16"),
        "Checkpoints and logging": ("save_steps", "save_total_limit", "logging_steps", "resume", "overwrite"),
        "LoRA / QLoRA": ("method", "lora_r", "lora_alpha", "lora_dropout", "lora_targets"),
    }
    renamed: ClassVar[dict[str, str]] = {"max_length": "max_prompt_length"}  # old recipe key -> its name now
    _read_old_names = model_validator(mode="before")(read_old_names)
    _filled: set[str] = PrivateAttr(default_factory=set)  # settings the preset gave (fingerprints see them unset)

    student: str = Field(description=f"Student preset (its chat template and pad token): {', '.join(STUDENTS)}.",
                         json_schema_extra={"flags": ["-s"]})
    student_model: str | None = Field(
        default=None, description="The student to continue: a `distill train` run directory (its final/) or a model folder.")
    prompts: str | None = Field(
        default=None, description="Prompts (JSONL/Parquet/dataset): `messages` (the turns before the last assistant one) "
        "or a problem field; repeated prompts are used once.", json_schema_extra={"flags": ["--prompts", "-p"]})
    field_problem: str = Field(default="problem", description="Column holding the problem when a row has no `messages`.")
    output_dir: str | None = Field(default=None, description="Run directory: final/, train.json (with an `onpolicy` section), checkpoints/.",
                                   json_schema_extra={"flags": ["--output", "-o"]})
    template: str | None = Field(default=None, description=f"Chat template ({', '.join(TEMPLATES)}); default: the family's.")

    teacher: str | None = Field(
        default=None, description="Teacher model folder (scored in this process), or the served model's name with --base-url. "
        "It must share the student's tokenizer: the teacher scores the student's token ids.")
    base_url: str | None = Field(
        default=None, description="OpenAI-compatible vLLM server of the teacher: tokens are scored through prompt "
        "log-probabilities (/v1/completions with prompt_logprobs), which gives the sampled tokens' log-probabilities only.")
    teacher_stop_token: str | None = Field(
        default=None, description="The token the teacher ends its turn with, read in place of the student's stop token "
        "(default: found from a local teacher's chat template; with a server, the student's stop token as is).")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="Environment variable holding the server's API key (never printed).")
    request_timeout: float = Field(default=600.0, gt=0, description="Seconds per scoring request.")
    max_retries: int = Field(default=5, ge=0, description="Retries of a failed scoring request (backoff), then the run stops.")

    beta: float = Field(
        default=1.0, ge=0, le=1, description="Divergence per token: 1 = reverse KL(student||teacher), 0 = forward KL, "
        "between = generalized JSD with mixture (1-beta)*student + beta*teacher (TRL's convention). A teacher on a "
        "server supports 1 only.")
    # The student's sampling settings (the sampling layer's; the trainer samples the student in process, so
    # only these two apply). Recipe keys and flags as before: onpolicy.temperature, --max-new-tokens.
    sampling: StudentSampling = Field(default_factory=StudentSampling, description="How the student samples (the sampling layer).",
                                      json_schema_extra={"flatten": True, "only": ["temperature", "max_tokens"],
                                                         "names": {"max_tokens": "max_new_tokens"}})
    max_prompt_length: int | None = Field(default=None, ge=16, json_schema_extra={"old_flags": ["--max-length"]},
                                          description="Longest prompt in tokens (longer are skipped); default: the preset's sequence length.")

    # the schedule after SFT (students.training_settings.AfterSft), in on-policy's words
    seed: int = changed(AfterSft, "seed", description="Seed for prompt order and sampling (each step's samples are seeded by the step).")
    logging_steps: int = changed(AfterSft, "logging_steps", description="Log the loss and teacher tokens every N steps.")

    method: Literal["full", "lora", "qlora"] | None = Field(
        default=None, json_schema_extra={"switches": {"--lora": "lora", "--qlora": "qlora"}},
        description="What is trained. Default: an SFT run that trained an adapter goes on training that adapter "
        "(its method); a full run or a model folder is trained in full. lora/qlora on a full student: a new adapter on it "
        "(qlora: over its 4-bit NF4 weights); full on an adapter run: the adapter merged first, then every weight.")
    @field_validator("student")
    @classmethod
    def _known_student(cls, name: str) -> str:
        if name not in STUDENTS:
            raise ValueError(f"unknown student '{name}' (known: {', '.join(STUDENTS)})")
        return name

    _known_template = field_validator("template")(known_template)

    @model_validator(mode="after")
    def _server_is_reverse_kl(self) -> OnPolicyConfig:
        if self.base_url and self.beta != 1:
            # The server returns log p_teacher of the sampled token only; the forward KL and the JSD need the
            # teacher's whole distribution (TRL's server variant falls back to a top-1 support there).
            raise ValueError("a teacher on a server scores the sampled tokens only: beta must be 1 (reverse KL)")
        return self

    @model_validator(mode="after")
    def _preset_defaults(self) -> OnPolicyConfig:
        if self.max_prompt_length is None:
            self.__dict__["max_prompt_length"] = self.student_preset.max_length  # the field stays unset (model_fields_set)
            self._filled.add("max_prompt_length")
        return self

    @property
    def student_preset(self) -> StudentPreset:
        return STUDENTS[self.student]

    @property
    def teacher_mode(self) -> Literal["server", "local"]:
        return "server" if self.base_url else "local"
