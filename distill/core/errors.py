"""User-facing errors: one line, names the file, line and field, exit code 2.

Every stage raises `InputError` for bad input or bad configuration; `cli.py` catches it,
prints the message on one line and exits with code 2. Nothing else should print tracebacks
for a user's mistake.
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
