"""Teacher tokens per kept sample with the rejection loop's stopping rule and without it.

Runs recipes/rejection.yaml with `--pilot 50` (the forecast), then in full (the quickstart's tiny teacher on 300 prompts: 2 samples per prompt,
then 2 more for each prompt with fewer than 2 kept, up to 8), then the same run directory with
`rejection.min_kept` above `max_samples`, which draws every prompt's 8 samples: sampling a fixed n,
the way public R1 pipelines do (the second run adds to the first's samples, so both rows judge the
same traces). Prints the loop's per-round table, a comparison table and a verdict line.

Run: python bench/bench_rejection.py [RUN_DIR]   (default runs/rejection)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RECIPE = ROOT / "recipes" / "rejection.yaml"


def run(out: Path, *extra: str) -> float:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cli", "run", str(RECIPE), "-o", str(out), *extra], cwd=ROOT,
                          env={**os.environ, "COLUMNS": os.environ.get("COLUMNS", "130")})  # tables as wide as they are
    if done.returncode != 0:
        sys.exit(f"distill run failed ({done.returncode})")
    return time.monotonic() - started


def figures(out: Path, min_kept: int, price_in: float, price_out: float) -> dict:
    rows = [json.loads(line) for line in (out / "filter" / "prompts.jsonl").read_text().splitlines()]
    prompt_tokens = sum(r["prompt_tokens"] for r in rows)
    completion = sum(r["completion_tokens"] for r in rows)
    kept = sum(r["kept"] for r in rows)
    covered = sum(1 for r in rows if r["kept"] >= min_kept)
    return {"prompts": len(rows), "drawn": sum(r["drawn"] for r in rows), "completion": completion, "kept": kept,
            "covered": covered, "cost": (prompt_tokens * price_in + completion * price_out) / 1e6,
            "per_kept": completion / kept if kept else float("nan"),
            "per_covered": completion / covered if covered else float("nan")}


def main() -> None:
    import yaml
    from rich.console import Console
    from rich.table import Table

    out = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "runs" / "rejection").resolve()
    recipe = yaml.safe_load(RECIPE.read_text())
    loop, generate = recipe["rejection"], recipe["generate"]
    pilot_seconds = run(out, "--pilot", "50")  # the forecast first; the full run reuses its samples
    forecast = json.loads((out / "run.json").read_text())["results"]["pilot"]
    seconds = run(out)
    with_rule = figures(out, loop["min_kept"], generate["price_in"], generate["price_out"])
    fixed_seconds = run(out, "--set", f"rejection.min_kept={loop['max_samples'] + 1}")
    fixed = figures(out, loop["min_kept"], generate["price_in"], generate["price_out"])

    table = Table(title=f"teacher tokens per kept sample, {with_rule['prompts']} prompts, want {loop['min_kept']} kept each",
                  title_justify="left")
    for column in ("sampling", "samples drawn", "completion tokens", "cost (R1 API prices)", "kept",
                   f"prompts with {loop['min_kept']}+ kept", "tokens per kept sample", f"tokens per prompt with {loop['min_kept']}+ kept"):
        table.add_column(column, justify="left" if column == "sampling" else "right")
    for name, f in ((f"stop at {loop['min_kept']} kept (+{loop['step']}/round, at most {loop['max_samples']})", with_rule),
                    (f"fixed {loop['max_samples']} per prompt", fixed)):
        table.add_row(name, f"{f['drawn']:,}", f"{f['completion']:,}", f"${f['cost']:.4f}", f"{f['kept']:,}", f"{f['covered']:,}",
                      f"{f['per_kept']:,.1f}", f"{f['per_covered']:,.1f}")
    Console(width=160).print(table)
    saved = 1 - with_rule["completion"] / fixed["completion"]
    lost = fixed["covered"] - with_rule["covered"]
    print(f"- the stopping rule spent {100 * saved:.0f}% fewer teacher tokens than a fixed {loop['max_samples']} per prompt "
          f"({with_rule['completion']:,} vs {fixed['completion']:,}); {with_rule['covered']} vs {fixed['covered']} prompts reached "
          f"{loop['min_kept']} kept samples" + (f" ({lost} fewer)" if lost > 0 else " (none lost)") + ".")
    why = (" (more: the later rounds sample the hard prompts, whose yield is lower)" if with_rule["per_kept"] > fixed["per_kept"]
           else " (about the same: the saving is the samples a prompt did not need, not a higher yield)")
    print(f"- per kept sample it spent {with_rule['per_kept']:,.1f} tokens vs {fixed['per_kept']:,.1f}{why}; per prompt that "
          f"reached {loop['min_kept']} kept, {with_rule['per_covered']:,.1f} vs {fixed['per_covered']:,.1f}.")
    print(f"- the pilot on 50 prompts forecast {forecast['run']['completion_tokens']:,.0f} completion tokens and "
          f"{forecast['run']['kept']:,.0f} kept samples for the run; it spent {with_rule['completion']:,} and kept {with_rule['kept']:,}.")
    print(f"(pilot {pilot_seconds:.0f} s with the teacher's training, loop {seconds:.0f} s, fixed-n top-up {fixed_seconds:.0f} s)")


if __name__ == "__main__":
    main()
