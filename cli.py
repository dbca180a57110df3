"""The `distill` command. Thin on purpose: parse options, resolve the recipe, call the stage.

Every stage is a function over records that lives in its own module; this file only wires
flags to it. Heavy libraries (torch, vllm, transformers) are imported inside the commands so
that `distill --help` and bad-input errors are instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from distill.errors import EXIT_BAD_INPUT, InputError, StageError

app = typer.Typer(
    name="distill",
    help="Distil long chain-of-thought reasoning from a teacher into small dense students.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

RecipeOption = typer.Option(None, "--recipe", help="YAML recipe; flags given here override it.", exists=False)
PrintConfigOption = typer.Option(False, "--print-config", help="Print the resolved configuration and exit.")


def resolved(model: type, recipe: Path | None, section: str, print_config: bool, **overrides: Any):
    """Resolve a stage's configuration (recipe section, then flags); print and exit if asked."""
    from distill.config import dump, resolve

    config = resolve(model, recipe, section, overrides)
    if print_config:
        typer.echo(dump(config), nl=False)
        raise typer.Exit(0)
    return config


@app.callback()
def _root(version: bool = typer.Option(False, "--version", help="Show the version and exit.", is_eager=True)) -> None:
    if version:
        from distill import __version__

        typer.echo(f"distill {__version__}")
        raise typer.Exit(0)


# --- stage commands are registered below, one block per stage ----------------------------


def main() -> None:
    """Entry point: user mistakes become one line on stderr and exit code 2, never a traceback."""
    try:
        app()
    except InputError as exc:
        sys.stderr.write(f"error: {str(exc).splitlines()[0] if str(exc) else exc!r}\n")
        sys.exit(EXIT_BAD_INPUT)
    except StageError as exc:
        sys.stderr.write(f"failed: {exc}\n")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
