"""`distill` as `accelerate launch` runs it, recording what each rank trains on (test helper, not a test).

    accelerate launch [...] tests/students/launch_probe.py train --student ... (the `distill` arguments)

Each rank appends, for every micro-batch its data loader hands the model, the fingerprints of the
packed samples in it to $DISTILL_PROBE_DIR/rank<RANK>.jsonl, and writes which `students` package
it imported (so a test can check the worktree's code ran, not an installed copy). Then it is
exactly `python -m cli ...`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path


def _fingerprint(ids: list[int]) -> str:
    return hashlib.sha1(json.dumps(ids).encode()).hexdigest()[:12]


def recording_collator(collate, path: Path):
    """`collate` that first appends the fingerprints of its packed samples to `path` (one line a micro-batch)."""

    def recording(items):
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps([_fingerprint(item["input_ids"]) for item in items]) + "\n")
        return collate(items)

    return recording


def main() -> None:
    import students
    import students.train as train

    out = Path(os.environ["DISTILL_PROBE_DIR"])
    rank = os.environ.get("RANK", "0")
    (out / f"rank{rank}.package").write_text(str(Path(students.__file__).resolve().parent))
    train.collate_packed = recording_collator(train.collate_packed, out / f"rank{rank}.jsonl")
    import cli

    sys.argv = ["distill", *sys.argv[1:]]
    cli.main()


if __name__ == "__main__":
    main()
