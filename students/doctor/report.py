"""The doctor's output: one table of checks (or JSON for CI), and the one line a failure exits with."""

from __future__ import annotations

import json

from students.doctor import Check

STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}


def table(checks: list[Check], title: str):
    from rich.markup import escape
    from rich.table import Table

    grid = Table(title=title, title_justify="left", show_lines=False)
    grid.add_column("check", no_wrap=True)
    grid.add_column("status", no_wrap=True)
    grid.add_column("figure", overflow="fold", ratio=3)
    grid.add_column("fix", overflow="fold", ratio=2)
    for check in checks:
        grid.add_row(escape(check.name), f"[{STYLE[check.status]}]{check.status}[/]", escape(check.figure), escape(check.fix))
    return grid


def as_json(checks: list[Check]) -> str:
    return json.dumps({"checks": [check.as_dict() for check in checks]}, ensure_ascii=False, indent=1)


def failure_line(checks: list[Check]) -> str | None:
    """The one line a failed doctor exits with (and `train` stops with): how many failed, the first with its fix."""
    failed = [check for check in checks if check.status == "fail"]
    if not failed:
        return None
    first = failed[0]
    more = f" (and {len(failed) - 1} more: {', '.join(c.name for c in failed[1:])})" if len(failed) > 1 else ""
    return f"doctor: {first.name} failed: {first.figure}; fix: {first.fix}{more}"


def summary(checks: list[Check]) -> str:
    counts = {status: sum(c.status == status for c in checks) for status in ("pass", "warn", "fail")}
    return f"{counts['pass']} passed, {counts['warn']} warnings, {counts['fail']} failed"


def recipe_inputs(recipe) -> tuple[list[str], str, str | None]:
    """What else of the recipe the doctor reads: its eval benchmarks that are files (hub names are not read
    offline), their problem column, and the on-policy teacher when it is a local folder."""
    from pathlib import Path

    from distill.core.config import load_yaml

    doc = load_yaml(recipe) if recipe else {}
    section = doc.get("eval") or {}
    files = [name for name in section.get("benchmarks") or [] if isinstance(name, str) and Path(name).is_file()]
    teacher = (doc.get("onpolicy") or {}).get("teacher")
    return files, ((section.get("fields") or {}).get("problem") or "problem"), teacher if teacher and Path(teacher).is_dir() else None


def run(config, recipe=None) -> list[Check]:
    """Check a model folder (config.model_dir) or the training run the config describes; print the table
    (or JSON); InputError with the one line when a check fails."""
    from pathlib import Path

    from rich.console import Console

    from distill.core.errors import InputError

    if config.model_dir:
        if config.student or config.data:
            raise InputError("give a model folder or a training run's flags, not both", field="model_dir")
        from students.doctor.folder import folder_checks

        checks, title = folder_checks(Path(config.model_dir)), f"distill doctor {config.model_dir}"
    else:
        if config.student is None:
            raise InputError("give a model folder to check, or a training run's flags (--student, --data, ...)", field="student")
        from students.doctor.training import training_checks

        benchmarks, problem_field, teacher = recipe_inputs(recipe)
        if config.benchmarks:
            benchmarks, problem_field = config.benchmarks, "problem"
        checks = training_checks(config, benchmarks, problem_field, onpolicy_teacher=teacher)
        title = f"distill doctor: training {config.student} on {', '.join(path for path, _ in config.sources())}"
    if config.as_json:
        print(as_json(checks))
    else:
        console = Console()
        console.print(table(checks, title))
        console.print(summary(checks), highlight=False)
    line = failure_line(checks)
    if line:
        raise InputError(line)
    return checks
