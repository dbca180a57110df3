"""Eval scoring on real long chain-of-thought outputs: throughput of grading + estimators, and
agreement with the harness that produced them.

Input: ../shared/data/traces/sky-t1-27b_math500.jsonl (500 MATH-500 problems, one greedy trace
each, with the Qwen2.5-Math harness's verdict), read as it is through the openr1 preset. Each trace is one sample (k=1), so pass@1 here
is plain accuracy; it is compared with the harness's. Run: python bench/bench_eval_scoring.py [WORKERS]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from sky_t1 import LAYOUT, files  # the real traces, read through the openr1 preset as they are


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from distill.core.trace_layout import TraceLayout, read_traces
    from distill.evaluate.stage import EvalConfig, score_and_write

    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    traces = list(read_traces(str(files()[0]), TraceLayout(**LAYOUT)))
    harness = {trace.problem_id: bool(trace.model_extra["score"]) for trace in traces}  # the harness's verdict, carried
    traces = [trace.model_copy(update={"problem_id": f"math500/{trace.problem_id}"}) for trace in traces]  # scoring wants BENCHMARK/ID
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
