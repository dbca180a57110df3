"""Eval scoring on real long chain-of-thought outputs: throughput of grading + estimators, and
agreement with the harness that produced them.

Input: ../shared/data/traces/sky-t1-27b_math500.jsonl (500 MATH-500 problems, one greedy trace
each, with the Qwen2.5-Math harness's verdict). Each trace is one sample (k=1), so pass@1 here
is plain accuracy; it is compared with the harness's. Run: python bench/bench_eval_scoring.py [WORKERS]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACES = Path(os.environ.get("DISTILL_SHARED_DATA") or ROOT.parent / "shared" / "data") / "traces" / "sky-t1-27b_math500.jsonl"


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from distill.core.records import Trace, sample_id
    from distill.evaluate.stage import EvalConfig, score_and_write

    if not TRACES.exists():
        sys.exit(f"{TRACES} not found")
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    rows = [json.loads(line) for line in TRACES.read_text().splitlines() if line.strip()]
    traces, harness = [], {}
    for index, row in enumerate(rows):
        pid = f"math500/{index}"
        traces.append(Trace(problem_id=pid, problem=row["question"], answer=str(row["gt"]), id=sample_id(pid, 0), sample_index=0,
                            completion=row["code"][0], finish_reason="stop"))
        harness[str(index)] = bool(row["score"][0])
    with tempfile.TemporaryDirectory() as tmp:
        config = EvalConfig(model="sky-t1-27b", benchmarks=["math500"], output_dir=Path(tmp), k=1, workers=workers, delimiters="sky-t1")
        started = time.perf_counter()
        summary = score_and_write(traces, ["math500"], config)
        seconds = time.perf_counter() - started
        ours = {r["problem_id"]: r["pass@1"] == 1.0 for r in map(json.loads, (Path(tmp) / "math500.jsonl").read_text().splitlines())}
    agree = sum(ours[k] == v for k, v in harness.items())
    table = Table(title=f"eval scoring of {len(traces)} real traces (k=1, {workers} checker workers)")
    for column in ("samples", "seconds", "samples/s", "pass@1 (ours)", "harness accuracy", "verdict agreement", "ours ✓ harness ✗", "ours ✗ harness ✓"):
        table.add_column(column, justify="right")
    table.add_row(
        str(len(traces)), f"{seconds:.1f}", f"{len(traces) / seconds:.0f}", f"{100 * summary['benchmarks']['math500']['pass@1']:.1f}",
        f"{100 * sum(harness.values()) / len(harness):.1f}", f"{100 * agree / len(harness):.1f}%",
        str(sum(ours[k] and not v for k, v in harness.items())), str(sum(v and not ours[k] for k, v in harness.items())),
    )
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
