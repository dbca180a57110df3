"""Per-stage logs, the plan description (--dry-run) and the tables of `distill run`.

Everything a stage prints goes to its log, secrets redacted; the terminal gets the tool's own
lines and progress, without third-party chatter (vLLM's INFO/WARNING lines, Python warnings,
NUMA notices, tqdm bars such as "Writing model shards"), unless `distill run --verbose`
(DISTILL_VERBOSE=1) asks for everything.

The capture is at the file-descriptor level, not `sys.stdout`: vLLM's engine core runs in a
child process and transformers/torch write from C, and their output belongs in the log too.
A thread copies the pipe to the terminal unchanged and to the log without colour codes and
without the redraws of live progress bars (one line per redraw would bury the log).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distill.core.hub import is_hub_id
from distill.core.secrets import redact_bytes
from distill.pipeline.stages import Context, registry

_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_REDRAW = re.compile(rb"\x1b\[(?:\d*[AK]|\?25[lh])")  # cursor-up / erase-line / cursor show-hide: a live display
# Third-party output kept off the terminal (it stays in log.txt): vLLM's logger, Python warnings and the source
# line they quote, NUMA binding notices, tqdm bars. ERROR lines and tracebacks are always shown.
_THIRD_PARTY = re.compile(
    rb"^\s*(?:\(\w+ pid=\d+\)\s*)?(?:INFO|WARNING|DEBUG)\s+\d\d-\d\d \d\d:\d\d:\d\d"
    rb"|^\S+:\d+: \w*Warning: |^\s+warnings\.warn\(|NUMA|\d+%\|[^|]*\|"
)
VERBOSE_ENV = "DISTILL_VERBOSE"


def _shown(data: bytes) -> bytes:
    """What the terminal gets of `data` (whole lines, or pieces a \\r redraws): all but third-party chatter."""
    pieces = re.split(rb"(?<=[\n\r])", data)
    return b"".join(piece for piece in pieces if not _THIRD_PARTY.search(_ANSI.sub(b"", piece)))


@contextlib.contextmanager
def stage_log(path: Path) -> Iterator[None]:
    """Tee fds 1 and 2 into `path` for the duration of the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    terminal = os.dup(2)
    saved = (os.dup(1), os.dup(2))
    # Rich decides on live progress bars from isatty(); the pipe is not a tty, so say what
    # the real stream is, or the user would see no progress while a stage runs.
    forced = None
    if os.isatty(saved[1]) and "FORCE_COLOR" not in os.environ and "TTY_COMPATIBLE" not in os.environ:
        forced = "TTY_COMPATIBLE"
        os.environ[forced] = "1"
    read_fd, write_fd = os.pipe()
    log = open(path, "ab")  # noqa: SIM115 - closed by the copier thread
    verbose = os.environ.get(VERBOSE_ENV) == "1"

    def copy() -> None:
        carry = b""  # a plain partial line: judged once it is whole (live displays, with escapes or \r, go at once)
        with log:
            while True:
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    if carry:
                        os.write(terminal, carry if verbose else _shown(carry))
                    break
                chunk = redact_bytes(chunk)  # a library may print a request with its Authorization header
                if verbose:
                    os.write(terminal, chunk)
                else:
                    data, carry = carry + chunk, b""
                    tail = data[data.rfind(b"\n") + 1:]
                    if tail and b"\x1b" not in tail and b"\r" not in tail:
                        data, carry = data[:len(data) - len(tail)], tail
                    if data:
                        os.write(terminal, _shown(data))
                for line in chunk.splitlines(keepends=True):
                    if _REDRAW.search(line):
                        continue
                    log.write(_ANSI.sub(b"", line.replace(b"\r", b"")))
                log.flush()
        os.close(read_fd)

    thread = threading.Thread(target=copy, name="stage-log", daemon=True)
    thread.start()
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    # sys.stdout may not write to fd 1 (pytest, notebooks replace it): point both at the fds.
    streams = (sys.stdout, sys.stderr)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)  # noqa: SIM115
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = streams
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        # The pipe's writer ends are now closed in this process; child processes that are
        # still alive would keep it open, so do not wait on the copier forever.
        thread.join(timeout=5)
        for fd in saved if thread.is_alive() else (*saved, terminal):
            os.close(fd)
        if forced:
            os.environ.pop(forced, None)


# ---------------------------------------------------------------------------- plan description


def describe(ctx, planned) -> list[dict[str, Any]]:
    """What each stage reads and writes, and inputs that do not exist yet (for --dry-run)."""
    rows = []
    for item in planned:
        stage = registry()[item.name]
        data = item.config.model_dump(mode="json")
        reads, missing = [], []
        for name in stage.reads:
            value = data.get(name)
            values = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else [value]
            for entry in values:
                if isinstance(entry, dict) and isinstance(entry.get("path"), str):  # a source of a mixture
                    entry = entry["path"]
                if not isinstance(entry, str):
                    continue
                reads.append(_short(entry, ctx))
                produced = entry.startswith(str(ctx.run_dir))
                remote = entry.startswith(("hf:", "http://", "https://")) or is_hub_id(entry) or (
                    stage.remote is not None and stage.remote(name, entry, item.config))
                if not produced and not remote and not Path(entry).exists():
                    missing.append(entry)
        rows.append({"stage": item.name, "action": {"done": "skip (up to date)", "new": "run", "changed": "run (changed)",
                                                    "redo": "run (--from)", "stale": "run (input re-made)"}[item.state],
                     "reads": reads, "writes": _short(str(ctx.dir(item.name)), ctx), "missing": missing})
        if stage.check:
            stage.check(item.config)
    return rows


def _short(path: str, ctx: Context) -> str:
    try:
        return str(Path(path).relative_to(ctx.run_dir))
    except ValueError:
        return path


# ---------------------------------------------------------------------------- tables


def plan_table(ctx, rows: list[dict[str, Any]]):
    from rich.table import Table

    table = Table(title=f"plan for {ctx.run_dir}")
    for column in ("stage", "action", "reads", "writes", "notes"):
        table.add_column(column)
    for row in rows:
        notes = "; ".join(f"[yellow]{Path(m).name}: not found[/yellow]" for m in row["missing"])
        table.add_row(row["stage"], row["action"], "\n".join(row["reads"]) or "-", row["writes"], notes)
    return table


def summary_table(ctx, results: dict[str, Any]):
    from rich.table import Table

    table = Table(title=f"distill run: {ctx.run_dir}")
    for column in ("stage", "result", "seconds", "figures"):
        table.add_column(column, justify="right" if column == "seconds" else "left")
    for name, summary in results.items():
        # Numbers and short words only: paths and settings are in the stage's config.yaml.
        figures = [f"{k}={_brief(v)}" for k, v in summary.items()
                   if k not in ("skipped", "seconds") and isinstance(v, (int, float, str)) and not isinstance(v, bool)
                   and "/" not in str(v) and len(str(v)) < 24]
        figures = ", ".join(figures[:6])
        table.add_row(name, "skipped (up to date)" if summary.get("skipped") else "done",
                      "-" if summary.get("skipped") else f"{summary.get('seconds', 0):.0f}", figures[:120])
    return table


def _brief(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
