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
- roles, for the parts of a run that drive stages by what they do, never by name: `samples`
  (the stage samples prompts into its output, n per prompt, resumably, within a budget: the
  rejection loop redraws with it, a pilot runs it on the first prompts, `--budget` applies to it)
  and `selects` (the stage judges the samples of a sampling stage into kept and rejected
  records: the loop reads its verdicts). Their summaries are typed (`SampleSummary`, `SelectSummary`).

Adding a stage is one module that exports `STAGES`, plus its name in `distill.pipeline.stages`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from pydantic import BaseModel

SAMPLES = "samples prompts"
SELECTS = "selects samples"


@dataclass(frozen=True)
class Samples:
    """The role of a stage that samples prompts (generate): how the orchestrator redraws and limits it."""

    per_prompt: Callable[[Any], int]  # config -> samples per prompt it draws
    # (config, n, ids file or None) -> the config that brings every prompt named in the file (all: None) to n samples
    redraw: Callable[[Any, int, str | None], Any]
    first: Callable[[Any, int], Any]  # (config, N) -> the config that samples only the first N prompts (a pilot)
    prompts: Callable[[Any], int]  # config -> how many prompts the full run samples
    budget: tuple[str, str] = ("budget", "budget_tokens")  # the settings `distill run --budget/--budget-tokens` set


@dataclass(frozen=True)
class Selects:
    """The role of a stage that selects samples (filter): where its verdicts are."""

    outputs: Callable[[Any], tuple[str, str | None]]  # config -> (kept records, rejected records or None)


class SampleSummary(TypedDict, total=False):
    """What a sampling stage's summary holds that the loop and the pilot read."""

    prompts: int
    samples_written: int
    spent_prompt_tokens: int  # the whole output's, every run of it
    spent_completion_tokens: int


class SelectSummary(TypedDict, total=False):
    """What a selecting stage's summary holds that the pilot reads."""

    records_in: int
    kept: int


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
    samples: Samples | None = None  # the role SAMPLES
    selects: Selects | None = None  # the role SELECTS

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(role for role, held in ((SAMPLES, self.samples), (SELECTS, self.selects)) if held is not None)
