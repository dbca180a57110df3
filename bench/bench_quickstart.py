"""Wall time of the whole quickstart (`distill run recipes/quickstart.yaml`), stage by stage.

    python bench/bench_quickstart.py [RUN_DIR]

Every stage is redone (--from teacher). Target: at most 10 minutes in total on a 2-core CPU.
Prints a table of seconds per stage and the quickstart's own result table.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "runs" / "bench-quickstart")
    distill = Path(sys.executable).with_name("distill")
    started = time.perf_counter()
    subprocess.run([str(distill), "run", str(ROOT / "recipes" / "quickstart.yaml"), "-o", str(out), "--from", "teacher"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    total = time.perf_counter() - started
    run = json.loads((out / "run.json").read_text())
    print(f"{'stage':<18} {'seconds':>8}")
    for stage in run["stages"]:
        print(f"{stage:<18} {json.loads((out / stage / 'stage.json').read_text())['seconds']:>8.1f}")
    print(f"{'total (wall)':<18} {total:>8.1f}   target <= 600")
    print()
    print((out / "compare" / "table.md").read_text())


if __name__ == "__main__":
    main()
