"""The stages `distill run` knows: a plain dict of name -> where the stage's config model and run
function live, which recipe section configures it, and how its paths are wired in the run dir.

Wiring is what chains the stages: a stage's inputs are the outputs of the stage before it in
the run directory (when that stage is part of the run), its outputs go to RUN_DIR/<stage>/.
Paths a recipe sets for wired fields are replaced; unwired ones (a user's prompts) are kept.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Stage:
    """One registry entry: the stage's section, config model, run function and path wiring."""

    section: str  # recipe section holding its settings
    config: str  # "module:Class"
    run: str  # "module:function"
    wire: Callable[[dict[str, Any], Context], dict[str, Any]]  # fills paths into the section's values
    resumable: bool = False  # an interrupted run continues from what the stage dir holds
    after: tuple[str, ...] = ()  # stages whose outputs it reads, when they are part of the run
    reads: tuple[str, ...] = ()  # config fields naming its inputs (shown and checked by --dry-run)
    check: str | None = None  # "module:function" validating the config further without loading models
    volatile: tuple[str, ...] = ()  # fields that do not change the outputs (left out of the fingerprint)


@dataclass
class Context:
    """What wiring needs: the run dir, the stages of this run and the recipe document."""

    run_dir: Path
    stages: list[str]
    doc: dict[str, Any]
    recipe: Path | None = None
    settings: Any = None  # the recipe's RunSettings

    def dir(self, stage: str) -> Path:
        return self.run_dir / stage

    def has(self, stage: str) -> bool:
        return stage in self.stages


# ---------------------------------------------------------------------------- wiring


def _wire_generate(values: dict[str, Any], ctx: Context) -> dict[str, Any]:
    values["output"] = str(ctx.dir("generate") / "traces.jsonl")
    if ctx.has("teacher"):
        values["prompts"] = str(ctx.dir("teacher") / "prompts.jsonl")
        values["teacher"] = str(ctx.dir("teacher") / "model")
    return values


def _wire_filter(values: dict[str, Any], ctx: Context) -> dict[str, Any]:
    if ctx.has("generate"):
        values["input"] = str(ctx.dir("generate") / "traces.jsonl")
    out = ctx.dir("filter")
    values.update(output=str(out / "kept.jsonl"), rejected=str(out / "rejected.jsonl"), report=str(out / "report.json"))
    return values


def _wire_train(values: dict[str, Any], ctx: Context, name: str = "train") -> dict[str, Any]:
    if name == "train" and ctx.has("filter"):
        values["data"] = str(ctx.dir("filter") / "kept.jsonl")
    if name == "train-unfiltered":
        values["data"] = str(ctx.dir(name) / "traces.jsonl")
    if ctx.has("teacher"):
        values["base_model"] = str(ctx.dir("teacher") / "student-base")
    values["output_dir"] = str(ctx.dir(name))
    return values


def _wire_publish(values: dict[str, Any], ctx: Context) -> dict[str, Any]:
    if ctx.has("train"):
        values["run_dir"] = str(ctx.dir("train"))
    values["output"] = str(ctx.dir("publish") / "model")
    values["overwrite"] = True  # the pipeline owns RUN_DIR/publish: a re-run replaces it
    if ctx.has("filter"):
        values.setdefault("filter_report", str(ctx.dir("filter") / "report.json"))
    if ctx.recipe is not None:
        values.setdefault("recipe_file", str(ctx.run_dir / "recipe.yaml"))
    return values


def _wire_eval(values: dict[str, Any], ctx: Context) -> dict[str, Any]:
    if ctx.has("publish"):
        values["model"] = str(ctx.dir("publish") / "model")
    if ctx.has("teacher"):
        values["benchmarks"] = [str(ctx.dir("teacher") / "heldout.jsonl")]
    values["output_dir"] = str(ctx.dir("eval"))
    return values


def _wire_teacher(values: dict[str, Any], ctx: Context) -> dict[str, Any]:
    values["output_dir"] = str(ctx.dir("teacher"))
    return values


def _wire_compare(values: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """The quickstart's comparison: the eval section's settings, applied to every model."""
    teacher = ctx.dir("teacher")
    values = {
        "eval": _wire_eval(dict(values), ctx),
        "models": {
            "teacher": str(teacher / "model"),
            "student before training": str(teacher / "student-base"),
            "student, filtered traces": str(ctx.dir("publish") / "model"),
            "student, unfiltered traces": str(ctx.dir("train-unfiltered") / "final"),
        },
        "filter_report": str(ctx.dir("filter") / "report.json"),
        "language": dict(ctx.doc.get("filter", {}).get("language") or {}),
        "output_dir": str(ctx.dir("compare")),
    }
    return values


STAGES: dict[str, Stage] = {
    "teacher": Stage("run", "distill.quickstart.config:TeacherStageConfig", "distill.quickstart.stage:run_teacher", _wire_teacher),
    "generate": Stage(
        "generate", "teacher.config:GenerateConfig", "teacher.generate:run", _wire_generate, resumable=True,
        after=("teacher",), reads=("prompts", "teacher"), check="teacher.generate:_check",
        volatile=("concurrency", "request_timeout", "max_retries", "retry_base_delay", "retry_max_delay", "max_pending", "api_key_env"),
    ),
    "filter": Stage("filter", "distill.filters.config:FilterConfig", "distill.filters.stage:run", _wire_filter, after=("generate",), reads=("input",),
                    volatile=("workers",)),
    "train": Stage("train", "students.config:TrainConfig", "students.train:run", _wire_train, after=("filter", "teacher"), reads=("data", "base_model")),
    "train-unfiltered": Stage(
        "train", "students.config:TrainConfig", "distill.quickstart.stage:run_unfiltered",
        lambda v, c: _wire_train(v, c, "train-unfiltered"), after=("generate", "filter", "teacher"), reads=("base_model",),
    ),
    "publish": Stage("publish", "students.publish:PublishConfig", "students.publish:run", _wire_publish, after=("train", "filter"), reads=("run_dir",)),
    "eval": Stage("eval", "distill.evaluate:EvalConfig", "distill.evaluate:run", _wire_eval, after=("publish", "teacher"), reads=("model", "benchmarks")),
    "compare": Stage(
        "eval", "distill.quickstart.config:CompareConfig", "distill.quickstart.stage:run_compare", _wire_compare,
        after=("teacher", "filter", "publish", "train-unfiltered"), reads=("models",),
    ),
}


def load(path: str) -> Any:
    """The object at 'module:name' (stages import their heavy libraries only when they run)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)
