"""The stage interface: what a stage declares so that the CLI and `distill run` can use it
without knowing it by name.

A stage is a function over records with a typed configuration. Its module exports `STAGES`, a
tuple of `Stage` declarations (usually one). Everything about how the stage chains inside a
run directory is declared here, as data:

- `reads`: config fields that name an input, each with the *artifact* it can take from an
  earlier stage of the same run (`"traces"`, `"kept"`, ...) or `None` for an input only the
  user gives (a prompts file). `distill run` fills a field from the stage that produces its
  artifact, when that stage is part of the run; otherwise the recipe's value stays.
- `writes`: config fields that name an output, with the path inside the stage's own run
  folder (`""` is the folder itself). In a run they always point there.
- `produces`: artifacts the stage leaves for later stages, as paths inside its folder.
- `operational`: fields that change how a stage runs, not what it produces (concurrency,
  retries, workers; a nested one as "judge.price_in"): they are left out of the fingerprint, so
  changing them never throws away hours of teacher samples.
- `defaults`: fields a stage takes from another section of the recipe when its own section does
  not set them ("train.student": a grpo stage trains train's preset unless told otherwise).
- `in_run`: values a stage gets when the orchestrator runs it (publish may replace its own
  folder in a run).
- `command`: how the stage is a `distill` command of its own (`Command`: help, positional
  arguments, what it prints at the end); `cli.py` adds one for every stage that declares it.

Adding a stage is one module that exports `STAGES`, plus its name in `distill.pipeline.stages`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class Command:
    """A stage as a `distill` command: its flags come from the stage's config (distill.core.flags)."""

    help: str  # the command's help, first line first
    arguments: tuple[str, ...] = ()  # config fields given as positional arguments
    # present(summary, config): what the command prints at the end (a table, a line); also run with
    # what was done when a budget stopped the stage.
    present: Callable[[dict[str, Any], Any], None] | None = None
    switches: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # command-only --flags: name -> (help, help panel)
    run: Callable[..., dict[str, Any] | None] | None = None  # run(config, **switches), in place of the stage's run


@dataclass(frozen=True)
class Stage:
    name: str  # the stage's name in `run.stages`
    section: str  # the recipe section holding its settings (stages may share one)
    config: type[BaseModel]  # its validated configuration
    run: Callable[[Any], dict[str, Any] | None]  # run(config) -> summary (JSON-able)
    check: Callable[[Any], None] | None = None  # cheap validation, loads no model (dry runs call it)
    reads: Mapping[str, str | None] = field(default_factory=dict)  # input field -> artifact it can take, or None
    writes: Mapping[str, str] = field(default_factory=dict)  # output field -> path inside the stage folder
    produces: Mapping[str, str] = field(default_factory=dict)  # artifact -> path inside the stage folder
    operational: tuple[str, ...] = ()  # fields that do not change what the stage produces
    resumable: bool = False  # an interrupted run continues from what its folder holds
    in_run: Mapping[str, Any] = field(default_factory=dict)  # values set when run inside `distill run`
    defaults: Mapping[str, str] = field(default_factory=dict)  # field -> "section.field" it defaults to in a recipe
    default_run: bool = False  # part of a recipe's default `run.stages` (in the order of the stage list)
    # (field, value, config) -> True when an input value is a name, not a file (a served model, a
    # known benchmark): a dry run does not report it missing.
    remote: Callable[[str, str, Any], bool] | None = None
    command: Command | None = None  # a `distill` command of its own (None: it runs inside `distill run` only)
