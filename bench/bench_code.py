"""Code grading: correct programs kept, wrong ones rejected (reward hacks included), and speed per test.

The set: HumanEval/0-39 (bench/data/humaneval_40.jsonl, MIT, see bench/data/README.md); each
problem's canonical solution (prompt + canonical_solution), the same followed by an "Example usage"
block, and deterministic wrong mutants of it: a flipped comparison, an off-by-one integer, a
constant return, and the constant return dressed up with each reward hack (an early exit, exits
that skip the asserts, an atexit hook, a patched AssertionError, an object equal to everything,
printing a pass, killing the parent). Every program is the final answer of an R1-style completion.

Two graders, each given the same completions:
- distill: `distill.core.verify.check` (block choice, harness, per-case report, plain-data values);
- exit code: the method HumanEval's own harness and distill before this change use: the answer's
  last code block + the test code + `check(entry_point)` run as one script, passed when it exits 0
  (run in distill's sandbox, so the hostile mutants stay contained).
Ground truth for a benign mutant is the exit-code verdict of the plain mutant (they are not
hostile); a hacked mutant is wrong when its constant-return base is.

Then speed: ms per program on HumanEval (one sandbox each), and ms per stdin case on a 50-case
a+b problem (cases in one sandbox vs one sandbox per case, distill's previous way).
Run: python bench/bench_code.py [WORKERS]
"""

from __future__ import annotations

import ast
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "bench" / "data" / "humaneval_40.jsonl"

FLIPPED = {ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
           ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
HACKS = {
    "early exit: sys.exit(0) at the end": "import sys\nsys.exit(0)\n",
    "exit under __main__": "if __name__ == '__main__':\n    import sys\n    sys.exit(0)\n",
    "os._exit(0)": "import os\nos._exit(0)\n",
    "atexit os._exit(0)": "import atexit, os\natexit.register(lambda: os._exit(0))\n",
    "patched AssertionError": "import builtins\nclass _Never(BaseException):\n    pass\nbuiltins.AssertionError = _Never\n",
    "prints a pass, exits": "print('all tests passed')\nimport os\nos._exit(0)\n",
    "kills its parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
}


def _entry(tree: ast.Module, name: str) -> ast.FunctionDef:
    return next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == name)


def mutants(program: str, entry: str) -> dict[str, str]:
    """Deterministic wrong variants of a correct program (absent when the program has nothing to mutate)."""
    out = {}
    tree = ast.parse(program)
    compare = next((n for n in ast.walk(_entry(tree, entry)) if isinstance(n, ast.Compare) and type(n.ops[0]) in FLIPPED), None)
    if compare is not None:
        compare.ops[0] = FLIPPED[type(compare.ops[0])]()
        out["flipped comparison"] = ast.unparse(tree)
    tree = ast.parse(program)
    number = next((n for n in ast.walk(_entry(tree, entry)) if isinstance(n, ast.Constant) and type(n.value) is int), None)
    if number is not None:
        number.value += 1
        out["off-by-one constant"] = ast.unparse(tree)
    tree = ast.parse(program)
    _entry(tree, entry).body = [ast.Return(ast.Constant(0))]
    out["constant return"] = ast.unparse(ast.fix_missing_locations(tree))
    always = "class _Same:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
    tree = ast.parse(program)
    _entry(tree, entry).body = ast.parse("return _Same()").body
    out["hack: object equal to everything"] = always + ast.unparse(ast.fix_missing_locations(tree))
    for name, ending in HACKS.items():
        out[f"hack: {name}"] = out["constant return"] + "\n" + ending
    return out


def completion(program: str, usage: str | None = None) -> str:
    text = f"<think>\nLet me solve it.\n</think>\n\nHere is the solution:\n\n```python\n{program}\n```\n"
    if usage:
        text += f"\nExample usage:\n\n```python\n{usage}\n```\n"
    return text


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from distill.core.records import Trace
    from distill.core.sandbox import Limits, run_python
    from distill.core.verify import VerifyOptions, check, extract_program, final_part

    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    problems = [json.loads(line) for line in DATA.read_text().splitlines()]
    options = VerifyOptions(code_timeout=10)

    reasons: dict[tuple[str, str], str] = {}

    def ours(row: dict, text: str, kind: str = "") -> tuple[bool, float]:
        trace = Trace(problem_id=row["task_id"], problem=row["prompt"], id=f"{row['task_id']}#0", sample_index=0, domain="code",
                      tests={"type": "assert", "code": row["test"], "entry_point": row["entry_point"]}, completion=text)
        started = time.perf_counter()
        verdict = check(trace, options)
        reasons[(row["task_id"], kind)] = verdict.reason
        return verdict.passed, time.perf_counter() - started

    def exit_code(row: dict, text: str) -> tuple[bool, float]:
        program = extract_program(final_part(text)) or ""
        started = time.perf_counter()
        result = run_python(f"{program}\n\n{row['test']}\n\ncheck({row['entry_point']})\n", limits=Limits(wall_s=10, cpu_s=10))
        return result.returncode == 0 and not result.timed_out, time.perf_counter() - started

    jobs = []  # (kind, row, completion, base kind for the truth)
    for row in problems:
        program = row["prompt"] + row["canonical_solution"]
        jobs.append(("correct", row, completion(program), None))
        jobs.append(("correct + example usage block", row, completion(program, f"print({row['entry_point']})"), None))
        for kind, mutant in mutants(program, row["entry_point"]).items():
            base = kind if not kind.startswith("hack") else "constant return"
            jobs.append((kind, row, completion(mutant), base))

    def run(job):
        kind, row, text, _ = job
        return ours(row, text, kind), exit_code(row, text)

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(run, jobs))
    elapsed = time.perf_counter() - started
    peer_verdict = {(job[1]["task_id"], job[0]): res[1][0] for job, res in zip(jobs, results, strict=True)}

    rows: dict[str, dict[str, int]] = {}
    for (kind, row, _text, base), ((mine, _), (theirs, _)) in zip(jobs, results, strict=True):
        truth = True if base is None else peer_verdict[(row["task_id"], base)]
        stats = rows.setdefault(kind, {"n": 0, "wrong": 0, "ours": 0, "peer": 0, "agree": 0})
        stats["n"] += 1
        stats["wrong"] += not truth
        stats["ours"] += mine if base is None else (not mine and not truth)
        stats["peer"] += theirs if base is None else (not theirs and not truth)
        stats["agree"] += mine == truth
    table = Table(title=f"code grading on HumanEval/0-39: {len(jobs)} completions ({workers} threads, {elapsed:.0f} s)")
    for column in ("programs", "kind", "truly wrong", "distill: right verdicts", "exit-code harness: right verdicts"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    total = {"n": 0, "agree": 0, "peer_agree": 0}
    for kind, stats in rows.items():
        wanted = stats["n"] - stats["wrong"] if stats["wrong"] == 0 else stats["wrong"]
        what = "kept" if stats["wrong"] == 0 else "rejected"
        table.add_row(str(stats["n"]), kind, str(stats["wrong"]), f"{stats['ours']}/{wanted} {what}", f"{stats['peer']}/{wanted} {what}")
        total["n"] += stats["n"]
        total["agree"] += stats["agree"]
    peer_agree = sum(res[1][0] == (True if base is None else peer_verdict[(row["task_id"], base)])
                     for (kind, row, _t, base), res in zip(jobs, results, strict=True))
    table.add_row(str(total["n"]), "all: agreement with the truth", "", f"{100 * total['agree'] / total['n']:.1f}%", f"{100 * peer_agree / total['n']:.1f}%")
    Console(width=140).print(table)
    for (kind, row, _text, base), ((mine, _), _peer) in zip(jobs, results, strict=True):
        truth = True if base is None else peer_verdict[(row["task_id"], base)]
        if mine != truth:
            print(f"  distill disagrees: {row['task_id']} {kind}: {reasons[(row['task_id'], kind)]}")

    # Speed, one grader at a time (no threads).
    sample = problems[:20]
    ours_ms = [ours(row, completion(row["prompt"] + row["canonical_solution"]))[1] * 1000 for row in sample]
    peer_ms = [exit_code(row, completion(row["prompt"] + row["canonical_solution"]))[1] * 1000 for row in sample]
    asserts = statistics.mean(sum(isinstance(n, ast.Assert) for n in ast.walk(ast.parse(row["test"]))) for row in sample)
    stdin_cases = [{"input": f"{i} {i * 7}\n", "output": f"{i * 8}\n"} for i in range(50)]
    adder = "a, b = map(int, input().split())\nprint(a + b)\n"
    trace = Trace(problem_id="add", problem="a+b", id="add#0", sample_index=0, domain="code", tests={"type": "stdin", "cases": stdin_cases},
                  completion=completion(adder))
    started = time.perf_counter()
    assert check(trace, options).passed
    ours_case = (time.perf_counter() - started) * 1000 / len(stdin_cases)
    started = time.perf_counter()
    for case in stdin_cases:
        run_python(adder, case["input"], Limits(wall_s=10, cpu_s=10))
    peer_case = (time.perf_counter() - started) * 1000 / len(stdin_cases)
    speed = Table(title="code checking speed (1 at a time)")
    for column in ("tests", "distill", "previous way", "unit"):
        speed.add_column(column, justify="left" if column == "tests" else "right")
    speed.add_row(f"HumanEval, 20 canonical solutions ({asserts:.1f} asserts each)", f"{statistics.mean(ours_ms):.0f}",
                  f"{statistics.mean(peer_ms):.0f}", "ms per program")
    speed.add_row("HumanEval, per assert", f"{statistics.mean(ours_ms) / asserts:.1f}", f"{statistics.mean(peer_ms) / asserts:.1f}", "ms per assert")
    speed.add_row("stdin, a+b with 50 cases (one sandbox vs one per case)", f"{ours_case:.0f}", f"{peer_case:.0f}", "ms per case")
    Console(width=140).print(speed)


if __name__ == "__main__":
    main()
