"""The beyond-SFT recipe's comparison: SFT alone, KD on the same traces, SFT then on-policy.

`compare-onpolicy` evaluates the teacher, the SFT student (the `train` run the `onpolicy` stage
started from), the KD student (`train-kd`: the same kept traces and settings, trained on the
teacher's recorded top-K log-probabilities as well) and the on-policy student on the held-out
problems with the quickstart's settings, and says in code-written sentences whether each phase
helped (beyond noise or not) and what it cost in teacher tokens: SFT's and KD's are the same
samples the teacher wrote at `generate` (prompt and completion counted apart), on-policy's the
tokens it read to score the student's samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from distill.core.data import read_records
from distill.core.stage import Stage
from distill.filters.rules.language import LanguageOptions
from distill.quickstart.config import EvalSettings

SFT, KD, ONPOLICY = "student, SFT", "student, KD (same traces)", "student, SFT + on-policy"


class OnPolicyCompareConfig(EvalSettings):
    """The teacher, the SFT student and the on-policy student on the held-out problems."""

    teacher: str = Field(description="The teacher's folder.")
    onpolicy: str = Field(description="The `onpolicy` run directory (its train.json names the SFT student).")
    kd: str | None = Field(default=None, description="The KD student's folder (`train-kd`), evaluated beside SFT alone.")
    traces: str | None = Field(default=None, description="The teacher's samples (for the SFT phase's teacher tokens).")
    benchmarks: list[str] = Field(min_length=1, description="Held-out problem files.")
    language: LanguageOptions = Field(default_factory=LanguageOptions, description="Language rule that defines 'mixes languages'.")
    output_dir: str = Field(description="Folder for per-model evaluations, results.json, table.md and chart.png.")


def phase_verdict(phase: str, after: dict[str, Any], sft: dict[str, Any]) -> str:
    """Did `phase` beat SFT alone beyond noise (twice the standard error of the difference)?"""
    diff = after["accuracy"] - sft["accuracy"]
    noise = 2 * (after["accuracy_stderr"] ** 2 + sft["accuracy_stderr"] ** 2) ** 0.5
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    if abs(diff) <= noise:
        return (f"{phase} did NOT measurably help here: {pct(after['accuracy'])} vs {pct(sft['accuracy'])} "
                f"for SFT alone (within noise, ±{100 * noise:.1f}).")
    if diff > 0:
        return f"{phase} raised accuracy: {pct(after['accuracy'])} vs {pct(sft['accuracy'])} for SFT alone (+{100 * diff:.1f} points)."
    return f"{phase} LOWERED accuracy: {pct(after['accuracy'])} vs {pct(sft['accuracy'])} for SFT alone."


def onpolicy_verdicts(rows: list[dict[str, Any]], sft_tokens: dict[str, int] | None, onpolicy_tokens: dict[str, int]) -> list[str]:
    """Did KD (when evaluated) and the on-policy phase help, beyond noise; and the teacher tokens each used."""
    by = {r["model"]: r for r in rows}
    sft, onp = by[SFT], by[ONPOLICY]
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    lines = []
    sampled = "the teacher's samples" + (f" (generate: {sft_tokens['prompt']:,} prompt + {sft_tokens['completion']:,} "
                                         "completion tokens)" if sft_tokens else "")
    if KD in by:
        lines.append(phase_verdict("Logit distillation (KD)", by[KD], sft))
        lines.append(f"Equal teacher tokens: SFT and KD learned from the same kept traces of {sampled}; KD also read the "
                     "top-K log-probabilities the teacher returned with them (no extra teacher tokens).")
    lines.append(phase_verdict("On-policy distillation", onp, sft))
    kd = f"{pct(by[KD]['mixing'])} after KD, " if KD in by else ""
    lines.append(f"Language mixing: {kd}{pct(onp['mixing'])} after on-policy vs {pct(sft['mixing'])} after SFT alone.")
    read = onpolicy_tokens["prompt"] + onpolicy_tokens["completion"]
    total = sft_tokens["prompt"] + sft_tokens["completion"] if sft_tokens else 0
    more = f": {100 * read / total:.0f}% more than SFT alone" if total else ""
    lines.append(f"Teacher tokens: SFT used {sampled}; the on-policy phase had the teacher read {read:,} more "
                 f"({onpolicy_tokens['prompt']:,} prompt + {onpolicy_tokens['completion']:,} student-written, scored, not sampled){more}.")
    return lines


def evaluable(folder: Path, out: Path) -> str:
    """A model folder the evaluation can serve: a LoRA/QLoRA run's adapter is merged into its base
    first (as `publish --merge` merges it), into out/merged-RUN; full weights are used as they are."""
    if not (folder / "adapter_config.json").is_file():
        return str(folder)
    from transformers import AutoTokenizer, GenerationConfig

    from students.publish import PublishConfig, load_merged, read_run

    info, final, _ = read_run(folder.parent)
    target = out / f"merged-{folder.parent.name}"
    load_merged(info, final, PublishConfig(run_dir=folder.parent, output=target)).save_pretrained(target)
    AutoTokenizer.from_pretrained(final).save_pretrained(target)
    if (final / "generation_config.json").is_file():  # the run's stop tokens
        GenerationConfig.from_pretrained(final).save_pretrained(target)
    return str(target)


def run_compare(config: OnPolicyCompareConfig) -> dict[str, Any]:
    from distill.quickstart.report import write_report
    from distill.quickstart.stages import evaluate_models
    from students.manifest import TrainManifest
    from students.onpolicy import student_folder

    run = TrainManifest.read(Path(config.onpolicy) / "train.json")
    onpolicy = run.model_extra["onpolicy"]
    sft_folder, _ = student_folder(onpolicy["student_model"])
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    students = {SFT: sft_folder, **({KD: Path(config.kd)} if config.kd else {}), ONPOLICY: Path(config.onpolicy) / "final"}
    models = {"teacher": config.teacher, **{label: evaluable(folder, out) for label, folder in students.items()}}
    rows = evaluate_models(models, config, config.benchmarks, out, config.language)
    sft_tokens = None
    if config.traces:
        sft_tokens = {"prompt": 0, "completion": 0}
        for trace in read_records(config.traces):  # one pass: a teacher's traces can be large
            sft_tokens["prompt"] += trace.prompt_tokens or 0
            sft_tokens["completion"] += trace.completion_tokens or 0
        if not any(sft_tokens.values()):  # traces that do not say what they cost (not written by generate)
            sft_tokens = None
    lines = onpolicy_verdicts(rows, sft_tokens, onpolicy["teacher_tokens"])
    if sft_tokens:  # the table's cost column: SFT and KD the same samples, on-policy those and what it had scored
        spent = {SFT: sft_tokens, KD: sft_tokens,
                 ONPOLICY: {key: sft_tokens[key] + onpolicy["teacher_tokens"][key] for key in ("prompt", "completion")}}
        for row in rows:
            row["teacher_tokens"] = spent.get(row["model"])
    return write_report(rows, out, None, title="distill: SFT, KD and on-policy distillation", extra=lines)


STAGES = (
    Stage(
        name="compare-onpolicy", section="compare", config=OnPolicyCompareConfig, run=run_compare, operational=("workers",),
        reads={"teacher": "teacher_model", "onpolicy": "onpolicy_run", "kd": "kd_model", "traces": "traces", "benchmarks": "heldout"},
        writes={"output_dir": ""},
    ),
)
