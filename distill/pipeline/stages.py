"""The stages `distill run` can chain, and how their paths are wired inside one run directory.

The orchestrator knows no stage by name: it iterates the modules listed here, each of which
exports `STAGES` (see `distill.core.stage.Stage`), and wires every stage from what the stages
declare. A stage's inputs are the artifacts produced by earlier stages of the same run (when
they are part of it); its outputs go into RUN_DIR/<stage>/. A recipe's value for a wired input
is replaced; inputs no stage of the run produces (a user's prompts) keep the recipe's value.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.core.stage import Stage

# Every module that declares stages, in no particular order (a recipe's `run.stages` orders them).
STAGE_MODULES = (
    "teacher.generate",
    "distill.filters.stage",
    "students.train",
    "students.onpolicy",
    "students.grpo",
    "students.publish",
    "distill.publish_data.stage",
    "distill.evaluate.stage",
    "distill.difficulty.stage",
    "distill.quickstart.stages",
    "distill.quickstart.onpolicy",
    "distill.quickstart.grpo",
    "distill.quickstart.length",
)
# Sections a recipe may hold besides the stages' own.
META_SECTIONS = ("name", "description", "run", "rejection")


@functools.cache
def registry() -> dict[str, Stage]:
    """name -> Stage, from every module in STAGE_MODULES."""
    stages: dict[str, Stage] = {}
    for module in STAGE_MODULES:
        for stage in importlib.import_module(module).STAGES:
            if stage.name in stages:
                raise RuntimeError(f"two stages are called '{stage.name}'")
            stages[stage.name] = stage
    return stages


def default_stages() -> list[str]:
    """A recipe's stages when its `run` section does not list them."""
    return [name for name, stage in registry().items() if stage.default_run]


def sections() -> tuple[str, ...]:
    """Every section a recipe may hold."""
    return (*META_SECTIONS, *dict.fromkeys(stage.section for stage in registry().values()))


@dataclass
class Context:
    """What wiring needs: the run dir, the stages of this run, the recipe document and its run settings."""

    run_dir: Path
    stages: list[str]
    doc: dict[str, Any]
    recipe: Path | None = None
    settings: Any = None  # the recipe's RunSettings
    rejection: Any = None  # the recipe's `rejection` section (distill.pipeline.rejection), when it has one
    overrides: dict[str, str] = dataclasses.field(default_factory=dict)  # "section.key" -> the `--set` that gave it

    def dir(self, stage: str) -> Path:
        return self.run_dir / stage

    def producer(self, artifact: str, before: str) -> tuple[str, Path] | None:
        """The last stage before `before` in this run that produces `artifact`, and the artifact's path."""
        if artifact == "recipe" and self.recipe is not None:
            return "", self.run_dir / "recipe.yaml"  # the run's own copy of its recipe
        found = None
        for name in self.stages[: self.stages.index(before)]:
            path = registry()[name].produces.get(artifact)
            if path is not None:
                found = name, self.dir(name) / path
        return found


def upstream(name: str, ctx: Context) -> list[str]:
    """Stages of this run whose outputs `name` reads."""
    stage = registry()[name]
    found = (ctx.producer(artifact, name) for artifact in stage.reads.values() if artifact)
    return list(dict.fromkeys(producer for producer, _ in filter(None, found) if producer))


def wire(name: str, values: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """The stage's section values with its inputs and outputs pointed into the run directory."""
    stage = registry()[name]
    values = dict(values)
    for field, source in stage.defaults.items():
        section, key = source.split(".", 1)
        other = ctx.doc.get(section)
        if values.get(field) is None and isinstance(other, dict) and other.get(key) is not None:
            values[field] = other[key]
    for field, artifact in stage.reads.items():
        found = ctx.producer(artifact, name) if artifact else None
        if found is None:
            continue
        if isinstance(values.get(field), list) and len(values[field]) > 1:
            # Several sources (a training mixture): the one named after the artifact is this run's.
            values[field] = [_named(item, artifact, str(found[1])) for item in values[field]]
        else:
            values[field] = [str(found[1])] if _is_list(stage.config, field) else str(found[1])
    for field, path in stage.writes.items():
        values[field] = str(ctx.dir(name) / path) if path else str(ctx.dir(name))
    values.update(stage.in_run)
    return values


def _named(item: Any, artifact: str, path: str) -> Any:
    """`item` (a path, or a {path: ...} source) with the artifact's name replaced by its path."""
    if item == artifact:
        return path
    if isinstance(item, dict) and item.get("path") == artifact:
        return {**item, "path": path}
    return item


def _is_list(model: Any, field: str) -> bool:
    if field not in model.model_fields:  # a key the config moves into a nested section (generate's teacher): one value
        return False
    annotation = model.model_fields[field].annotation
    return any(typing.get_origin(a) is list for a in (annotation, *typing.get_args(annotation)))
