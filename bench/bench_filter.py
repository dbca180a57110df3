"""Filter throughput and memory on the real Sky-T1 traces, replicated, read as they are through
the openr1 preset (bench/sky_t1.py). Prints a table.

(a) the full default rule set on 1 worker vs a bare math-verify parse-and-verify loop over the
    same records (target: ratio >= 0.8);
(b) 2 workers vs 1 (target: >= 1.7x; needs 2 free cores: the parent only reads and maps rows, ships them and writes);
(c) peak memory (sum of RSS over the run's processes) at 100k records vs 10k (target <= 1.2).

    python bench/bench_filter.py [--records 10000] [--memory-records 100000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sky_t1 import LAYOUT, files  # the real traces, read through the openr1 preset as they are


def build(path: Path, count: int) -> None:
    """The real rows, unchanged but for `idx`: replicas must be distinct problems (dedup must not drop them)."""
    rows = [json.loads(line) for source in files() for line in source.open()]
    with path.open("w") as out:
        for i in range(count):
            row = rows[i % len(rows)]
            out.write(json.dumps({**row, "idx": f"r{i // len(rows)}-{i % len(rows)}"}) + "\n")


def bare_loop(path: Path) -> float:
    from math_verify import parse, verify

    start = time.perf_counter()
    for line in path.open():
        row = json.loads(line)
        verify(parse(f"${row['gt']}$"), parse(row["code"][0]))
    return time.perf_counter() - start


def filter_seconds(path: Path, workers: int, rules: list[str] | None = None) -> tuple[float, int, int]:
    """Runs the stage in a child process: (seconds, peak RSS in MiB of the whole process tree
    (parent, fork server, workers; sampled every 50 ms), peak RSS in MiB of the parent alone)."""
    import psutil

    code = (
        "import json, sys, time\n"
        "from distill.filters.config import FilterConfig\nfrom distill.filters.stage import run\n"
        "if __name__ == '__main__':\n"
        "    extra = {'rules': json.loads(sys.argv[3])} if sys.argv[3] != 'null' else {}\n"
        "    start = time.perf_counter()\n"
        "    run(FilterConfig(input=sys.argv[1], output=sys.argv[1] + '.kept.jsonl', workers=int(sys.argv[2]), **json.loads(sys.argv[4]), **extra))\n"
        "    print(time.perf_counter() - start)\n"
    )
    layout = dict(LAYOUT, fields={**LAYOUT["fields"], "id": "idx"})
    child = subprocess.Popen([sys.executable, "-c", code, str(path), str(workers), json.dumps(rules), json.dumps(layout)],
                             stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    tree_peak = parent_peak = 0
    root = psutil.Process(child.pid)
    while child.poll() is None:
        with contextlib.suppress(psutil.Error):
            parent = root.memory_info().rss
            total = parent + sum(p.memory_info().rss for p in root.children(recursive=True) if p.is_running())
            tree_peak, parent_peak = max(tree_peak, total), max(parent_peak, parent)
        time.sleep(0.05)
    out = child.stdout.read()
    if child.returncode:
        raise SystemExit(f"filter failed (exit {child.returncode})")
    return float(out.strip().splitlines()[-1]), tree_peak >> 20, parent_peak >> 20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--memory-records", type=int, default=100_000)
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        small, large = Path(tmp) / "small.jsonl", Path(tmp) / "large.jsonl"
        build(small, args.records)
        bare = bare_loop(small)
        one, _, _ = filter_seconds(small, 1)
        two, _, _ = filter_seconds(small, 2)
        rows.append(("(a) filter 1 worker / bare math-verify loop", f"{args.records / one:.1f} vs {args.records / bare:.1f} rec/s", f"{bare / one:.2f}", ">= 0.8"))
        rows.append(("(b) 2 workers / 1 worker", f"{one:.1f}s vs {two:.1f}s", f"{one / two:.2f}", ">= 1.7"))
        # Memory: every rule but correctness (math-verify's cost is per record and lives in
        # the workers), so that 100k records take minutes, on 2 workers.
        cheap = ["format", "length", "decontaminate", "repetition", "readability", "language", "dedup"]
        _, mem_small, parent_small = filter_seconds(small, 2, cheap)
        build(large, args.memory_records)
        _, mem_large, parent_large = filter_seconds(large, 2, cheap)
        rows.append((f"(c) peak RSS {args.memory_records} / {args.records} records (all processes)", f"{mem_large} MiB vs {mem_small} MiB", f"{mem_large / mem_small:.2f}", "<= 1.2"))
        rows.append(("    of which the parent process", f"{parent_large} MiB vs {parent_small} MiB", f"{parent_large / parent_small:.2f}", ""))
    load = os.getloadavg()
    table = Table(title=f"bench_filter (real Sky-T1 traces replicated to {args.records}; {os.cpu_count()} CPUs, load at the end {load[0]:.1f})")
    for column in ("measure", "figures", "ratio", "target"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
