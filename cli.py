"""The `distill` command. Wiring only: each command's flags are derived from its stage's config
model (distill.core.flags), resolved with the recipe, and handed to the stage's function.

Heavy libraries (torch, vllm, transformers) are imported inside the stages, so that
`distill --help` and bad-input errors are instant.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from distill.core import processes
from distill.core.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, InputError, Interrupted, StageError
from distill.core.flags import stage_command
from distill.evaluate.config import EvalConfig
from distill.filters.config import FilterConfig
from distill.filters.inspect import InspectConfig
from distill.pipeline.stages import sections
from distill.publish_data.stage import PublishDataConfig
from students.config import TrainConfig
from students.grpo_config import GrpoConfig
from students.onpolicy_config import OnPolicyConfig
from students.publish import PublishConfig
from teacher.config import GenerateConfig

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


def _console():
    from rich.console import Console

    return Console(stderr=True)


@stage_command(app, "generate", GenerateConfig, section="generate", arguments=["prompts"], sections=sections)
def generate(config: GenerateConfig) -> None:
    """Sample chain-of-thought traces from the teacher (R1 defaults), resumable and sharded."""
    from distill.core.errors import BudgetReached
    from teacher.generate import run
    from teacher.progress import summary_table

    console = _console()
    try:
        summary = run(config, console=console)
    except BudgetReached as exc:  # the table of what was done, then the one line saying why it stopped
        if "samples_written" in exc.summary:
            console.print(summary_table(exc.summary))
        raise
    console.print(summary_table(summary))


@app.command("merge")
def merge(
    shards: list[Path] = typer.Argument(..., help="Shard outputs of `distill generate --shard` (JSONL)."),
    output: Path = typer.Option(..., "--output", "-o", help="Merged file (.jsonl or .parquet), written atomically."),
) -> None:
    """Merge generate shards into one file: each sample once, torn last lines dropped."""
    from teacher.store import merge_shards

    summary = merge_shards(list(shards), output)
    typer.echo(f"merged {summary['records']:,} records from {len(shards)} files into {summary['output']}"
               f" ({summary['duplicates_dropped']} duplicates, {summary['torn_lines_dropped']} torn lines dropped)"
               + (f"; log-probabilities of {summary['logprobs_records']:,} records" if summary["logprobs_records"] else ""))


@stage_command(app, "filter", FilterConfig, section="filter", arguments=["input"], sections=sections)
def filter_(config: FilterConfig) -> None:
    """Judge traces with named rules; write kept (SFT-ready) and rejected records and a report."""
    from distill.filters.report import print_report
    from distill.filters.stage import run

    print_report(run(config))


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


@stage_command(app, "train", TrainConfig, section="train", sections=sections, extras={
    "plan": (bool, typer.Option(False, "--plan", help="Print predicted memory per GPU for full/LoRA/QLoRA and exit.",
                                rich_help_panel="Memory planner (--plan)")),
})
def train(config: TrainConfig, plan: bool = False) -> None:
    """Fine-tune a student on kept traces (full, --lora or --qlora), with packing and checkpoints."""
    from rich.console import Console

    console = Console()
    if plan:
        from students.report import plan_report

        plan_report(config, console)
        return
    from students.layout import end_distributed, is_main_process
    from students.report import summary_table
    from students.train import run

    try:
        summary = run(config)
    finally:
        end_distributed()
    if summary and is_main_process():  # under a launcher every rank returns; one table is enough
        console.print(summary_table(summary))


@stage_command(app, "onpolicy", OnPolicyConfig, section="onpolicy", sections=sections)
def onpolicy(config: OnPolicyConfig) -> None:
    """After SFT: the student samples, the teacher scores each of its tokens, the student moves toward it (reverse KL / JSD)."""
    from students.onpolicy import run
    from students.report import onpolicy_table

    _console().print(onpolicy_table(run(config)))


@stage_command(app, "grpo", GrpoConfig, section="grpo", sections=sections)
def grpo(config: GrpoConfig) -> None:
    """After SFT: GRPO with R1's rewards (accuracy by the verifier, format, language consistency, length)."""
    from students import grpo, report

    _console().print(report.grpo_table(grpo.run(config)))


@stage_command(app, "publish", PublishConfig, section="publish", arguments=["run_dir"], sections=sections)
def publish(config: PublishConfig) -> None:
    """Merge adapters, add the inference template, generation config and model card; optionally push."""
    from students.publish import run

    summary = run(config)
    typer.echo(f"published {summary['kind']} model to {summary['output']} ({len(summary['files'])} files)"
               + (f"; pushed to {summary['url']}" if summary.get("url") else ""))


@stage_command(app, "publish-data", PublishDataConfig, section="publish_data", arguments=["input"], sections=sections)
def publish_data(config: PublishDataConfig) -> None:
    """Publish kept traces as a dataset: Parquet shards with `messages` and a card written from the run; optionally push."""
    from distill.publish_data import stage

    typer.echo(stage.summary_line(stage.run(config)))


@stage_command(app, "eval", EvalConfig, section="eval", arguments=["model"], sections=sections)
def evaluate(config: EvalConfig) -> None:
    """Score a model with the R1 protocol: k samples/problem, pass@1 and cons@k, same checker as the filter."""
    from distill.evaluate.stage import run

    summary = run(config)
    typer.echo(f"results in {config.output_dir} (summary.json, eval_table.md, per-problem JSONL); "
               + ", ".join(f"{name} pass@1 {100 * b['pass@1']:.1f}" for name, b in summary["benchmarks"].items()))


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
) -> None:
    """Run a recipe's stages (generate, filter, train, publish, eval) in one run directory; unchanged stages are skipped."""
    from distill.pipeline.command import run_command

    run_command(recipe, output, start, until, sets, dry_run=dry_run, print_config=print_config, force=force,
                budget=budget, budget_tokens=budget_tokens, pilot=pilot, console=_console())


def _say(prefix: str, message: str) -> None:
    """One line on stderr, secrets redacted (a server may echo a key back into an error)."""
    from distill.core.secrets import redact

    line = " ".join(redact(str(message)).split()) or "(no details)"
    sys.stderr.write(f"{prefix}: {line}\n")


def main() -> None:
    """Entry point: every failure is one line on stderr, never a traceback.

    exit 2: a user's mistake (input, configuration, paths), nothing written; exit 1: the
    environment failed mid-run (full disk, server gone), earlier outputs kept; exit 3: stopped at
    the budget (--budget/--budget-tokens), resumable with a higher one; exit 130: Ctrl-C.
    DISTILL_TRACEBACK=1 shows the traceback of an unexpected error.
    """
    import os

    from distill.core.errors import EXIT_BUDGET, BudgetReached

    processes.guard()  # whatever a stage starts (engines, workers, servers) dies with this process
    try:
        # The command itself, without typer's own handling around it: that turns Ctrl-C into a
        # silent exit code (and our `Interrupted` message would be lost).
        command = typer.main.get_command(app)
        with command.make_context("distill", sys.argv[1:]) as ctx:
            command.invoke(ctx)
    except InputError as exc:
        _say("error", (str(exc).splitlines() or [repr(exc)])[0])
        sys.exit(EXIT_BAD_INPUT)
    except StageError as exc:
        _say("failed", str(exc))
        sys.exit(1)
    except BudgetReached as exc:  # a clean, resumable stop: not a failure, not a success either
        _say("stopped", str(exc))
        sys.exit(EXIT_BUDGET)
    except KeyboardInterrupt as exc:
        _say("interrupted", str(exc) if isinstance(exc, Interrupted) else "outputs are as they were, or resumable: re-run the same command")
        sys.exit(EXIT_INTERRUPTED)
    except OSError as exc:  # the environment: full disk, a file gone, a device error
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        _say("failed", f"{exc.strerror or exc}{where}; outputs written before are kept")
        sys.exit(1)
    except Exception as exc:
        kind = _click_kind(exc)
        if kind == "exit":  # --help, --version
            sys.exit(exc.exit_code)
        if kind == "abort":
            _say("interrupted", "outputs are as they were, or resumable: re-run the same command")
            sys.exit(EXIT_INTERRUPTED)
        if kind == "usage":  # an unknown option or command, a missing argument
            _say("error", (exc.format_message().splitlines() or [repr(exc)])[0])
            sys.exit(EXIT_BAD_INPUT)
        if os.environ.get("DISTILL_TRACEBACK"):
            raise
        _say("failed", f"internal error: {type(exc).__name__}: {exc} (DISTILL_TRACEBACK=1 shows where; please report it)")
        sys.exit(1)


def _click_kind(exc: Exception) -> str | None:
    """click's (or typer's vendored click's) control exceptions, by class name: both may be installed."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return "exit" if "Exit" in names else "abort" if "Abort" in names else "usage" if "ClickException" in names else None


if __name__ == "__main__":
    main()
