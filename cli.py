"""The `distill` command. Wiring only: every stage that declares a `Command` (distill.core.stage)
is a command, its flags derived from the stage's config model (distill.core.flags), resolved with
the recipe, handed to the stage's function, its summary printed by the stage's `present`. The
commands that are no stage (merge, inspect, students, run) are written out below; another is one
more function here.

Heavy libraries (torch, vllm, transformers) are imported inside the stages' functions, so that
`distill --help` and bad-input errors are instant.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from distill.core import processes
from distill.core.errors import report
from distill.core.flags import add_stage_commands, stage_command
from distill.filters.inspect import InspectConfig
from distill.pipeline.stages import registry, sections
from students.doctor.config import DoctorConfig

app = typer.Typer(
    name="distill",
    help="Distil long chain-of-thought reasoning from a teacher into small dense students.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _show_version(value: bool) -> None:
    if value:
        from distill import __version__

        typer.echo(f"distill {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Show the version and exit.", is_eager=True, callback=_show_version),
) -> None:
    """Distil long chain-of-thought reasoning from a teacher into small dense students."""


add_stage_commands(app, registry().values(), sections)  # every stage that declares a `Command`


@app.command("merge")
def merge(
    shards: list[Path] = typer.Argument(..., help="Shard outputs of `distill generate --shard` (JSONL)."),
    output: Path = typer.Option(..., "--output", "-o", help="Merged file (.jsonl or .parquet), written atomically."),
    drop_duplicates: bool = typer.Option(False, "--drop-duplicates", help="Keep the first of an id repeated within one file (repairs a file two writers appended to)."),
) -> None:
    """Merge generate shards into one file: each sample once, torn last lines dropped."""
    from teacher.store import merge_shards

    summary = merge_shards(list(shards), output, drop_duplicates=drop_duplicates)
    typer.echo(f"merged {summary['records']:,} records from {len(shards)} files into {summary['output']}"
               f" ({summary['duplicates_dropped']} duplicates, {summary['torn_lines_dropped']} torn lines dropped)"
               + (f"; log-probabilities of {summary['logprobs_records']:,} records" if summary["logprobs_records"] else ""))


@stage_command(app, "inspect", InspectConfig, section=None, arguments=["file"])
def inspect(config: InspectConfig) -> None:
    """Read records as a person wants to: problem, reasoning, answer, reference, verdicts; and a file summary."""
    from distill.filters.inspect import inspect as show

    show(config)


@app.command("students")
def students() -> None:
    """List the student presets (base model, template, defaults, method and GPUs that fit)."""
    from rich.console import Console

    from students.report import students_table

    Console().print(students_table())


@stage_command(app, "doctor", DoctorConfig, section="train", arguments=["model_dir"], sections=sections)
def doctor(config: DoctorConfig, recipe: Path | None = None) -> None:
    """Check a training run before it starts (train's flags or --recipe), or a model folder before serving; exit 2 on a failure."""
    from students.doctor.report import run

    run(config, recipe)


@app.command("run")
def run_recipe(
    recipe: Path = typer.Argument(..., help="Recipe YAML (see recipes/)."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Run directory (default: the recipe's run.output_dir, else runs/NAME)."),
    start: str | None = typer.Option(None, "--from", help="Redo this stage and every stage after it."),
    until: str | None = typer.Option(None, "--until", help="Stop after this stage."),
    sets: list[str] | None = typer.Option(None, "--set", help="Override a recipe value: SECTION.KEY=VALUE (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate every stage's settings and show the plan; loads no model."),
    print_config: bool = typer.Option(False, "--print-config", help="Print every stage's resolved configuration and exit."),
    force: bool = typer.Option(False, "--force", help="Run in a directory that holds files distill did not write (they are left untouched)."),
    budget: float | None = typer.Option(None, "--budget", help="Stop cleanly (exit 3, resumable) when the teacher samples cost this much (generate's price_in/price_out)."),
    budget_tokens: int | None = typer.Option(None, "--budget-tokens", help="Stop cleanly (exit 3, resumable) at this many teacher completion tokens."),
    pilot: int | None = typer.Option(None, "--pilot", min=1, help="Generate and filter this many prompts, print the forecast of tokens and money, stop (the samples are reused)."),
    verbose: bool = typer.Option(False, "--verbose", help="Show third-party output (vLLM, warnings, shard bars) too; it is always in each stage's log.txt."),
) -> None:
    """Run a recipe's stages (generate, filter, train, publish, eval) in one run directory; unchanged stages are skipped."""
    from rich.console import Console

    from distill.pipeline.command import run_command

    run_command(recipe, output, start, until, sets, dry_run=dry_run, print_config=print_config, force=force,
                budget=budget, budget_tokens=budget_tokens, pilot=pilot, console=Console(stderr=True), verbose=verbose)


@app.command("eval-table")
def eval_table(folders: list[Path] = typer.Argument(..., help="Eval output folders (each with its summary.json)."),
               output: Path = typer.Option(Path("paper_table"), "--output", "-o", help="Writes OUTPUT.md and OUTPUT.png.")) -> None:
    """Combine several models' eval folders into the R1 paper's table (Markdown) and one chart (PNG)."""
    from distill.evaluate.paper_table import combine

    typer.echo("wrote " + " and ".join(map(str, combine(list(folders), output))))


# The help lists these first, in the order a user meets them; the others follow in the order they were added.
FIRST = ("generate", "merge", "filter", "inspect", "students", "train")
app.registered_commands.sort(key=lambda command: FIRST.index(command.name) if command.name in FIRST else len(FIRST))


def main() -> None:
    """Entry point: every failure is one line on stderr and an exit code (distill.core.errors.report), never a traceback."""
    processes.guard()  # whatever a stage starts (engines, workers, servers) dies with this process
    processes.interrupt_on_sigterm()  # a scheduler's SIGTERM is handled as Ctrl-C (exit 143)
    try:
        # The command itself, without typer's own handling around it: that turns Ctrl-C into a
        # silent exit code (and our `Interrupted` message would be lost).
        command = typer.main.get_command(app)
        with command.make_context("distill", sys.argv[1:]) as ctx:
            command.invoke(ctx)
    except (Exception, KeyboardInterrupt) as exc:
        code = report(exc)
        if code is None:  # DISTILL_TRACEBACK=1 and an unexpected error
            raise
        sys.exit(code)


if __name__ == "__main__":
    main()
