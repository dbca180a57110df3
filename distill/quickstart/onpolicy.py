"""The on-policy recipe's comparison: the SFT student, and the same student continued on-policy.

`compare-onpolicy` evaluates the teacher, the SFT student (the `train` run the `onpolicy` stage
started from) and the on-policy student on the held-out problems with the quickstart's settings,
and says in code-written sentences whether the on-policy phase helped (beyond noise or not) and
what each phase cost in teacher tokens: SFT's are the tokens the teacher sampled at `generate`,
on-policy's the tokens it read to score the student's samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from distill.core.data import read_records
from distill.core.stage import Stage
from distill.filters.rules.language import LanguageOptions
from distill.quickstart.config import EvalSettings

SFT, ONPOLICY = "student, SFT", "student, SFT + on-policy"


class OnPolicyCompareConfig(EvalSettings):
    """The teacher, the SFT student and the on-policy student on the held-out problems."""

    teacher: str = Field(description="The teacher's folder.")
    onpolicy: str = Field(description="The `onpolicy` run directory (its train.json names the SFT student).")
    traces: str | None = Field(default=None, description="The teacher's samples (for the SFT phase's teacher tokens).")
    benchmarks: list[str] = Field(min_length=1, description="Held-out problem files.")
    language: LanguageOptions = Field(default_factory=LanguageOptions, description="Language rule that defines 'mixes languages'.")
    output_dir: str = Field(description="Folder for per-model evaluations, results.json, table.md and chart.png.")


def onpolicy_verdicts(rows: list[dict[str, Any]], sft_tokens: int | None, onpolicy_tokens: dict[str, int]) -> list[str]:
    """Did the on-policy phase help, beyond noise; and the teacher tokens each phase used."""
    by = {r["model"]: r for r in rows}
    sft, onp = by[SFT], by[ONPOLICY]
    diff = onp["accuracy"] - sft["accuracy"]
    noise = 2 * (onp["accuracy_stderr"] ** 2 + sft["accuracy_stderr"] ** 2) ** 0.5
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    if abs(diff) <= noise:
        head = (f"On-policy distillation did NOT measurably help here: {pct(onp['accuracy'])} after vs {pct(sft['accuracy'])} "
                f"for SFT alone (within noise, ±{100 * noise:.1f}).")
    elif diff > 0:
        head = f"On-policy distillation raised accuracy: {pct(onp['accuracy'])} vs {pct(sft['accuracy'])} for SFT alone (+{100 * diff:.1f} points)."
    else:
        head = f"On-policy distillation LOWERED accuracy: {pct(onp['accuracy'])} vs {pct(sft['accuracy'])} for SFT alone."
    lines = [head, f"Language mixing: {pct(onp['mixing'])} after on-policy vs {pct(sft['mixing'])} after SFT alone."]
    read = onpolicy_tokens["prompt"] + onpolicy_tokens["completion"]
    sft_text = f"{sft_tokens:,} completion tokens sampled from the teacher (generate)" if sft_tokens is not None else "its traces"
    lines.append(f"Teacher tokens: SFT used {sft_text}; the on-policy phase had the teacher read {read:,} more "
                 f"({onpolicy_tokens['prompt']:,} prompt + {onpolicy_tokens['completion']:,} student-written, scored, not sampled).")
    return lines


def run_compare(config: OnPolicyCompareConfig) -> dict[str, Any]:
    from distill.quickstart.report import write_report
    from distill.quickstart.stages import evaluate_models
    from students.manifest import TrainManifest
    from students.onpolicy import student_folder

    run = TrainManifest.read(Path(config.onpolicy) / "train.json")
    onpolicy = run.model_extra["onpolicy"]
    sft_folder, _ = student_folder(onpolicy["student_model"])
    models = {"teacher": config.teacher, SFT: str(sft_folder), ONPOLICY: str(Path(config.onpolicy) / "final")}
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = evaluate_models(models, config, config.benchmarks, out, config.language)
    sft_tokens = sum(t.completion_tokens or 0 for t in read_records(config.traces)) if config.traces else None
    lines = onpolicy_verdicts(rows, sft_tokens, onpolicy["teacher_tokens"])
    return write_report(rows, out, None, title="distill: SFT, then on-policy distillation", extra=lines)


STAGES = (
    Stage(
        name="compare-onpolicy", section="compare", config=OnPolicyCompareConfig, run=run_compare, operational=("workers",),
        reads={"teacher": "teacher_model", "onpolicy": "onpolicy_run", "traces": "traces", "benchmarks": "heldout"},
        writes={"output_dir": ""},
    ),
)
