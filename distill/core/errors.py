"""User-facing errors: one line, names the file, line and field, exit code 2.

Every stage raises `InputError` for bad input or bad configuration; `cli.py` catches it,
prints the message on one line and exits with code 2 (`report` maps every failure to its line
and exit code). Nothing else should print tracebacks for a user's mistake.
"""

from __future__ import annotations

EXIT_BAD_INPUT = 2


def escape(text: str) -> str:
    """`text` with its control characters (newline, tab, escape, ...) written as backslash escapes: one line."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class InputError(Exception):
    """Bad input or configuration. The message is shown to the user as is, on one line."""

    def __init__(self, message: str, *, where: str | None = None, field: str | None = None):
        self.message = message
        self.where = where
        self.field = field
        parts = [escape(where)] if where else []  # a path with a newline stays one line, whole
        if field:
            parts.append(f"field '{field}'")
        parts.append(message)
        super().__init__(": ".join(parts))


class StageError(Exception):
    """A stage failed for a reason other than bad input (server unreachable, training crash)."""


EXIT_INTERRUPTED = 130


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what was kept: 'N records written to OUT; re-run the same command to resume'."""


EXIT_BUDGET = 3


class BudgetReached(Exception):
    """A run stopped cleanly at its budget (--budget / --budget-tokens): what was written is kept, and
    re-running with a higher budget resumes. `summary` is what the stage did before stopping."""

    def __init__(self, message: str, summary: dict | None = None):
        super().__init__(message)
        self.summary = summary or {}


def _say(prefix: str, message: str) -> None:
    """One line on stderr, secrets redacted (a server may echo a key back into an error)."""
    import sys

    from distill.core.secrets import redact

    line = " ".join(redact(str(message)).split()) or "(no details)"
    sys.stderr.write(f"{prefix}: {line}\n")


def report(exc: BaseException) -> int | None:
    """Say what failed in one line on stderr and return the exit code; None: show the traceback.

    exit 2: a user's mistake (input, configuration, paths), nothing written; exit 1: the
    environment failed mid-run (full disk, server gone), earlier outputs kept; exit 3: stopped at
    the budget (--budget/--budget-tokens), resumable with a higher one; exit 130: Ctrl-C, 143: SIGTERM
    (a scheduler's stop), said and kept the same way.
    DISTILL_TRACEBACK=1 shows the traceback of an unexpected error.
    """
    import os

    if isinstance(exc, InputError):
        _say("error", escape(str(exc)) or repr(exc))  # escaped, not cut: a path with a newline is shown whole
        return EXIT_BAD_INPUT
    if isinstance(exc, StageError):
        _say("failed", str(exc))
        return 1
    if isinstance(exc, BudgetReached):  # a clean, resumable stop: not a failure, not a success either
        _say("stopped", str(exc))
        return EXIT_BUDGET
    if isinstance(exc, KeyboardInterrupt):
        _say("interrupted", str(exc) if isinstance(exc, Interrupted) else "outputs are as they were, or resumable: re-run the same command")
        return _interrupted_exit_code()
    if isinstance(exc, OSError):  # the environment: full disk, a file gone, a device error
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        _say("failed", f"{exc.strerror or exc}{where}; outputs written before are kept")
        return 1
    kind = _click_kind(exc)
    if kind == "exit":  # --help, --version
        return exc.exit_code
    if kind == "abort":
        _say("interrupted", "outputs are as they were, or resumable: re-run the same command")
        return _interrupted_exit_code()
    if kind == "usage":  # an unknown option or command, a missing argument
        _say("error", (exc.format_message().splitlines() or [repr(exc)])[0])
        return EXIT_BAD_INPUT
    if os.environ.get("DISTILL_TRACEBACK"):
        return None
    _say("failed", f"internal error: {type(exc).__name__}: {exc} (DISTILL_TRACEBACK=1 shows where; please report it)")
    return 1


def _interrupted_exit_code() -> int:
    from distill.core.processes import interrupted_exit_code

    return interrupted_exit_code()


def _click_kind(exc: BaseException) -> str | None:
    """click's (or typer's vendored click's) control exceptions, by class name: both may be installed."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return "exit" if "Exit" in names else "abort" if "Abort" in names else "usage" if "ClickException" in names else None
