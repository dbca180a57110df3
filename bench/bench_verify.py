"""The answer checker on the 772 real Sky-T1 traces: agreement with the third-party grader, before
(the checker of another git revision, `main` by default) and after (this checkout), every verdict
that changed, the hand readings of the disagreements, and the filter table of docs/filter.md.

Input: ../shared/data/traces (500 MATH-500 + 272 Minerva traces, one each, with the verdicts of
Qwen2.5-Math's grader; reference: MATH-500's original `answer`, else the grader's `gt`), read as
they are through the openr1 preset (bench/sky_t1.py: `--field-answer answer` for MATH-500,
`gt` for Minerva), then written as this project's records for both checkers.
- Agreement: the real filter stage (`format` + `correctness`, every verdict evaluated,
  `--delimiters sky-t1`), once with the checker of `--base` (its `distill/` exported by
  `git archive` into a temporary directory and run in a child process) and once with this
  checkout's; on the well-formed traces (the `format` rule passes) and on all 772.
- Changed verdicts: every trace whose verdict differs between the two, with both reasons (which
  name the extracted answer and the reference), for reading.
- Disagreements: bench/verify_readings.json holds our hand reading of each disagreement of this
  checkout with the grader (trace id -> "grader wrong" | "grader right" | "judgement call");
  the counts are printed, and any disagreement not read yet is listed.
- The filter table: the default rules run through the real stage, as docs/filter.md shows it.

    python bench/bench_verify.py [--base main] [--data ../shared/data] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from sky_t1 import LAYOUT  # the real traces' columns, named for the openr1 preset

ROOT = Path(__file__).resolve().parents[1]
READINGS = Path(__file__).with_name("verify_readings.json")
VERDICTS = ("grader wrong", "grader right", "judgement call")

# Run in a child process whose `distill` is the checker under test (cwd first on sys.path).
GRADE = """
import json, sys
from distill.core.data import read_records
from distill.filters.config import FilterConfig
from distill.filters.stage import run
if __name__ == "__main__":
    source, out, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    config = FilterConfig(input=source, output=out + ".kept.jsonl", rejected=out + ".rejected.jsonl", rules=["format", "correctness"],
                          delimiters="sky-t1", workers=workers, all_verdicts=True)
    run(config)
    result = {}
    for path in (config.output, config.rejected):
        for t in read_records(path):
            result[t.id] = {"format": t.verdicts["format"].passed, "passed": t.verdicts["correctness"].passed,
                            "reason": t.verdicts["correctness"].reason}
    with open(out, "w") as f:
        json.dump(result, f)
"""


def load_traces(data: Path, path: Path) -> dict[str, bool]:
    """Reads the traces as they are, through the openr1 preset (bench/sky_t1.py), and writes them
    as this project's records to `path` (the checker of `--base` may predate the presets); returns
    the grader's verdict per id."""
    from distill.core.data import write_records
    from distill.core.records import Trace
    from distill.core.trace_layout import TraceLayout, read_traces

    traces, grader = [], {}
    for name, answer in (("math500", "answer"), ("minerva", "gt")):  # MATH-500's original answer, else the grader's
        layout = TraceLayout(**{**LAYOUT, "fields": {**LAYOUT["fields"], "answer": answer, "id": "idx"}})
        for trace in read_traces(str(data / "traces" / f"sky-t1-27b_{name}.jsonl"), layout):
            tid = f"{name}-{trace.problem_id}"
            own = {key: getattr(trace, key) for key in Trace.model_fields if key != "source"}
            traces.append(Trace(**own | {"problem_id": tid, "id": tid}))
            grader[tid] = bool(trace.model_extra["score"])  # the harness's verdict, carried (one per sample)
    write_records(path, traces)
    return grader


def grade(tree: Path, source: Path, out: Path, workers: int) -> dict[str, dict]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run([sys.executable, "-c", GRADE, str(source), str(out), str(workers)], cwd=tree, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def export(revision: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "distill"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def agreement(verdicts: dict[str, dict], grader: dict[str, bool], ids: list[str]) -> str:
    agree = sum(verdicts[i]["passed"] == grader[i] for i in ids)
    return f"{100 * agree / len(ids):.1f}% ({agree}/{len(ids)})"


def filter_table(source: Path, tmp: Path, workers: int) -> str:
    """The default rules through the real stage, printed as docs/filter.md shows them."""
    from distill.filters.config import FilterConfig
    from distill.filters.stage import run

    report = run(FilterConfig(input=str(source), output=str(tmp / "kept.jsonl"), delimiters="sky-t1", workers=workers))
    lines = [f"          filter: {report['kept']} of {report['records_in']} kept ({100 * report['kept_fraction']:.1f}%)",
             " rule          rejected (first)"]
    lines += [f" {rule:<26}{count:>4}" for rule, count in report["rejected_by"].items()]
    lines.append(" completion length (chars)  mean   p50    p90    max")
    for label in ("before", "after"):
        stats = report[f"length_{label}"]["chars"]
        lines.append(f"   {label:<20}{stats['mean']:>8}{stats['p50']:>6}{stats['p90']:>7}{stats['max']:>7}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="main", help="git revision whose checker is 'before'")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("DISTILL_SHARED_DATA", ROOT.parent / "shared" / "data")))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))  # this checkout's distill in this process too (the traces are read through its presets)
    from rich.console import Console
    from rich.table import Table

    if not (args.data / "traces").is_dir():
        sys.exit(f"{args.data / 'traces'} not found (--data or DISTILL_SHARED_DATA)")
    console = Console(width=160)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = tmp / "traces.jsonl"
        grader = load_traces(args.data, source)
        (tmp / "base").mkdir()
        before = grade(export(args.base, tmp / "base"), source, tmp / "before.json", args.workers)
        after = grade(ROOT, source, tmp / "after.json", args.workers)
        table = filter_table(source, tmp, args.workers)

    ids = list(grader)
    formed = [i for i in ids if after[i]["format"]]
    summary = Table(title=f"correctness vs the grader's verdicts on {len(ids)} real Sky-T1 traces")
    for column in ("checker", f"well-formed ({len(formed)})", f"all ({len(ids)})", "passed"):
        summary.add_column(column, justify="left" if column == "checker" else "right")
    for name, verdicts in ((f"before ({args.base})", before), ("after (this checkout)", after)):
        summary.add_row(name, agreement(verdicts, grader, formed), agreement(verdicts, grader, ids),
                        str(sum(v["passed"] for v in verdicts.values())))
    console.print(summary)

    changed = [i for i in ids if before[i]["passed"] != after[i]["passed"]]
    flips = Table(title=f"verdicts changed: {len(changed)} (read each)")
    for column in ("trace", "well-formed", "grader", "before", "after"):
        flips.add_column(column, overflow="fold")
    for i in changed:
        flips.add_row(i, "yes" if after[i]["format"] else "no", "✓" if grader[i] else "✗", before[i]["reason"], after[i]["reason"])
    console.print(flips)

    readings = json.loads(READINGS.read_text()) if READINGS.exists() else {}
    disagreements = [i for i in ids if after[i]["passed"] != grader[i]]
    counts = Table(title=f"disagreements with the grader: {len(disagreements)}, read by hand ({READINGS.name})")
    for column in ("traces", "disagree", *VERDICTS, "not read"):
        counts.add_column(column, justify="left" if column == "traces" else "right")
    for name, group in (("well-formed", [i for i in disagreements if i in formed]), ("the rest", [i for i in disagreements if i not in formed])):
        read = Counter(readings.get(i, "not read") for i in group)
        counts.add_row(name, str(len(group)), *(str(read[v]) for v in (*VERDICTS, "not read")))
    console.print(counts)
    unread = [i for i in disagreements if i not in readings]
    stale = [i for i in readings if i not in disagreements]
    if unread:
        console.print(f"not read yet: {', '.join(unread)}")
    if stale:
        console.print(f"readings of traces that no longer disagree (drop them): {', '.join(stale)}")
    console.print(f"\nOn the {len(ids)} real Sky-T1 traces (--delimiters sky-t1, default rules):\n", highlight=False)
    console.print(table, highlight=False, markup=False)


if __name__ == "__main__":
    main()
