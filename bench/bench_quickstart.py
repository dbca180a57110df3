"""Wall time of the quickstart, stage by stage.

    python bench/bench_quickstart.py [RUN_DIR]     # redo every stage of `distill run recipes/quickstart.yaml`
    python bench/bench_quickstart.py recipes/deploy.yaml [RUN_DIR]   # the same for another offline recipe
    python bench/bench_quickstart.py --fresh-clone # `git clone` this repository and time `make quickstart` there,
                                                   # installing the virtual environment included (what a new user waits)

Target: at most 10 minutes in total on a 2-core CPU. Prints a table of seconds per stage and
the quickstart's own result table.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _stages(out: Path) -> None:
    run = json.loads((out / "run.json").read_text())
    print(f"{'stage':<18} {'seconds':>8}")
    for stage in run["stages"]:
        print(f"{stage:<18} {json.loads((out / stage / 'stage.json').read_text())['seconds']:>8.1f}")


def fresh_clone() -> None:
    with tempfile.TemporaryDirectory(prefix="distill-clone-") as tmp:
        clone = Path(tmp) / "distill"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        started = time.perf_counter()
        subprocess.run(["make", "install"], cwd=clone, check=True, stdout=subprocess.DEVNULL)
        installed = time.perf_counter() - started
        subprocess.run(["make", "quickstart"], cwd=clone, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        total = time.perf_counter() - started
        _stages(clone / "runs" / "quickstart")
        print(f"{'install (.venv)':<18} {installed:>8.1f}")
        print(f"{'total (wall)':<18} {total:>8.1f}   make quickstart from a fresh clone, installing included; target <= 600")
        print()
        print((clone / "runs" / "quickstart" / "compare" / "table.md").read_text())


def main() -> None:
    if sys.argv[1:] == ["--fresh-clone"]:
        fresh_clone()
        return
    args = sys.argv[1:]
    recipe = Path(args.pop(0)) if args and args[0].endswith(".yaml") else ROOT / "recipes" / "quickstart.yaml"
    out = Path(args[0] if args else ROOT / "runs" / f"bench-{recipe.stem}")
    distill = Path(sys.executable).with_name("distill")
    started = time.perf_counter()
    subprocess.run([str(distill), "run", str(recipe), "-o", str(out), "--from", "teacher"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    total = time.perf_counter() - started
    _stages(out)
    print(f"{'total (wall)':<18} {total:>8.1f}   stages only (no install); target <= 600")
    print()
    last = json.loads((out / "run.json").read_text())["stages"][-1]
    print((out / last / "table.md").read_text())


if __name__ == "__main__":
    main()
