"""`distill run RECIPE.yaml`: the stages of one recipe, chained inside one run directory.

Each stage writes into RUN_DIR/<stage>/ and records there, when it completes, `stage.json`: a
fingerprint of its resolved configuration and of its inputs (the fingerprints of the stages
that produced them, or size and mtime of external files), its summary and its timing. A
re-run skips a stage whose fingerprint is unchanged; any change re-runs it and, through the
chained fingerprints, every stage after it. `--from STAGE` redoes a stage and what follows,
`--until STAGE` stops after one. A failed stage leaves earlier stages' outputs intact and the
error says how to continue.

The stages and their wiring are in `distill.pipeline.stages`; per-stage logs and the tables
are in `distill.pipeline.log`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from distill.core import lock
from distill.core.config import NAME, blamed, fingerprint_view, set_keys, validate
from distill.core.config import load_recipe as load_recipe_doc
from distill.core.errors import BudgetReached, InputError, Interrupted, StageError
from distill.core.paths import Out, check_io, write_text
from distill.pipeline import rejection
from distill.pipeline.manifest import Manifest
from distill.pipeline.rejection import FILTER, GENERATE
from distill.pipeline.stages import Context, default_stages, registry, sections, upstream, wire


class RunSettings(BaseModel):
    """The recipe's `run` section: which stages run, and settings of the run itself."""

    model_config = ConfigDict(extra="forbid")

    stages: list[str] = Field(default_factory=lambda: default_stages(), description="Stages to run, in order (default: generate, filter, train, publish, eval).")
    output_dir: str | None = Field(default=None, description="Run directory when -o is not given (default: runs/<recipe name>).")
    torch_threads: int | None = Field(
        default=None, ge=1, description="torch CPU threads for in-process stages (tiny models run fastest on one)."
    )


class StageRecord(BaseModel):
    """RUN_DIR/<stage>/stage.json: written when a stage completes (its absence means not complete)."""

    model_config = ConfigDict(extra="allow")

    stage: str
    status: str = Field(description="complete")
    fingerprint: str = Field(description="Hash of the resolved configuration and of the inputs.")
    seconds: float = 0.0
    summary: dict[str, Any] = Field(default_factory=dict, description="What the stage's run function returned.")


# ---------------------------------------------------------------------------- planning


@dataclass
class Planned:
    name: str
    config: BaseModel
    fingerprint: str
    state: str  # "done" (complete and unchanged), "changed", "new", "stale" (an input stage re-runs), "redo" (--from)


def load_recipe(recipe: str | os.PathLike, overrides: list[str] | None = None) -> tuple[dict[str, Any], RunSettings]:
    """The recipe document with `--set section.key=value` overrides applied, and its run settings."""
    doc = load_recipe_doc(recipe, sections())
    for item in overrides or []:
        _apply_override(doc, item)
    with blamed(set_keys(overrides)):
        settings = validate(RunSettings, doc.get("run") or {}, where=str(recipe), yaml_path=recipe, prefix=("run",))
        stages = registry()
        for name in settings.stages:
            if name not in stages:
                import difflib

                close = difflib.get_close_matches(name, list(stages), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else f" (stages are {', '.join(stages)})"
                raise InputError(f"unknown stage '{name}'{hint}", where=str(recipe), field="run.stages")
        if len(set(settings.stages)) != len(settings.stages):
            raise InputError("a stage is listed twice", where=str(recipe), field="run.stages")
    return doc, settings


def _apply_override(doc: dict[str, Any], item: str) -> None:
    from distill.core.config import check_section, parse_yaml

    key, sep, raw = item.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise InputError(f"--set expects SECTION.KEY=VALUE, got '{item}'", field="--set")
    known = sections()
    if parts[0] not in known or parts[0] in ("name", "description"):
        import difflib

        close = difflib.get_close_matches(parts[0], [s for s in known if s not in ("name", "description")], n=1)
        raise InputError(f"unknown section '{parts[0]}'" + (f" (did you mean '{close[0]}'?)" if close else ""), field=f"--set {key}")
    check_section(parts[0], doc.get(parts[0]), "recipe")
    target = doc
    for part in parts[:-1]:
        if target.get(part) is None:
            target[part] = {}
        target = target[part]
        if not isinstance(target, dict):
            raise InputError(f"'{part}' is not a section of settings", field=f"--set {key}")
    target[parts[-1]] = parse_yaml(raw, "command line", field=f"--set {key}") if raw.strip() else None


def stage_config(name: str, ctx: Context) -> BaseModel:
    """The stage's configuration: its recipe section, with the run's paths wired in, validated."""
    stage = registry()[name]
    section = ctx.doc.get(stage.section) or {}
    if not isinstance(section, dict):
        raise InputError("must be a mapping of settings", where=str(ctx.recipe), field=stage.section)
    values = wire(name, section, ctx)
    where = str(ctx.recipe) if ctx.recipe else "recipe"
    with blamed(ctx.overrides):
        return validate(stage.config, values, where=where, yaml_path=ctx.recipe, prefix=(stage.section,))


def fingerprint(name: str, config: BaseModel, ctx: Context, upstream: dict[str, str]) -> str:
    """Hash of the resolved config, the upstream stages' fingerprints and external inputs' stats."""
    # Operational settings (concurrency, retries, workers) do not change what a stage produces:
    # changing them must not throw away hours of teacher samples.
    stage = registry()[name]
    # The output paths stay in: they are this run's own, and leaving them out would change the fingerprint of
    # every finished stage, so that a finished generate would sample (and pay for) its teacher tokens again.
    data = fingerprint_view(config)  # renamed settings and filled-in defaults as they were
    for dotted in stage.operational:  # "workers", or a nested setting such as "judge.price_in"
        *parents, leaf = dotted.split(".")
        section = data
        for key in parents:
            section = section.get(key) if isinstance(section, dict) else None
        if isinstance(section, dict):
            section.pop(leaf, None)
    own = str(ctx.dir(name))
    externals = {}
    # Only the fields that name the stage's inputs: any other string (a column called "tests")
    # may happen to name a folder in the working directory.
    for value in _strings({field: data.get(field) for field in stage.reads}):
        if value.startswith(str(ctx.run_dir)) or value.startswith(own):
            continue
        path = Path(value)
        if path.exists():
            externals[value] = _stat(path)
    text = json.dumps({"stage": name, "config": data, "upstream": upstream, "inputs": externals}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _strings(data: Any):
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from _strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _strings(value)


def _stat(path: Path) -> list[Any]:
    # size + mtime, not a content hash: inputs can be tens of GB of traces.
    if path.is_file():
        stat = path.stat()
        return [stat.st_size, stat.st_mtime_ns]
    files = sorted(p for p in path.rglob("*") if p.is_file())[:10000]
    return [[str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def read_state(stage_dir: Path) -> StageRecord | None:
    """The stage's record, or None when it has none (or an unreadable one: the stage runs again)."""
    try:
        return StageRecord.model_validate_json((stage_dir / "stage.json").read_bytes())
    except (OSError, ValueError):
        return None


def plan(recipe: str | os.PathLike, run_dir: str | os.PathLike | None = None, start: str | None = None,
         until: str | None = None, overrides: list[str] | None = None) -> tuple[Context, list[Planned]]:
    """Validate every stage's settings and decide which stages run; loads no model."""
    doc, settings = load_recipe(recipe, overrides)
    name = doc.get("name") or Path(recipe).stem
    if not (run_dir or settings.output_dir) and (not NAME.match(name) or name in (".", "..")):
        raise InputError("the recipe's file name is not a plain name; give the run directory with -o", where=str(recipe), field="name")
    out = Path(run_dir or settings.output_dir or Path("runs") / str(name)).resolve()
    check_io([Out(out, "-o" if run_dir else "run.output_dir", kind="dir")])
    ctx = Context(run_dir=out, stages=list(settings.stages), doc=doc, recipe=Path(recipe), settings=settings,
                  overrides=set_keys(overrides))
    with blamed(ctx.overrides):
        ctx.rejection = rejection.settings(doc, ctx.stages, str(recipe))
    for flag, value in (("--from", start), ("--until", until)):
        if value is not None and value not in ctx.stages:
            raise InputError(f"'{value}' is not a stage of this recipe (stages: {', '.join(ctx.stages)})", field=flag)
    planned: list[Planned] = []
    fingerprints: dict[str, str] = {}
    running: set[str] = set()
    redo = False
    for stage_name in ctx.stages:
        config = stage_config(stage_name, ctx)
        after = upstream(stage_name, ctx)
        inputs = {d: fingerprints[d] for d in after if d in fingerprints}
        if ctx.rejection is not None and stage_name == FILTER:  # the loop decides what the filter keeps
            inputs[rejection.SECTION] = json.dumps(ctx.rejection.model_dump(), sort_keys=True)
        print_ = fingerprint(stage_name, config, ctx, inputs)
        fingerprints[stage_name] = print_
        redo = redo or stage_name == start
        state = read_state(ctx.dir(stage_name))
        if redo:
            status = "redo"
        elif state is None:
            status = "new"
        elif state.fingerprint == print_ and state.status == "complete":
            # Complete and unchanged, unless a stage it reads from runs again now (outputs
            # missing or removed): then its inputs are being rewritten under it.
            status = "stale" if any(d in running for d in after) else "done"
        else:
            status = "changed"
        if status != "done":
            running.add(stage_name)
        planned.append(Planned(stage_name, config, print_, status))
        if stage_name == until:
            break
    return ctx, planned


# ---------------------------------------------------------------------------- running


def execute(ctx: Context, planned: list[Planned], recipe_text: str | None = None, console: Any = None,
            force: bool = False, pilot: int | None = None) -> dict[str, Any]:
    """Run the planned stages that are not done; returns {stage: summary}.

    pilot: run only generate and filter, on the first `pilot` prompts, without completing them (the
    full run resumes from their samples), and add the forecast (`distill.pipeline.pilot`) as "pilot".

    Only what this tool wrote is ever removed (see distill.pipeline.manifest); a run directory,
    or the folder of a stage about to run, that holds anything else is an error unless `force`
    (and even then, those files stay). One `distill run` at a time per run directory (distill.core.lock).
    """
    with lock.hold(ctx.run_dir, field="run directory"):
        return _execute_held(ctx, planned, recipe_text, console, force, pilot)


def _execute_held(ctx: Context, planned: list[Planned], recipe_text: str | None, console: Any, force: bool,
                  pilot: int | None) -> dict[str, Any]:
    manifest = Manifest(ctx.run_dir)
    foreign = manifest.foreign([p.name for p in planned if p.state != "done"])
    if foreign and not force:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise InputError(f"holds files distill did not write ({shown}); use another run directory, move them away, "
                         "or --force to run beside them (they are left untouched)", where=str(ctx.run_dir))
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    manifest.add_top("recipe.yaml", "run.json")
    manifest.save()
    if recipe_text is not None:
        write_text(ctx.run_dir / "recipe.yaml", recipe_text)
    threads = _set_torch_threads(ctx.settings.torch_threads)
    try:
        results = _pilot(ctx, planned, pilot, console, manifest) if pilot else _execute(ctx, planned, console, manifest)
    finally:
        _set_torch_threads(threads)
    _write_json(ctx.run_dir / "run.json", {"stages": [p.name for p in planned], "results": results})
    return results


def _set_torch_threads(count: int | None) -> int | None:
    """Set torch's CPU threads (None: leave them); returns the previous count."""
    if not count:
        return None
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    return previous


def _execute(ctx: Context, planned: list[Planned], console: Any, manifest: Manifest) -> dict[str, Any]:
    results: dict[str, Any] = {}
    by_name = {item.name: item for item in planned}
    for item in planned:
        if item.name in results:  # run by the rejection loop with generate
            continue
        loop = ctx.rejection is not None and item.name == GENERATE and FILTER in by_name
        if loop and not item.state == by_name[FILTER].state == "done":  # generate's samples may stand, the loop goes on
            results.update(_run_rejection(ctx, item, by_name[FILTER], console, manifest))
            continue
        if item.state == "done":
            record = read_state(ctx.dir(item.name))
            results[item.name] = {"skipped": True, **(record.summary if record else {})}
            _say(console, f"[dim]{item.name}: up to date, skipped[/dim]")
            continue
        _start(ctx, item, console, manifest)
        started = time.time()
        try:
            summary = _call(ctx, item, item.config)
        finally:
            manifest.finished(item.name)
        results[item.name] = _complete(ctx, item, summary, started)
    return results


def _pilot(ctx: Context, planned: list[Planned], prompts: int, console: Any, manifest: Manifest) -> dict[str, Any]:
    from distill.pipeline import pilot

    by_name = {item.name: item for item in planned}
    if GENERATE not in by_name or FILTER not in by_name:
        raise InputError("a pilot generates and filters: the run's stages must include generate and filter", field="--pilot")
    generate = by_name[GENERATE]
    earlier = _execute(ctx, planned[: planned.index(generate)], console, manifest)  # what makes the prompts and the teacher
    config = generate.config.model_copy(update={"limit": min(prompts, generate.config.limit or prompts)})
    items = Planned(GENERATE, config, generate.fingerprint, "new"), Planned(FILTER, by_name[FILTER].config, "", "redo")
    if ctx.rejection is not None:
        summaries = _run_rejection(ctx, *items, console, manifest, complete=False)
    else:
        summaries = {}
        for item in items:
            _start(ctx, item, console, manifest)
            try:
                summaries[item.name] = _call(ctx, item, item.config)
            finally:
                manifest.finished(item.name)
    figures = pilot.forecast(generate.config, summaries[GENERATE], summaries[FILTER], pilot.run_prompts(generate.config))
    _say(console, pilot.table(figures))
    figures["verdict"] = pilot.verdict(figures, generate.config)
    _say(console, figures["verdict"])
    return {**earlier, **summaries, "pilot": figures}


def _run_rejection(ctx: Context, generate: Planned, filter_: Planned, console: Any, manifest: Manifest,
                   complete: bool = True) -> dict[str, Any]:
    """generate and filter as the rounds of the rejection loop; both complete when it ends (unless a pilot)."""
    if generate.state == "done":  # its samples stand: the loop only adds to them
        generate = Planned(generate.name, generate.config, generate.fingerprint, "new")
    for item in (generate, filter_):
        _start(ctx, item, console, manifest)
    started = time.time()
    items = {GENERATE: generate, FILTER: filter_}
    try:
        summaries = rejection.run_loop(ctx.rejection, generate.config, filter_.config,
                                       lambda name, config: _call(ctx, items[name], config),
                                       ctx.dir(GENERATE), lambda table: _say(console, table))
    finally:
        for item in items.values():
            manifest.finished(item.name)
    if not complete:
        return dict(zip(items, summaries, strict=True))
    return {item.name: _complete(ctx, item, summary, started) for item, summary in zip(items.values(), summaries, strict=True)}


def _start(ctx: Context, item: Planned, console: Any, manifest: Manifest) -> None:
    stage_dir = ctx.dir(item.name)
    _prepare_dir(stage_dir, item, registry()[item.name], manifest)
    write_text(stage_dir / "config.yaml", _dump(item.config))
    _say(console, f"[bold]== {item.name}[/bold] -> {stage_dir}")


def _call(ctx: Context, item: Planned, config: BaseModel) -> dict[str, Any]:
    """The stage's run function on `config`, its output in the stage's log, its errors said the run's way."""
    from distill.pipeline.log import stage_log

    stage_dir = ctx.dir(item.name)
    try:
        with stage_log(stage_dir / "log.txt"):
            return registry()[item.name].run(config) or {}
    except InputError as exc:
        raise InputError(f"stage '{item.name}' failed: {exc}. {_how_to_continue(ctx, item.name)}") from exc
    except Interrupted as exc:
        raise Interrupted(f"stage '{item.name}': {exc}") from None
    except BudgetReached as exc:  # not complete: a re-run with a higher budget resumes the stage
        raise BudgetReached(f"stage '{item.name}': {exc}", exc.summary) from None
    except Exception as exc:  # a crash inside a stage: keep what earlier stages wrote
        raise StageError(f"stage '{item.name}' failed: {type(exc).__name__}: {exc} "
                         f"(log: {stage_dir / 'log.txt'}). {_how_to_continue(ctx, item.name)}") from exc


def _complete(ctx: Context, item: Planned, summary: dict[str, Any], started: float) -> dict[str, Any]:
    """stage.json: the stage is complete (what a re-run skips)."""
    seconds = round(time.time() - started, 1)
    summary = json.loads(json.dumps(summary or {}, default=str))
    record = StageRecord(stage=item.name, status="complete", fingerprint=item.fingerprint, seconds=seconds, summary=summary)
    _write_json(ctx.dir(item.name) / "stage.json", record.model_dump(mode="json"))
    return {"seconds": seconds, **summary}


def _prepare_dir(stage_dir: Path, item: Planned, stage: Any, manifest: Manifest) -> None:
    """A stage starts clean unless it can resume the same work it was interrupted in.

    Only what the stage wrote before is cleared (foreign files stay, see `execute`); teacher
    samples (a resumable stage's .jsonl) can cost real money and are set aside, never deleted.
    """
    started = stage_dir / "started.json"
    same_work = False
    if started.exists():
        try:
            same_work = json.loads(started.read_text(encoding="utf-8")).get("fingerprint") == item.fingerprint
        except (OSError, json.JSONDecodeError):
            same_work = False
    if stage_dir.exists() and not (stage.resumable and same_work and item.state == "new"):
        manifest.clear_stage(item.name, aside=stage.resumable and any(stage_dir.glob("*.jsonl")))
    foreign = [p.name for p in stage_dir.iterdir()] if stage_dir.is_dir() else []
    foreign = [name for name in foreign if not manifest.ours_in_stage(item.name, name)]
    expected = {Path(path).parts[0] for path in stage.writes.values() if path}
    manifest.starting(item.name, sorted(expected), foreign)
    stage_dir.mkdir(parents=True, exist_ok=True)
    (stage_dir / "stage.json").unlink(missing_ok=True)
    _write_json(started, {"fingerprint": item.fingerprint, "at": time.strftime("%Y-%m-%dT%H:%M:%S")})


def _how_to_continue(ctx: Context, name: str) -> str:
    recipe = ctx.recipe or "RECIPE"
    return (f"Earlier stages are kept; fix the cause and run `distill run {recipe} -o {ctx.run_dir}` "
            f"to continue from '{name}'")


def _dump(config: BaseModel) -> str:
    from distill.core.config import dump

    return dump(config)


def _write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def _say(console: Any, text: str) -> None:
    if console is not None:
        console.print(text)
