"""The length-and-difficulty recipe's arms and comparison (recipes/quickstart-length.yaml, docs/length-and-difficulty.md).

Three students from the same untrained base, with the `train` section's settings, differ only in
their data, all of it the quickstart filter's kept traces:

- `train`: every kept trace (the quickstart's student);
- `train-shortest`: the shortest kept trace per prompt (Sky-T1-Flash), chosen by `filter-shortest`,
  the `filter` section with `per_prompt: 1, select: shortest`;
- `train-unsolved`: the kept traces of the prompts `train`'s student does not already solve
  (open-r1's pass-rate filtering), measured by `difficulty-trained` (the `difficulty` section on
  `train`'s student), drawn at random down to `train-shortest`'s training tokens, so that the two
  selections compare at one data budget.

`compare-length` evaluates the three on the held-out problems as `compare` does and adds training
samples, training tokens and mean answer tokens to the table, with code-written verdicts.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from pydantic import Field

from distill.core.data import read_records, write_records
from distill.core.errors import InputError
from distill.core.prompt_stats import read_pass_rates
from distill.core.stage import Stage
from distill.difficulty import stage as difficulty
from distill.filters import stage as filtering
from distill.filters.config import FilterConfig
from distill.filters.rules.language import LanguageOptions
from distill.quickstart.config import EvalSettings
from students import train as training
from students.config import TrainConfig

ALL, SHORTEST, UNSOLVED = ("student, all kept traces", "student, shortest kept trace per prompt",
                           "student, prompts it did not solve (tokens matched)")


class UnsolvedConfig(TrainConfig):
    """The `train` section's settings, on the kept traces of the prompts the trained student does not always solve."""

    kept: str = Field(description="The filter's kept records (the candidates).")
    rates: str = Field(description="The trained student's per-prompt rows (`difficulty-trained`).")
    matched: str = Field(description="Training data whose completion tokens this arm is drawn down to (`filter-shortest`'s kept file).")


def select_unsolved(kept: list, rates: dict[str, tuple[int, int]], target: int, seed: int) -> tuple[list, dict[str, Any]]:
    """The records of prompts not always solved, in a seeded random order, taken while their completion tokens stay within target."""
    missing = sorted({t.problem_id for t in kept} - set(rates))
    if missing:
        raise InputError(f"{len(missing)} kept prompts have no pass-rate row (first: {missing[0]})", field="rates")
    candidates = sorted((t for t in kept if rates[t.problem_id][0] < rates[t.problem_id][1]), key=lambda t: t.id)
    random.Random(seed).shuffle(candidates)
    chosen, tokens = [], 0
    for trace in candidates:
        if tokens + (trace.completion_tokens or 0) > target:
            break
        chosen.append(trace)
        tokens += trace.completion_tokens or 0
    solved = sum(1 for correct, drawn in rates.values() if correct == drawn)
    return chosen, {"prompts_solved": solved, "candidates": len(candidates), "candidate_tokens": sum(t.completion_tokens or 0 for t in candidates),
                    "target_tokens": target, "tokens": tokens}


def run_unsolved(config: UnsolvedConfig) -> dict[str, Any]:
    for path in (config.kept, config.rates, config.matched):
        if not Path(path).exists():
            raise InputError("not found: this arm needs the filter, filter-shortest and difficulty-trained outputs", where=path)
    target = sum(t.completion_tokens or 0 for t in read_records(config.matched))
    chosen, figures = select_unsolved(list(read_records(config.kept)), read_pass_rates(config.rates, "rates"), target, config.seed)
    write_records(config.data, chosen)
    summary = training.run(TrainConfig.model_validate(config.model_dump(exclude={"kept", "rates", "matched"})))
    return {"traces": len(chosen), **figures, **(summary or {})}


class LengthCompareConfig(EvalSettings):
    """The three students on the held-out problems, with what each was trained on."""

    all_kept: str = Field(description="`train`'s student (final/).")
    shortest: str = Field(description="`train-shortest`'s student (final/).")
    unsolved: str = Field(description="`train-unsolved`'s student (final/).")
    all_data: str = Field(description="`train`'s data (the filter's kept file).")
    shortest_data: str = Field(description="`train-shortest`'s data (filter-shortest's kept file).")
    unsolved_data: str = Field(description="`train-unsolved`'s data.")
    benchmarks: list[str] = Field(min_length=1, description="Held-out problem files.")
    language: LanguageOptions = Field(default_factory=LanguageOptions, description="Language rule that defines 'mixes languages'.")
    output_dir: str = Field(description="Folder for per-model evaluations, results.json, table.md and chart.png.")


def length_verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """Shortest vs all (accuracy, answer length); unsolved vs shortest at matched tokens; unsolved vs all."""
    by = {r["model"]: r for r in rows}
    lines = []
    for arm, against, what in ((SHORTEST, ALL, "The shortest trace per prompt vs all kept traces"),
                               (UNSOLVED, SHORTEST, "Unsolved prompts vs the shortest trace per prompt, at matched training tokens"),
                               (UNSOLVED, ALL, "Unsolved prompts vs all kept traces")):
        a, b = by[arm], by[against]
        diff = a["accuracy"] - b["accuracy"]
        noise = 2 * (a["accuracy_stderr"] ** 2 + b["accuracy_stderr"] ** 2) ** 0.5
        accuracy = (f"accuracy {100 * a['accuracy']:.1f}% vs {100 * b['accuracy']:.1f}% "
                    + (f"(within noise, ±{100 * noise:.1f})" if abs(diff) <= noise else
                       f"({'+' if diff > 0 else '-'}{100 * abs(diff):.1f} points, beyond noise ±{100 * noise:.1f})"))
        length = (f"; mean answer {a['mean_tokens']:.1f} vs {b['mean_tokens']:.1f} tokens ({a['mean_tokens'] / b['mean_tokens'] - 1:+.1%})"
                  if a.get("mean_tokens") and b.get("mean_tokens") else "")
        lines.append(f"{what}: {accuracy}{length}, on {a['training_tokens']:,} vs {b['training_tokens']:,} training tokens.")
    return lines


def run_compare(config: LengthCompareConfig) -> dict[str, Any]:
    from distill.quickstart.report import write_report
    from distill.quickstart.stages import evaluate_models

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    arms = {ALL: (config.all_kept, config.all_data), SHORTEST: (config.shortest, config.shortest_data),
            UNSOLVED: (config.unsolved, config.unsolved_data)}
    rows = evaluate_models({label: model for label, (model, _) in arms.items()}, config, config.benchmarks, out, config.language)
    for row in rows:
        data = list(read_records(arms[row["model"]][1]))
        row["training_samples"], row["training_tokens"] = len(data), sum(t.completion_tokens or 0 for t in data)
    return write_report(rows, out, None, title="distill: shortest traces and unsolved prompts", extra=length_verdicts(rows))


STAGES = (
    Stage(
        name="filter-shortest", section="filter", config=FilterConfig, run=filtering.run, check=filtering._check_outputs,
        reads={"input": "traces"}, in_run={"per_prompt": 1, "select": "shortest"}, operational=filtering.STAGES[0].operational,
        writes={"output": "kept.jsonl", "rejected": "rejected.jsonl", "report": "report.json", "prompt_stats": "prompts.jsonl"},
        produces={"shortest_kept": "kept.jsonl"},
    ),
    Stage(
        name="train-shortest", section="train", config=TrainConfig, run=training.run, resumable=True,
        reads={"data": "shortest_kept", "base_model": "student_base"}, writes={"output_dir": ""}, produces={"shortest_model": "final"},
    ),
    Stage(
        name="difficulty-trained", section="difficulty", config=difficulty.DifficultyConfig, run=difficulty.run, check=difficulty.check,
        resumable=True, reads={"prompts": "prompts", "model": "student_model"}, defaults={"prompts": "generate.prompts"},
        writes={"output": "prompts.jsonl", "samples": "samples.jsonl"}, produces={"student_rates": "prompts.jsonl"},
        operational=difficulty.STAGES[0].operational,
    ),
    Stage(
        name="train-unsolved", section="train", config=UnsolvedConfig, run=run_unsolved, resumable=True,
        reads={"kept": "kept", "rates": "student_rates", "matched": "shortest_kept", "base_model": "student_base"},
        writes={"output_dir": "", "data": "traces.jsonl"}, produces={"unsolved_model": "final", "unsolved_data": "traces.jsonl"},
    ),
    Stage(
        name="compare-length", section="compare", config=LengthCompareConfig, run=run_compare, operational=("workers",),
        reads={"all_kept": "student_model", "shortest": "shortest_model", "unsolved": "unsolved_model", "all_data": "kept",
               "shortest_data": "shortest_kept", "unsolved_data": "unsolved_data", "benchmarks": "heldout"},
        writes={"output_dir": ""},
    ),
)

