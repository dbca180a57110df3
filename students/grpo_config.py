"""`GrpoConfig`: one `distill grpo` run (the `grpo` section of a recipe).

GRPO continues a student (usually the SFT run's) with reinforcement learning from R1's rule
rewards: each prompt gets `num_generations` completions, each completion a weighted sum of the
rewards below, and the policy moves toward the completions that beat their group's mean. See
students/grpo.py for the stage and students/rewards.py for the rewards.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from students.onpolicy_config import OnPolicyConfig
from students.presets import STUDENTS, StudentPreset
from students.templates import known_template
from students.training_settings import AfterSft, changed
from teacher.sampling import Layout, NestsSampling, with_defaults

REWARDS = ("accuracy", "format", "language", "length")

_RolloutDefaults = with_defaults(
    "_RolloutDefaults", {"n": "Completions per prompt (the group whose mean is the baseline; at least 2).",
                         "temperature": "Rollout sampling temperature (above 0).",
                         "max_tokens": "Longest completion; longer rollouts are cut and counted."},
    model=None, n=4, temperature=1.0, top_p=1.0, max_tokens=512)  # top_p: TRL's generation samples the full distribution


class RolloutSampling(_RolloutDefaults):
    """The rollouts' sampling settings: a group needs two completions, and rollouts are sampled."""

    @field_validator("n")
    @classmethod
    def _group(cls, n: int) -> int:
        if n < 2:
            raise ValueError("at least 2 completions per prompt: a group's mean is the baseline")
        return n

    @field_validator("temperature")
    @classmethod
    def _sampled(cls, temperature: float) -> float:
        if temperature <= 0:
            raise ValueError("rollouts are sampled: the temperature must be above 0")
        return temperature


class GrpoConfig(NestsSampling, AfterSft):
    """One GRPO run; its schedule the one after SFT (training_settings.AfterSft), its rollouts' sampling
    settings the sampling layer's (nested as `sampling`, read under their GRPO names)."""

    model_config = ConfigDict(extra="forbid")
    sampling_layout: ClassVar[Layout] = Layout(keys=("num_generations", "temperature", "max_completion_length"),
                                               renames={"num_generations": "n", "max_completion_length": "max_tokens"})
    panels: ClassVar[dict[str, tuple[str, ...]]] = {
        "Student, prompts and output": ("student", "student_model", "prompts", "output_dir", "template", "field_problem",
                                        "field_answer"),
        "Rewards": ("accuracy_weight", "format_weight", "language_weight", "length_weight", "length_buffer", "workers"),
        "Group, KL and sampling": ("sampling", "beta", "epsilon", "loss_type", "max_prompt_length", "use_vllm", "vllm_mode"),
        "Schedule": ("learning_rate", "max_steps", "batch_size", "grad_accum", "warmup_ratio", "lr_scheduler",
                     "max_grad_norm", "seed", "gradient_checkpointing", "bf16"),
        "Checkpoints and logging": ("save_steps", "save_total_limit", "logging_steps", "resume", "overwrite"),
        "LoRA / QLoRA": ("method", "lora_r", "lora_alpha", "lora_dropout", "lora_targets"),
    }

    student: str | None = Field(
        default=None, description=f"Student preset (its chat template and pad token): {', '.join(STUDENTS)}; "
        "default: the SFT run's (in a recipe: train's).", json_schema_extra={"flags": ["-s"]})
    student_model: str | None = OnPolicyConfig.model_fields["student_model"]
    prompts: str | None = Field(
        default=None, description="Problems with references (JSONL/Parquet/dataset): a problem field and an answer "
        "(or code tests); kept traces work. In a recipe: the generate stage's prompts.",
        json_schema_extra={"flags": ["--prompts", "-p"]})
    field_problem: str = Field(default="problem", description="Column holding the problem.")
    field_answer: str = Field(default="answer", description="Column holding the reference answer.")
    output_dir: str | None = Field(default=None, description="Run directory: final/, train.json, steps.jsonl, rewards.png, checkpoints/.",
                                   json_schema_extra={"flags": ["--output", "-o"]})
    template: str | None = OnPolicyConfig.model_fields["template"]

    accuracy_weight: float = Field(default=1.0, ge=0, description="Weight of the accuracy reward: 1 when the verifier passes "
                                   "the completion (the filter's checker, in worker processes), else 0. 0 switches it off.")
    format_weight: float = Field(default=0.5, ge=0, description="Weight of the format reward: 1 when the completion is in "
                                 "R1 form (the filter's format rule), else 0. 0 switches it off.")
    language_weight: float = Field(default=0.5, ge=0, description="Weight of R1's language-consistency reward: the share "
                                   "of target-language words in the reasoning (the filter's language measure). 0 switches it off.")
    length_weight: float = Field(default=0.0, ge=0, description="Weight of the overlong penalty: 0 up to the last "
                                 "length_buffer of max_completion_length, then down to -1 at the limit (DAPO's). 0 switches it off.")
    length_buffer: float = Field(default=0.25, gt=0, le=1, description="Share of max_completion_length over which the length penalty ramps.")
    workers: int = Field(default=1, ge=1, description="Worker processes grading completions (the verifier never runs in the trainer).")

    # The rollouts' sampling settings (the sampling layer's; TRL's GRPOTrainer generates the rollouts, so only
    # these three apply). Recipe keys and flags as before: grpo.num_generations, --temperature, --max-completion-length.
    sampling: RolloutSampling = Field(default_factory=RolloutSampling, description="How the rollouts are sampled (the sampling layer).",
                                      json_schema_extra={"flatten": True, "only": ["n", "temperature", "max_tokens"],
                                                         "names": {"n": "num_generations", "max_tokens": "max_completion_length"}})
    beta: float = Field(default=0.0, ge=0, description="KL coefficient to the starting student (R1 used 0.001); 0 loads no reference model.")
    epsilon: float = Field(default=0.2, gt=0, description="Clipping range of the policy ratio.")
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo"] = Field(default="dapo", description="TRL's loss aggregation (dapo: per active token).")
    max_prompt_length: int | None = Field(default=None, ge=16, description="Longest prompt in tokens (longer are skipped); default: the preset's sequence length.")
    use_vllm: bool = Field(default=False, description="Roll out with vLLM (GPU; TRL's use_vllm). Default: TRL's own generation (transformers).")
    vllm_mode: Literal["colocate", "server"] = Field(default="colocate", description="vLLM in this process (colocate) or a `trl vllm-serve` server.")

    # the schedule after SFT (students.training_settings.AfterSft), in GRPO's words
    batch_size: int = changed(AfterSft, "batch_size", description="Prompts per micro-step (each with num_generations completions).")
    logging_steps: int = changed(AfterSft, "logging_steps", description="Log, and write a steps.jsonl row, every N steps.")

    method: Literal["full", "lora", "qlora"] | None = OnPolicyConfig.model_fields["method"]

    @field_validator("student")
    @classmethod
    def _known_student(cls, name: str | None) -> str | None:
        if name is not None and name not in STUDENTS:
            raise ValueError(f"unknown student '{name}' (known: {', '.join(STUDENTS)})")
        return name

    _known_template = field_validator("template")(known_template)

    @model_validator(mode="after")
    def _some_reward(self) -> GrpoConfig:
        if not any(self.weights.values()):
            raise ValueError("every reward weight is 0: nothing to learn from")
        return self

    @property
    def num_generations(self) -> int:
        return self.sampling.n

    @property
    def temperature(self) -> float:
        return self.sampling.temperature

    @property
    def max_completion_length(self) -> int:
        return self.sampling.max_tokens

    @property
    def weights(self) -> dict[str, float]:
        """Reward name -> weight, in TRL's order of reward functions."""
        return {name: getattr(self, f"{name}_weight") for name in REWARDS}

    @property
    def student_preset(self) -> StudentPreset:
        return STUDENTS[self.student]
