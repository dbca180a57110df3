"""The rejection loop of `distill run`: sample, select, and resample only the prompts still short.

A recipe's `rejection: {min_kept: 2, max_samples: 16}` section turns a run's stage that samples
prompts (the role `SAMPLES`, e.g. generate) and the stage after it that selects samples (`SELECTS`,
e.g. filter) into rounds: round 1 draws the sampling stage's n samples per prompt and selects them;
each later round draws `step` more (default: that n) for the prompts with fewer than `min_kept`
kept samples, until none is short or they have `max_samples`. Sampling a fixed n wastes teacher
tokens on easy prompts and gives up early on hard ones; this spends them where they are missing.
The loop knows the stages only by their roles (distill.core.stage).

Round r samples the indices [target(r-1), target(r)) of its prompts into the one samples file
(the sampling stage skips what is there, so a killed round resumes), and the selecting stage judges
the whole file again. Which prompts a round samples follows from the samples and verdicts of the indices before it,
so a re-run replays finished rounds without sampling (and without filtering when nothing was
added) and continues where it stopped.

After the last round, `prompts.jsonl` beside the kept records holds per-prompt statistics (samples drawn, kept,
pass rate, correct samples, the shortest correct sample, tokens), the difficulty signal public
pipelines compute in a separate run; `pass_rate_min` / `pass_rate_max` keep only the prompts whose pass
rate over all rounds lies in the band, as `filter --pass-rate-min/--pass-rate-max` do over one file
(`drop_always_solved` / `drop_never_solved` are the old spellings of two such bands).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from distill.core.data import iter_rows
from distill.core.paths import atomic_path, write_text
from distill.core.prompt_stats import PromptStats, band, in_band, is_correct
from distill.core.stage import SAMPLES, SELECTS, Stage

SECTION = "rejection"


class RejectionConfig(BaseModel):
    """The recipe's `rejection` section."""

    model_config = ConfigDict(extra="forbid")

    min_kept: int = Field(default=2, ge=1, description="Kept samples wanted per prompt; prompts with fewer are resampled.")
    max_samples: int = Field(default=16, ge=1, description="Most samples drawn per prompt, all rounds together.")
    step: int | None = Field(default=None, ge=1, description="Samples added per round to each short prompt (default: the sampling stage's n).")
    added: ClassVar[tuple[str, ...]] = ("pass_rate_min", "pass_rate_max")  # fingerprints see them once given
    pass_rate_min: float = Field(default=0.0, ge=0, le=1, description="Drop the kept samples of prompts whose pass rate (correct / drawn) is below this.")
    pass_rate_max: float = Field(default=1.0, ge=0, le=1, description="Drop the kept samples of prompts whose pass rate (correct / drawn) is above this.")
    drop_always_solved: bool = Field(default=False, description="Old spelling of pass_rate_max: 0.999999 (too easy).")
    drop_never_solved: bool = Field(default=False, description="Old spelling of pass_rate_min: 0.000001.")

    @model_validator(mode="after")
    def _band(self) -> RejectionConfig:
        self.pass_rate_min, self.pass_rate_max = band(self.pass_rate_min, self.pass_rate_max, self.drop_always_solved, self.drop_never_solved)
        return self


def pair(stages: list[str], registry: dict[str, Stage]) -> tuple[str, str] | None:
    """The run's first stage that samples prompts and the first after it that selects samples, by role."""
    sampler = next((name for name in stages if registry[name].samples is not None), None)
    if sampler is None:
        return None
    selector = next((name for name in stages[stages.index(sampler) + 1:] if registry[name].selects is not None), None)
    return (sampler, selector) if selector is not None else None


def settings(doc: dict[str, Any], stages: list[str], registry: dict[str, Stage], where: str) -> RejectionConfig | None:
    """The validated section, or None when the recipe has none."""
    from distill.core.config import validate
    from distill.core.errors import InputError

    section = doc.get(SECTION)
    if section is None:
        return None
    if pair(stages, registry) is None:
        raise InputError(f"the rejection loop needs, in run.stages, a stage that {SAMPLES} and after it one that {SELECTS}",
                         where=where, field=SECTION)
    return validate(RejectionConfig, section, where=where, yaml_path=Path(where), prefix=(SECTION,))


def targets(first: int, step: int, most: int) -> list[int]:
    """Samples per prompt after each round: first, first+step, ... up to most."""
    out = [min(first, most)]
    while out[-1] < most:
        out.append(min(out[-1] + step, most))
    return out


def read_outcomes(kept: str, rejected: str | None) -> dict[str, list[dict[str, Any]]]:
    """problem_id -> [{index, kept, correct, prompt_tokens, completion_tokens, id}], from the filter's outputs."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path, is_kept in ((kept, True), (rejected, False)):
        if path is None or not Path(path).exists() or Path(path).stat().st_size == 0:  # every sample kept, or none
            continue
        for _, row in iter_rows(path):
            found.setdefault(row["problem_id"], []).append({
                "id": row["id"], "index": row["sample_index"], "kept": is_kept, "correct": is_correct(row.get("verdicts"), is_kept),
                "prompt_tokens": row.get("prompt_tokens") or 0, "completion_tokens": row.get("completion_tokens") or 0,
                "chars": len(row.get("completion") or ""),
            })
    return found


def stats(outcomes: dict[str, list[dict[str, Any]]], below: int | None = None) -> dict[str, PromptStats]:
    """Per-prompt statistics over the samples with index < below (all of them when None)."""
    out: dict[str, PromptStats] = {}
    for problem_id, samples in outcomes.items():
        entry = out[problem_id] = PromptStats(problem_id)
        for sample in samples:
            if below is not None and sample["index"] >= below:
                continue
            entry.add(sample["id"], sample["kept"], sample["correct"], sample["prompt_tokens"], sample["completion_tokens"],
                      sample.get("chars"))
    return out


def round_row(number: int, outcomes: dict[str, list[dict[str, Any]]], sampled: list[str], low: int, high: int,
              min_kept: int) -> dict[str, Any]:
    """One line of the per-round table: the samples with index in [low, high) of the prompts sampled."""
    drawn = kept = tokens = 0
    for problem_id in sampled:
        for sample in outcomes.get(problem_id, []):
            if low <= sample["index"] < high:
                drawn += 1
                kept += sample["kept"]
                tokens += sample["completion_tokens"]
    after = stats({p: outcomes.get(p, []) for p in sampled}, high)
    short = sum(1 for entry in after.values() if entry.kept < min_kept)
    return {"round": number, "samples_per_prompt": high, "prompts": len(sampled), "drawn": drawn, "kept": kept,
            "yield": round(kept / drawn, 4) if drawn else 0.0, "completion_tokens": tokens, "still_short": short}


def run_loop(config: RejectionConfig, sampler: Stage, sampling: BaseModel, selector: Stage, selecting: BaseModel,
             call: Callable[[str, BaseModel], dict[str, Any]], work_dir: Path, say: Callable[[Any], None]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the rounds; `call(role, config)` runs the stage with that role once. Returns (sampling summary, selecting summary)."""
    role, kept_file, rejected_file = sampler.samples, *selector.selects.outputs(selecting)
    first = role.per_prompt(sampling)
    plan = targets(first, config.step or first, config.max_samples)
    sampled: list[str] | None = None  # None: every prompt (round 1)
    rows: list[dict[str, Any]] = []
    generated = filtered = None
    written = 0  # by this run: a resumed loop redraws nothing it already has
    outcomes: dict[str, list[dict[str, Any]]] = {}
    for number, high in enumerate(plan, start=1):
        low = plan[number - 2] if number > 1 else 0
        ids = None
        if sampled is not None:
            ids = work_dir / f"round-{number}.ids"
            write_text(ids, "".join(f"{p}\n" for p in sampled))
        generated = call(SAMPLES, role.redraw(sampling, high, str(ids) if ids else None))
        written += generated.get("samples_written", 0)
        if filtered is None or generated.get("samples_written"):  # nothing new: the last verdicts stand
            filtered = call(SELECTS, selecting)
            outcomes = read_outcomes(kept_file, rejected_file)
        if sampled is None:
            sampled = sorted(outcomes)
        row = round_row(number, outcomes, sampled, low, high, config.min_kept)
        rows.append(row)
        say(round_table(rows))
        if high >= config.max_samples:
            break
        after = stats({p: outcomes.get(p, []) for p in sampled}, high)
        # Only prompts that got every sample of the round: one the teacher skipped (too long) stays skipped.
        sampled = sorted(p for p, entry in after.items() if entry.kept < config.min_kept and entry.drawn >= high)
        if not sampled:
            break
    final = stats(outcomes)
    dropped = _write_prompt_stats(config, final, kept_file)
    tokens = sum(entry.completion_tokens for entry in final.values())
    kept = sum(entry.kept for entry in final.values()) - dropped
    loop = {"rounds": rows, "prompts": len(final), "kept": kept, "dropped_by_difficulty": dropped,
            "short_at_end": sum(1 for entry in final.values() if entry.kept < config.min_kept),
            "completion_tokens": tokens, "completion_tokens_per_kept": round(tokens / kept, 1) if kept else None}
    # the run's summary shows the whole loop, not its last round: every sample drawn, and those this run wrote
    whole = {"prompts": len(final), "samples_drawn": sum(row["drawn"] for row in rows), "samples_written": written,
             "completion_tokens": tokens}
    return {**(generated or {}), **whole, "rejection": loop}, {**(filtered or {}), "kept": kept, "rejection": loop}


def _write_prompt_stats(config: RejectionConfig, final: dict[str, PromptStats], kept_file: str) -> int:
    """prompts.jsonl beside the kept records; drops the kept samples of prompts the options name."""
    rows = [entry.row() for entry in final.values()]
    drop = {r["problem_id"] for r in rows if not in_band(r["correct"], r["drawn"], config.pass_rate_min, config.pass_rate_max)}
    for row in rows:
        row["dropped"] = row["problem_id"] in drop
    write_text(Path(kept_file).with_name("prompts.jsonl"), "".join(json.dumps(r) + "\n" for r in rows))
    if not drop:
        return 0
    dropped = 0
    with atomic_path(kept_file) as temporary, open(temporary, "w", encoding="utf-8") as out, open(kept_file, encoding="utf-8") as kept:
        for line in kept:
            if json.loads(line)["problem_id"] in drop:
                dropped += 1
            else:
                out.write(line)
    return dropped


def round_table(rows: list[dict[str, Any]]):
    from rich.table import Table

    table = Table(title="rejection sampling, by round", title_justify="left")
    for column in ("round", "samples/prompt", "prompts sampled", "drawn", "kept", "yield", "completion tokens", "still short"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(str(r["round"]), str(r["samples_per_prompt"]), f"{r['prompts']:,}", f"{r['drawn']:,}", f"{r['kept']:,}",
                      f"{100 * r['yield']:.1f}%", f"{r['completion_tokens']:,}", f"{r['still_short']:,}")
    return table
