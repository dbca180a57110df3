"""The RL recipe's arms and comparison (recipes/quickstart-rl.yaml): the issue's two experiments.

1. Does GRPO lift the filtered SFT student? `train` (SFT on the kept traces) vs `grpo` (that
   student, then GRPO with the `grpo` section's rewards).
2. R1's language reward: the student trained on UNFILTERED traces (it mixes languages) goes on
   with GRPO twice, on accuracy alone (`grpo-accuracy`) and on accuracy + language consistency
   (`grpo-language`), the rest of the `grpo` section the same. Does the language reward remove
   the mixing, and at what accuracy cost?

`compare-rl` evaluates the five students on the held-out problems with the quickstart's settings
and says in code-written sentences what each GRPO run did, beyond noise or not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from distill.core.stage import Stage
from distill.filters.rules.language import LanguageOptions
from distill.quickstart.config import EvalSettings
from distill.quickstart.onpolicy import phase_verdict
from students.grpo import run as grpo
from students.grpo_config import GrpoConfig

SFT, SFT_GRPO = "student, filtered traces", "student, filtered traces + GRPO"
MIXED, MIXED_ACC, MIXED_LANG = ("student, unfiltered traces", "student, unfiltered + GRPO (accuracy)",
                                "student, unfiltered + GRPO (accuracy + language)")


class RlCompareConfig(EvalSettings):
    """The SFT students and their GRPO continuations on the held-out problems."""

    grpo: str = Field(description="The `grpo` run directory (its student is the filtered SFT run).")
    unfiltered: str = Field(description="The unfiltered SFT student's folder (`train-unfiltered`).")
    accuracy_only: str = Field(description="The `grpo-accuracy` run directory.")
    with_language: str = Field(description="The `grpo-language` run directory.")
    benchmarks: list[str] = Field(min_length=1, description="Held-out problem files.")
    language: LanguageOptions = Field(default_factory=LanguageOptions, description="Language rule that defines 'mixes languages'.")
    output_dir: str = Field(description="Folder for per-model evaluations, results.json, table.md and chart.png.")


def rl_verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """Experiment 1: GRPO vs SFT alone. Experiment 2: the language reward's effect on mixing and its accuracy cost."""
    by = {r["model"]: r for r in rows}
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    lines = [phase_verdict("GRPO after SFT", by[SFT_GRPO], by[SFT])]
    mixed, acc, lang = by[MIXED], by[MIXED_ACC], by[MIXED_LANG]
    removed = lang["mixing"] < acc["mixing"]
    lines.append(f"Language reward: {pct(lang['mixing'])} of answers mix languages with accuracy + language vs "
                 f"{pct(acc['mixing'])} with accuracy alone (unfiltered SFT student: {pct(mixed['mixing'])})"
                 + ("." if removed else "; the language reward did NOT reduce mixing here."))
    cost = acc["accuracy"] - lang["accuracy"]
    noise = 2 * (acc["accuracy_stderr"] ** 2 + lang["accuracy_stderr"] ** 2) ** 0.5
    lines.append(f"Its accuracy cost: {pct(lang['accuracy'])} vs {pct(acc['accuracy'])} with accuracy alone "
                 + (f"(within noise, ±{100 * noise:.1f})." if abs(cost) <= noise else
                    f"({'-' if cost > 0 else '+'}{100 * abs(cost):.1f} points, beyond noise)."))
    return lines


def run_compare(config: RlCompareConfig) -> dict[str, Any]:
    from distill.quickstart.onpolicy import evaluable
    from distill.quickstart.report import write_report
    from distill.quickstart.stages import evaluate_models
    from students.manifest import TrainManifest
    from students.onpolicy import student_folder

    sft_folder, _ = student_folder(TrainManifest.read(Path(config.grpo) / "train.json").model_extra["grpo"]["student_model"])
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    students = {SFT: sft_folder, SFT_GRPO: Path(config.grpo) / "final", MIXED: Path(config.unfiltered),
                MIXED_ACC: Path(config.accuracy_only) / "final", MIXED_LANG: Path(config.with_language) / "final"}
    rows = evaluate_models({label: evaluable(folder, out) for label, folder in students.items()}, config,
                           config.benchmarks, out, config.language)
    return write_report(rows, out, None, title="distill: GRPO after SFT, and R1's language reward", extra=rl_verdicts(rows))


STAGES = (
    Stage(
        name="grpo-accuracy", section="grpo", config=GrpoConfig, run=grpo, operational=("workers",),
        reads={"student_model": "unfiltered_model", "prompts": "prompts"}, writes={"output_dir": ""},
        produces={"grpo_accuracy_run": ""}, defaults={"student": "train.student"},
        in_run={"format_weight": 0.0, "language_weight": 0.0, "length_weight": 0.0},
    ),
    Stage(
        name="grpo-language", section="grpo", config=GrpoConfig, run=grpo, operational=("workers",),
        reads={"student_model": "unfiltered_model", "prompts": "prompts"}, writes={"output_dir": ""},
        produces={"grpo_language_run": ""}, defaults={"student": "train.student"},
        in_run={"format_weight": 0.0, "language_weight": 1.0, "length_weight": 0.0},
    ),
    Stage(
        name="compare-rl", section="compare", config=RlCompareConfig, run=run_compare, operational=("workers",),
        reads={"grpo": "grpo_run", "unfiltered": "unfiltered_model", "accuracy_only": "grpo_accuracy_run",
               "with_language": "grpo_language_run", "benchmarks": "heldout"},
        writes={"output_dir": ""},
    ),
)
