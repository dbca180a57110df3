"""The same `distill train` (or `onpolicy`) command resumes its own unfinished run.

Ctrl-C or a scheduler's SIGTERM stops training with its checkpoints kept, and the message says to
re-run the same command. For that to be true, a run records the settings it starts with
(RUN_DIR/train-settings.json, less those that do not change what is trained); when a later command
meets the run unfinished (checkpoints, no train.json):
- with the same settings, it resumes from the newest checkpoint;
- with other settings, it is refused: `--resume` continues the run anyway, `--overwrite` starts over.
`--resume` on a finished run continues it (more steps), as before.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from distill.core.errors import InputError
from distill.core.paths import write_text
from distill.core.secrets import redact

SETTINGS = "train-settings.json"
# How a run is carried out and reported, not what it trains: changing them keeps the run resumable.
NOT_TRAINING = {"resume", "overwrite", "logging_steps", "report_to", "save_total_limit", "gpus", "gpu_memory_gib"}


def newest_checkpoint(run_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    checkpoints = run_dir / "checkpoints"
    return get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None


def resume_point(config: BaseModel, run_dir: Path) -> str | None:
    """The checkpoint this command continues from, or None to start at step 0 (see the module doc)."""
    newest = newest_checkpoint(run_dir)
    if getattr(config, "resume", False):
        if newest is None:
            raise InputError("nothing to resume (no checkpoint-N under checkpoints/)", where=str(run_dir), field="resume")
        return newest
    if newest is None or getattr(config, "overwrite", False) or (run_dir / "train.json").exists():
        return None
    if _saved(run_dir) == _settings(config):
        return newest
    raise InputError(f"holds an unfinished run ({Path(newest).name}) started with other settings: --resume continues it, "
                     "--overwrite starts over", where=str(run_dir), field="output_dir")


def record(config: BaseModel, run_dir: Path, fresh: bool) -> None:
    """Before the first step: the settings a re-run must match to resume this run. A run that starts
    over (`fresh`) first removes the checkpoints of the run it replaces, which a later resume would take."""
    if fresh and ((run_dir / SETTINGS).exists() or (run_dir / "train.json").exists()):  # that run was ours
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / SETTINGS, json.dumps(_settings(config), indent=2, sort_keys=True) + "\n")


def interrupted(run_dir: Path) -> str:
    """What an interrupted training run kept, and how to continue."""
    newest = newest_checkpoint(run_dir)
    if newest is None:
        return f"training stopped before its first checkpoint in {run_dir / 'checkpoints'}; re-run the same command to start again"
    return f"training stopped; checkpoints kept in {run_dir / 'checkpoints'}: re-run the same command to resume from {Path(newest).name}"


def _settings(config: BaseModel) -> dict[str, Any]:
    # redacted (a key in onpolicy's base_url is never written), so a re-run compares what the file can hold
    return json.loads(redact(json.dumps(config.model_dump(mode="json", exclude=NOT_TRAINING), default=str)))


def _saved(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / SETTINGS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
