"""What `distill run` wrote in a run directory, so that it only ever removes that.

RUN_DIR/.distill-run.json lists the run directory's entries this tool made (its recipe copy,
run.json, the stage folders, teacher samples set aside) and, per stage folder, the entries the
stage made. It is updated before a stage starts (what it is about to write) and after it ends
(what it did write, failures included). A stage killed mid-run is marked `running`: what
appeared in its folder since is its own.

Anything else is *foreign*: a file the user put there. A run directory or a stage folder that is
about to be rewritten and holds foreign entries is an error that names them, unless `--force`;
even then foreign entries are left where they are, never removed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from distill.core.errors import InputError
from distill.core.paths import write_text

MANIFEST = ".distill-run.json"
RUN_FILES = ("recipe.yaml", "run.json", MANIFEST)
BOOKKEEPING = ("config.yaml", "log.txt", "stage.json", "started.json")  # what the orchestrator writes in a stage folder
_TEMP_PREFIX = "."  # `.NAME.tmp-PID` temporaries beside our files


class Manifest:
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.path = run_dir / MANIFEST
        self.data: dict[str, Any] = {"top": [], "stages": {}}
        self.exists = False
        try:
            self.data = json.loads(self.path.read_text(encoding="utf-8"))
            self.exists = True
        except FileNotFoundError:
            pass
        except (OSError, ValueError):
            raise InputError(f"unreadable {MANIFEST} (what distill wrote here); move the run directory away",
                             where=str(run_dir)) from None

    # ------------------------------------------------------------------ what is ours

    def _legacy(self, entry: Path) -> bool:
        """A stage folder of a run directory from before manifests: it has our started.json."""
        return not self.exists and entry.is_dir() and (entry / "started.json").is_file()

    def ours_top(self, name: str) -> bool:
        entry = self.run_dir / name
        if name in self.data["top"] or self._legacy(entry):
            return True
        legacy_run = not self.exists and any(self._legacy(p) for p in self._entries(self.run_dir))
        return legacy_run and name in RUN_FILES

    def ours_in_stage(self, stage: str, name: str) -> bool:
        record = self.data["stages"].get(stage)
        if record is None:
            return self._legacy(self.run_dir / stage)
        if name in record["entries"] or _is_temporary(name, record["entries"]):
            return True
        return record.get("running", False) and name not in record.get("foreign", [])

    def foreign(self, stages: list[str]) -> list[str]:
        """Entries of the run directory, and of the folders of `stages`, that this tool did not write."""
        if not self.run_dir.exists():
            return []
        found = [name for name in self._entries(self.run_dir) if not self.ours_top(name.name)]
        found = [str(p.relative_to(self.run_dir)) for p in found]
        for stage in stages:
            folder = self.run_dir / stage
            if folder.is_dir() and self.ours_top(stage):
                found += [f"{stage}/{p.name}" for p in self._entries(folder) if not self.ours_in_stage(stage, p.name)]
        return found

    @staticmethod
    def _entries(folder: Path) -> list[Path]:
        try:
            return sorted(folder.iterdir())
        except OSError:
            return []

    # ------------------------------------------------------------------ recording

    def save(self) -> None:
        self.data["top"] = sorted(set(self.data["top"]) | {MANIFEST})
        write_text(self.path, json.dumps(self.data, indent=2) + "\n")
        self.exists = True

    def add_top(self, *names: str) -> None:
        self.data["top"] = sorted(set(self.data["top"]) | set(names))

    def starting(self, stage: str, expected: list[str], foreign: list[str]) -> None:
        """Before a stage runs: what it will write, and the foreign entries to leave alone."""
        record = self.data["stages"].setdefault(stage, {"entries": []})
        record["entries"] = sorted(set(record["entries"]) | set(expected) | set(BOOKKEEPING))
        record["foreign"] = sorted(foreign)
        record["running"] = True
        self.add_top(stage)
        self.save()

    def finished(self, stage: str) -> None:
        """After a stage ran (or failed): everything new in its folder is its own."""
        record = self.data["stages"][stage]
        folder = self.run_dir / stage
        present = {p.name for p in self._entries(folder)} - set(record.get("foreign", []))
        record["entries"] = sorted(set(record["entries"]) | present)
        record["running"] = False
        self.save()

    # ------------------------------------------------------------------ clearing

    def clear_stage(self, stage: str, aside: bool) -> Path | None:
        """Remove (or, with `aside`, move to a `STAGE.previous-TIME` folder) what the stage wrote before.

        Foreign entries stay where they are. Returns the folder things were set aside in, if any.
        """
        folder = self.run_dir / stage
        if not folder.is_dir():
            return None
        ours = [p for p in self._entries(folder) if self.ours_in_stage(stage, p.name)]
        target = None
        if aside and ours:
            target = folder.with_name(f"{stage}.previous-{time.strftime('%Y%m%d-%H%M%S')}")
            target.mkdir()
            self.add_top(target.name)
            self.save()
        for entry in ours:
            if target is not None:
                os.replace(entry, target / entry.name)
            elif entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        record = self.data["stages"].get(stage)
        if record is not None:
            record["entries"] = []
        return target


def _is_temporary(name: str, entries: list[str]) -> bool:
    """`.NAME.tmp-PID` / `.NAME.old-PID` beside one of our entries."""
    return name.startswith(_TEMP_PREFIX) and any(name.startswith(f".{entry}.tmp-") or name.startswith(f".{entry}.old-")
                                                 for entry in entries)
