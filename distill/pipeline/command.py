"""What `distill run` does with its options: plan, then print the configuration, the dry-run plan,
a pilot's forecast or the run's summary. `cli.py` only declares the options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from distill.core.errors import InputError


def run_command(recipe: Path, output: Path | None, start: str | None, until: str | None, sets: list[str] | None, *,
                dry_run: bool, print_config: bool, force: bool, budget: float | None, budget_tokens: int | None,
                pilot: int | None, console: Any, verbose: bool = False) -> None:
    import os

    from distill.core.config import dump
    from distill.pipeline.log import VERBOSE_ENV, describe, plan_table, summary_table
    from distill.pipeline.run import execute, plan

    if verbose:  # third-party output on the console too (stage_log reads this)
        os.environ[VERBOSE_ENV] = "1"

    # --budget and --budget-tokens are generate's: the traces file's whole spend, every round of the loop included
    sets = [*(sets or []), *([f"generate.budget={budget}"] if budget is not None else []),
            *([f"generate.budget_tokens={budget_tokens}"] if budget_tokens is not None else [])]
    ctx, planned = plan(recipe, output, start, until, sets)
    if print_config:
        for item in planned:
            typer.echo(f"# --- {item.name}\n{item.name}:")
            typer.echo("".join(f"  {line}\n" for line in dump(item.config).splitlines()), nl=False)
        return
    rows = describe(ctx, planned)
    if dry_run:
        console.print(plan_table(ctx, rows))
        for row in rows:
            for path in row["missing"]:
                typer.echo(f"note: {row['stage']} reads {path}, which is not found yet (needed when the stage runs)")
        typer.echo(f"settings valid for {len(rows)} stage(s) of {recipe}; dry run: nothing loaded, nothing written")
        return
    for row in rows:  # fail before any stage runs, not hours into the run
        if row["missing"] and not row["action"].startswith("skip"):
            raise InputError(f"stage '{row['stage']}' reads {row['missing'][0]}, which does not exist", where=str(recipe))
    results = execute(ctx, planned, recipe.read_text(encoding="utf-8"), console, force=force, pilot=pilot)
    if not pilot:  # a pilot printed its forecast
        console.print(summary_table(ctx, results))
