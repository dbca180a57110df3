"""Command-line flags derived from the configuration models, so that a setting is declared once.

Every field of a stage's pydantic config becomes a flag named after its recipe key
(`learning_rate` -> `--learning-rate`; nested `length.max` -> `--length-max`), with the field's
description as help and its default shown. A field may declare more spellings in its metadata,
`Field(..., json_schema_extra={"flags": ["--lr"]})`, and an enum-like field may declare
switches that set it, `{"switches": {"--lora": "lora"}}`. A flag that was renamed keeps working,
out of the help, as an `{"old_flags": ["--max-length"]}` spelling. Models group their flags in the help
with a `panels` class variable (panel title -> field names); nested models get a panel each.

Values stay strings until pydantic validates the whole configuration, so a bad value is the
same one-line error as a bad recipe key. Flags that were not given are None and leave the
recipe's value (or the default) alone.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel
from rich.markup import escape

from distill.core.errors import InputError


@dataclass(frozen=True)
class Flag:
    path: tuple[str, ...]  # the setting's key path in the config ("length", "max")
    param: str  # the Python parameter name typer passes it as
    decls: tuple[str, ...]  # "--length-max", aliases, or "--x/--no-x" for booleans
    kind: str  # "str", "bool", "list", "mapping" or "switch"
    help: str
    panel: str
    argument: bool = False
    value: Any = None  # what a switch sets
    metavar: str | None = None
    hidden: bool = False  # an old spelling: it works, the help no longer shows it


def _inner(annotation: Any) -> Any:
    """X for `X | None`; the annotation itself otherwise."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
        return args[0]
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _kind(annotation: Any) -> str:
    annotation = _inner(annotation)
    options = (annotation, *typing.get_args(annotation))
    if annotation is bool:
        return "bool"
    if any(typing.get_origin(a) is list or a is list for a in options):
        return "list"
    if any(typing.get_origin(a) is dict or a is dict for a in options):
        return "mapping"
    return "str"


def _metavar(annotation: Any, kind: str) -> str | None:
    annotation = _inner(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return "|".join(map(str, typing.get_args(annotation)))
    if kind in ("bool", "switch"):
        return None
    if kind == "list":
        return "A,B"
    if kind == "mapping":
        return "YAML"
    options = (annotation, *typing.get_args(annotation))
    if int in options:
        return "N"
    if float in options:
        return "X"
    if Path in options:
        return "PATH"
    return "TEXT"


def _help(info: Any, kind: str) -> str:
    text = (info.description or "").rstrip(".")
    annotation = _inner(info.annotation)
    if typing.get_origin(annotation) is typing.Literal:
        text += f" (one of: {', '.join(map(str, typing.get_args(annotation)))})"
    if kind == "list":
        text += " (comma-separated or repeated)"
    if info.is_required():
        return text + " [required]"
    default = info.get_default(call_default_factory=True)
    if default not in (None, "", [], {}) and kind != "bool":
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        text += f" [default: {shown}]"
    return text


def flags_for(model: type[BaseModel], arguments: Iterable[str] = (), prefix: tuple[str, ...] = (), panel: str | None = None) -> list[Flag]:
    """One flag per setting of `model` (recursively), in field order."""
    panels = {name: title for title, names in getattr(model, "panels", {}).items() for name in names}
    flags: list[Flag] = []
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        group = panels.get(name) or panel or "Options"
        annotation = _inner(info.annotation)
        if _is_model(annotation):
            flags += flags_for(annotation, (), path, panels.get(name) or f"{name.replace('_', ' ')} settings")
            continue
        kind = _kind(info.annotation)
        canonical = "--" + "-".join(path).replace("_", "-")
        aliases = [a for a in extra.get("flags", []) if a != canonical]
        param = "__".join(path)
        metavar = _metavar(info.annotation, kind)
        if name in arguments and not prefix:
            flags.append(Flag(path, param, (), kind, _help(info, kind), group, argument=True, metavar=name.upper()))
            continue
        if kind == "bool":  # "--x/--no-x"; an alias may name its own negation ("--all-verdicts/--first-rejection")
            pairs = [a if "/" in a else f"{a}/--no-{a.lstrip('-')}" for a in aliases]
            own = next((p for p in pairs if p.split("/")[0] == canonical), f"{canonical}/--no-{canonical[2:]}")
            decls = (own, *(p for p in pairs if p != own))
        else:
            decls = (canonical, *aliases)
        flags.append(Flag(path, param, decls, kind, _help(info, kind), group, metavar=metavar))
        for old in extra.get("old_flags", []):
            flags.append(Flag(path, f"{param}__{old.strip('-').replace('-', '_')}", (old,), kind, f"Old name of {canonical}.", group,
                              metavar=metavar, hidden=True))
        for switch, value in extra.get("switches", {}).items():
            flags.append(Flag(path, f"{param}__{switch.strip('-').replace('-', '_')}", (switch,), "switch",
                              f"Same as {canonical} {value}.", group, value=value))
    if not prefix:  # in reading order (a model made of parts lists its fields part by part)
        from distill.core.config import field_order

        order = {name: i for i, name in enumerate(field_order(model))}
        flags.sort(key=lambda flag: order[flag.path[0]])
    return flags


def parameters(flags: list[Flag]) -> list[inspect.Parameter]:
    """typer parameters (arguments first) for `flags`; every default is None: 'not given'."""
    params = []
    for flag in sorted(flags, key=lambda f: not f.argument):
        if flag.argument:
            default, annotation = typer.Argument(None, help=escape(flag.help), show_default=False, metavar=flag.metavar), str
        elif flag.kind in ("bool", "switch"):
            default = typer.Option(None, *flag.decls, help=escape(flag.help), show_default=False, rich_help_panel=flag.panel)
            annotation = bool
        else:
            default = typer.Option(None, *flag.decls, help=escape(flag.help), show_default=False, rich_help_panel=flag.panel,
                                   metavar=flag.metavar, hidden=flag.hidden)
            annotation = list[str] if flag.kind == "list" else str
        params.append(inspect.Parameter(flag.param, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation | None))
    return params


def overrides(flags: list[Flag], values: dict[str, Any]) -> dict[str, Any]:
    """The given flags' values as a nested mapping of config keys (None: not given)."""
    nested: dict[str, Any] = {}
    switched: dict[tuple[str, ...], str] = {}
    for flag in flags:
        value = values.get(flag.param)
        if value is None or (flag.kind == "list" and not value):
            continue
        if flag.kind == "switch":
            if not value:
                continue
            if flag.path in switched:
                raise InputError(f"choose one of {switched[flag.path]} and {flag.decls[0]}", field="--" + "-".join(flag.path))
            switched[flag.path] = flag.decls[0]
            value = flag.value
        elif flag.kind == "list":
            value = [part.strip() for item in value for part in item.split(",") if part.strip()]
            if not value:
                raise InputError("empty list", field=flag.decls[0] if flag.decls else flag.param)
        elif flag.kind == "mapping":
            value = _mapping(value, flag.decls[0])
        target = nested
        for key in flag.path[:-1]:
            target = target.setdefault(key, {})
        target[flag.path[-1]] = value
    return nested


def _mapping(text: str, name: str) -> dict[str, Any]:
    from distill.core.config import parse_yaml

    value = parse_yaml(text, "command line", field=name)
    if not isinstance(value, dict):
        raise InputError("expected a mapping such as '{top_k: 20}'", field=name)
    return value


def stage_command(app: typer.Typer, name: str, model: type[BaseModel], *, section: str | None, arguments: Iterable[str] = (),
                  extras: dict[str, tuple[Any, Any]] | None = None, sections: Callable[[], Iterable[str]] | None = None):
    """Register `body(config, **extras)` as command `name`, its flags derived from `model`.

    `section`: the recipe section read with --recipe (None: the command takes no recipe).
    `extras`: command-only options, name -> (annotation, typer.Option(...)).
    """
    from distill.core.config import dump, resolve

    flags = flags_for(model, tuple(arguments))
    extras = extras or {}

    def decorate(body: Callable[..., Any]) -> Callable[..., Any]:
        def command(**kwargs: Any) -> Any:
            recipe = kwargs.pop("recipe", None)
            print_config = kwargs.pop("print_config", False)
            own = {key: kwargs.pop(key) for key in extras}
            if "recipe" in inspect.signature(body).parameters:  # a body that reads other sections of the recipe
                own["recipe"] = recipe
            config = resolve(model, recipe, section or name, overrides(flags, kwargs), sections() if sections and recipe else None)
            if print_config:
                typer.echo(dump(config), nl=False)
                raise typer.Exit(0)
            return body(config, **own)

        params = parameters(flags)
        if section is not None:
            params.append(inspect.Parameter("recipe", inspect.Parameter.KEYWORD_ONLY, annotation=Path | None, default=typer.Option(
                None, "--recipe", help="YAML recipe; flags given here override its section.", rich_help_panel="Recipe")))
        params.append(inspect.Parameter("print_config", inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=typer.Option(
            False, "--print-config", help="Print the resolved configuration and exit.", rich_help_panel="Recipe")))
        for key, (annotation, option) in extras.items():
            params.append(inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=option))
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.__doc__ = body.__doc__
        command.__name__ = body.__name__
        app.command(name)(command)
        return body

    return decorate


def add_stage_commands(app: typer.Typer, stages: Iterable[Any], sections: Callable[[], Iterable[str]]) -> None:
    """One command per stage that declares a `Command` (distill.core.stage), in the stages' order."""
    for stage in stages:
        if stage.command is not None:
            _add_stage_command(app, stage, sections)


def _add_stage_command(app: typer.Typer, stage: Any, sections: Callable[[], Iterable[str]]) -> None:
    from distill.core.errors import BudgetReached

    command = stage.command
    extras = {name: (bool, typer.Option(False, "--" + name.replace("_", "-"), help=text, rich_help_panel=panel))
              for name, (text, panel) in command.switches.items()}

    def body(config: Any, **switches: Any) -> None:
        try:
            summary = (command.run or stage.run)(config, **switches)
        except BudgetReached as exc:  # the table of what was done, then (cli.main) the one line saying why it stopped
            if command.present and exc.summary:
                command.present(exc.summary, config)
            raise
        if command.present and summary:
            command.present(summary, config)

    body.__doc__ = command.help
    body.__name__ = stage.name.replace("-", "_")
    stage_command(app, stage.name, stage.config, section=stage.section, arguments=command.arguments, extras=extras, sections=sections)(body)
