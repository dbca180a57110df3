"""Recipes: YAML files validated by the stages' pydantic models.

A recipe has one section per stage (`generate`, `filter`, `train`, `publish`, `eval`, ...; the
stages declare them, see `distill.pipeline.stages`). Each stage's command reads its section,
then lets every command-line flag override it (nested settings merge, key by key). Unknown
keys are errors with a did-you-mean and the YAML line, so a typo never silently falls back
to a default.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from distill.core.errors import InputError
from distill.core.secrets import register_urls

C = TypeVar("C", bound=BaseModel)


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such recipe file", where=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read recipe ({getattr(exc, 'strerror', None) or exc})", where=str(path)) from None
    doc = parse_yaml(text, str(path))
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise InputError("a recipe must be a mapping of stage sections", where=str(path))
    return doc


# Recipes and YAML flag values are plain data: these tags only (no !!python/..., !!binary, !!set).
_PLAIN_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map", "merge")}
MAX_DEPTH = 64  # nesting levels
MAX_VALUES = 100_000  # values after aliases are expanded (an alias bomb expands to billions)


class _PlainLoader(yaml.SafeLoader):
    """SafeLoader without implicit timestamps (dates stay text, as JSON has no date type)."""


_PlainLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_yaml(text: str, where: str, field: str | None = None) -> Any:
    """YAML text as plain data, or one-line `InputError`s: syntax, tags other than plain values,
    duplicate keys, nesting deeper than MAX_DEPTH, aliases expanding past MAX_VALUES values."""
    loader = _PlainLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_node(node, where, field)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f"{where}:{mark.line + 1}" if mark and where != "command line" else where
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"invalid YAML ({problem})", where=place, field=field) from None
    except RecursionError:
        raise InputError(f"nested too deeply (more than {MAX_DEPTH} levels)", where=where, field=field) from None
    finally:
        loader.dispose()


def _check_node(root: yaml.Node, where: str, field: str | None) -> None:
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def fail(node: yaml.Node, message: str) -> None:
        place = f"{where}:{node.start_mark.line + 1}" if where != "command line" else where
        raise InputError(message, where=place, field=field)

    def size(node: yaml.Node, depth: int) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if depth > MAX_DEPTH:
            fail(node, f"nested too deeply (more than {MAX_DEPTH} levels)")
        if id(node) in active:
            fail(node, "an alias refers to its own anchor (a recursive value)")
        if node.tag not in _PLAIN_TAGS:
            fail(node, f"tag '{node.tag.replace('tag:yaml.org,2002:', '!!')}' is not allowed (plain YAML values only)")
        active.add(id(node))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            keys: set[tuple[str, str]] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if (key.tag, key.value) in keys:
                        fail(key, f"duplicate key '{key.value}'")
                    keys.add((key.tag, key.value))
                total += size(key, depth + 1) + size(value, depth + 1)
        active.discard(id(node))
        if total > MAX_VALUES:
            fail(node, f"aliases expand to more than {MAX_VALUES:,} values")
        sizes[id(node)] = total
        return total

    size(root, 0)


def validate(model: type[C], values: dict[str, Any], where: str = "config", yaml_path: str | os.PathLike | None = None, prefix: tuple[str, ...] = ()) -> C:
    """Validate `values` against `model`; errors become one-line `InputError`s. A key written into a
    URL among the values is a secret from now on (never written or shown, see distill.core.secrets)."""
    register_urls(values)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(str(part) for part in error["loc"])
        key = ".".join(prefix + loc)
        line = _yaml_line(yaml_path, prefix + loc) if yaml_path else None
        place = f"{where}:{line}" if line else where
        if error["type"] == "extra_forbidden":
            hint = _did_you_mean(model, loc)
            raise InputError(f"unknown key{hint}", where=place, field=key) from None
        raise InputError(error["msg"].lower(), where=place, field=key) from None


def set_keys(overrides: list[str] | None) -> dict[str, str]:
    """"section.key" -> the `--set section.key=value` that gave it (the last one wins, as applied)."""
    return {item.partition("=")[0].strip(): item for item in overrides or []}


@contextlib.contextmanager
def blamed(overrides: dict[str, str]):
    """An `InputError` about a value a `--set` gave names that `--set`, not the recipe line it replaced."""
    try:
        yield
    except InputError as exc:
        field = exc.field or ""
        for key, item in overrides.items():
            if field == key or field.startswith(key + ".") or key.startswith(field + "."):
                raise InputError(exc.message, where=f"--set {item}", field=field) from None
        raise


def resolve(model: type[C], recipe: str | os.PathLike | None, section: str, overrides: dict[str, Any] | None = None,
            sections: Iterable[str] | None = None) -> C:
    """A stage's configuration: the recipe's section, then every flag that was given on top.

    `overrides` may be nested ({"length": {"max": 400}}): it is merged into the section key by
    key, so a flag for one nested setting keeps the recipe's others.
    """
    values: dict[str, Any] = {}
    if recipe is not None:
        values = load_recipe(recipe, sections).get(section) or {}
        if not isinstance(values, dict):
            raise InputError("must be a mapping of settings", where=str(recipe), field=section)
    renamed = getattr(model, "renamed", {})  # a recipe's old name yields to a flag's new one
    values = {renamed[key] if key in renamed and renamed[key] not in values else key: value for key, value in values.items()}
    values = merge(values, overrides or {})
    return validate(model, values, where=str(recipe) if recipe else "command line", yaml_path=recipe, prefix=(section,) if recipe else ())


def read_old_names(cls: type[BaseModel], data: Any) -> Any:
    """A `model_validator(mode="before")`: settings under the names they had before a rename (the
    model's `renamed`: old -> new) still load; both names at once is an error."""
    renamed = getattr(cls, "renamed", {})
    if not isinstance(data, dict) or not any(old in data for old in renamed):
        return data
    data = dict(data)
    for old, new in renamed.items():
        if old in data:
            if new in data:
                raise ValueError(f"'{old}' is the old name of '{new}': give one of them")
            data[new] = data.pop(old)
    return data


def fingerprint_view(config: BaseModel) -> dict[str, Any]:
    """The resolved config as a stage's fingerprint hashes it: as dumped before settings were renamed
    (`renamed`) and defaults filled in by a validator (`_filled`), so that the stages of an unchanged
    recipe that finished stay finished (a new fingerprint would train them again)."""
    data = config.model_dump(mode="json")
    for name in getattr(config, "_filled", ()):
        data[name] = None
    for old, new in getattr(type(config), "renamed", {}).items():
        if new in data:
            data[old] = data.pop(new)
    return data


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with every non-None value of `overrides` on top; mappings merge recursively."""
    merged = dict(base)
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
TEXT_SECTIONS = ("name", "description")  # a recipe's only sections that are not mappings of settings


def load_recipe(path: str | os.PathLike, sections: Iterable[str] | None = None) -> dict[str, Any]:
    """A recipe document; with `sections`, every top-level key must be one of them, and each
    section a mapping of settings (`name` and `description` are text; `name` is a name, not a path)."""
    doc = load_yaml(path)
    known = list(sections) if sections is not None else None
    for name in doc if known is not None else ():
        where = f"{path}:{_yaml_line(path, (name,)) or 1}"
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (sections are {', '.join(known)})"
            raise InputError(f"unknown section{hint}", where=where, field=str(name))
        check_section(name, doc[name], where)
    return doc


def check_section(name: str, value: Any, where: str) -> None:
    """A section's value has the right shape: text for name/description, a mapping (or nothing) otherwise."""
    if name in TEXT_SECTIONS:
        if value is not None and not isinstance(value, str):
            raise InputError(f"must be text, got {_kind(value)}", where=where, field=name)
        if name == "name" and value is not None and (not NAME.match(value) or value in (".", "..")):
            raise InputError("must be a name (letters, digits, '.', '_', '-'), not a path; use -o for the run directory",
                             where=where, field=name)
    elif value is not None and not isinstance(value, dict):
        raise InputError(f"must be a mapping of settings, got {_kind(value)}", where=where, field=name)


def _kind(value: Any) -> str:
    return {list: "a list", str: "text", bool: "true/false", int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def dump(config: BaseModel) -> str:
    """The resolved configuration as YAML (what --print-config shows)."""
    return yaml.safe_dump(settings(config), sort_keys=False, allow_unicode=True)


def settings(config: BaseModel) -> dict[str, Any]:
    """The configuration as JSON-able settings, in reading order (`field_order`)."""
    data = config.model_dump(mode="json")
    return {name: data[name] for name in field_order(type(config)) if name in data}


def field_order(model: type[BaseModel]) -> list[str]:
    """A model's settings in reading order: as declared; for a model made of parts (several base models,
    whose fields come part by part: train's schedule, checkpoints, LoRA shape) in the order of its
    `panels`, the help's, then the others."""
    names = list(model.model_fields)
    models = [cls for cls in model.__mro__ if isinstance(cls, type) and issubclass(cls, BaseModel)]
    made_of_parts = any(len([base for base in cls.__bases__ if base in models and base.model_fields]) > 1 for cls in models)
    if not made_of_parts or not getattr(model, "panels", None):
        return names
    listed = [name for group in model.panels.values() for name in group if name in model.model_fields]
    return list(dict.fromkeys(listed + names))


def _did_you_mean(model: type[BaseModel], loc: tuple[str, ...]) -> str:
    current: Any = model
    for part in loc[:-1]:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return ""
        annotation = fields[part].annotation
        current = _model_in(annotation)
        if current is None:
            return ""
    fields = getattr(current, "model_fields", {})
    close = difflib.get_close_matches(loc[-1], list(fields), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(fields)})"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    import typing

    candidates = [annotation, *typing.get_args(annotation)]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _yaml_line(path: str | os.PathLike | None, keys: tuple[str, ...]) -> int | None:
    """1-based line of a key path in a YAML file, for error messages."""
    if path is None:
        return None
    try:
        node = yaml.compose(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    line = None
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            break
        for key_node, value_node in node.value:
            if key_node.value == key:
                line, node = key_node.start_mark.line + 1, value_node
                break
        else:
            break
    return line
