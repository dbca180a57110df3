"""Reading traces through a preset vs in this project's layout: what `--preset` costs. Prints a table.

The real Sky-T1 traces of ../shared/data/traces, replicated to --records rows, in two files: as
they are (read through the openr1 preset, bench/sky_t1.py) and converted to this project's
records. For each, two reads:
- what the filter's parent process does per record: public layouts are mapped there (one row may
  hold several samples), this project's JSONL lines are only split and shipped (the workers parse);
- a full validated read (`read_traces`: what `inspect` and `train` do).
The parent's rate bounds how many filter workers it can feed (one worker judges about 270
records/s with the default rules, bench/bench_filter.py).

    python bench/bench_layouts.py [--records 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's distill, wherever it is run from
from bench_filter import build  # the real rows, replicated as distinct problems
from sky_t1 import LAYOUT


def rate(count: int, read) -> float:
    start = time.perf_counter()
    seen = sum(1 for _ in read())
    assert seen == count, (seen, count)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many reads (a shared machine is noisy)")
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    from distill.core.data import write_records
    from distill.core.jsonl import read_lines
    from distill.core.records import Trace
    from distill.core.trace_layout import TraceLayout, read_traces, trace_rows

    layout = TraceLayout(**dict(LAYOUT, fields={**LAYOUT["fields"], "id": "idx"}))
    ours = TraceLayout(delimiters="sky-t1")
    with tempfile.TemporaryDirectory() as tmp:
        public, own = Path(tmp) / "public.jsonl", Path(tmp) / "own.jsonl"
        build(public, args.records)
        write_records(own, (Trace(**{k: getattr(t, k) for k in Trace.model_fields if k != "source"}) for t in read_traces(str(public), layout)))
        size = {path: path.stat().st_size for path in (public, own)}
        reads = {
            "filter parent: openr1 preset (rows mapped)": lambda: trace_rows(str(public), layout),
            "filter parent: this project's layout (lines shipped)": lambda: read_lines(own),
            "validated read: openr1 preset": lambda: read_traces(str(public), layout),
            "validated read: this project's layout": lambda: read_traces(str(own), ours),
        }
        rates = {name: max(rate(args.records, read) for _ in range(args.rounds)) for name, read in reads.items()}
    table = Table(title=f"bench_layouts ({args.records} real Sky-T1 traces, JSONL: {size[public] >> 20} MiB as they are, "
                        f"{size[own] >> 20} MiB converted; best of {args.rounds}; load {os.getloadavg()[0]:.1f})")
    for column in ("read", "records/s", "vs this project's layout"):
        table.add_column(column, justify="left" if column == "read" else "right")
    for name, value in rates.items():
        base = rates[name.replace("openr1 preset (rows mapped)", "this project's layout (lines shipped)").replace("openr1 preset", "this project's layout")]
        table.add_row(name, f"{value:,.0f}", f"{value / base:.2f}")
    Console(width=140).print(table)
    print(json.dumps({name: round(value) for name, value in rates.items()}))


if __name__ == "__main__":
    main()
