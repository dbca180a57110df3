"""`distill run --pilot N`: sample and select the first N prompts, then forecast what the run costs.

The stages are the run's sampling and selecting ones (their roles, distill.core.stage). The pilot
writes into the sampling stage's own folder under the full run's fingerprint without
completing the stage, so the full run resumes from the pilot's samples instead of drawing them
again. The forecast scales what the pilot spent per prompt and kept per prompt (its yield) to the
run's prompt count: tokens and money per *kept* sample, and for the whole run.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from distill.core import cost
from distill.core.stage import SampleSummary, SelectSummary


def forecast(sampling: BaseModel, generated: SampleSummary, filtered: SelectSummary, total_prompts: int) -> dict[str, Any]:
    """Per kept sample and whole-run figures from the pilot's summaries: the sampling stage's (its
    config holds the prices and the budget, distill.core.cost) and the selecting stage's."""
    loop = filtered.get("rejection")
    prompts = loop["prompts"] if loop else generated.get("prompts", 0)
    kept = loop["kept"] if loop else filtered.get("kept", 0)
    samples = filtered.get("records_in", 0)
    if loop:
        samples = sum(r["drawn"] for r in loop["rounds"])
    spent = cost.Spend(generated.get("spent_prompt_tokens", 0), generated.get("spent_completion_tokens", 0))
    scale = total_prompts / prompts if prompts else math.nan
    out: dict[str, Any] = {
        "pilot_prompts": prompts, "pilot_samples": samples, "pilot_kept": kept,
        "yield": kept / samples if samples else 0.0, "run_prompts": total_prompts,
        "per_kept": {"prompt_tokens": spent.prompt_tokens / kept, "completion_tokens": spent.completion_tokens / kept} if kept else None,
        "run": {"prompt_tokens": spent.prompt_tokens * scale, "completion_tokens": spent.completion_tokens * scale,
                "samples": samples * scale, "kept": kept * scale},
    }
    money = cost.money(spent, sampling)
    if money is not None:
        out["run"]["cost"] = money * scale
        if kept:
            out["per_kept"]["cost"] = money / kept
    if sampling.budget is not None and money:
        out["budget_covers"] = min(1.0, sampling.budget / (money * scale))
    return out


def table(figures: dict[str, Any]):
    from rich.table import Table

    f = figures
    title = (f"pilot: {f['pilot_prompts']:,} prompts, {f['pilot_samples']:,} samples, {f['pilot_kept']:,} kept "
             f"(yield {100 * f['yield']:.1f}%); forecast for {f['run_prompts']:,} prompts")
    result = Table(title=title, title_justify="left")
    result.add_column("")
    for column in ("prompt tokens", "completion tokens", "cost", "kept samples"):
        result.add_column(column, justify="right")
    per, run = f["per_kept"] or {}, f["run"]

    def money(value: float | None) -> str:
        return "-" if value is None else f"{value:,.4f}" if value >= 0.01 else f"{value:.6f}"

    result.add_row("per kept sample", f"{per.get('prompt_tokens', 0):,.0f}", f"{per.get('completion_tokens', 0):,.0f}",
                   money(per.get("cost")), "1")
    result.add_row("whole run", f"{run['prompt_tokens']:,.0f}", f"{run['completion_tokens']:,.0f}", money(run.get("cost")),
                   f"{run['kept']:,.0f}")
    return result


def verdict(figures: dict[str, Any], sampling: BaseModel) -> str:
    """The line under the table, written from the figures."""
    if not figures["pilot_kept"]:
        return "the pilot kept no sample: no forecast per kept sample; check the filter's report before the full run"
    covers = figures.get("budget_covers")
    if covers is not None and covers < 1:
        return (f"the budget {sampling.budget:g} covers about {100 * covers:.0f}% of the run "
                f"(about {figures['run']['kept'] * covers:,.0f} kept samples); the run would stop there, resumably")
    return "the pilot's samples are kept: run without --pilot to continue from them"
