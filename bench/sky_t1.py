"""The real Sky-T1 traces of ../shared/data/traces, read as they are: no conversion script.

They are SkyThought's evaluation output: `question`, `gt` (the reference), `code` (a list with the
model's output, in Sky-T1's markers), and one value per output in `pred` and `score` (the
harness's extracted answer and verdict). That is the openr1 layout (a problem, a list of
generations, per-generation lists) with other column names, so the benches read it through the
openr1 preset with those columns named: the same flags a user would give.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA = Path(os.environ.get("DISTILL_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data") / "traces"
FILES = ("sky-t1-27b_math500.jsonl", "sky-t1-27b_minerva.jsonl")
LAYOUT = {
    "preset": "openr1",
    "fields": {"problem": "question", "answer": "gt", "completion": "code", "per_sample": ["pred", "score", "report"]},
    "delimiters": "sky-t1",
}
FLAGS = "--preset openr1 --field-problem question --field-answer gt --field-completion code --field-per-sample pred,score,report --delimiters sky-t1"


def files() -> list[Path]:
    paths = [DATA / name for name in FILES]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"real traces not found: {', '.join(missing)} (set DISTILL_SHARED_DATA to the shared data folder)")
    return paths
