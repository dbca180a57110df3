"""Peak memory of `distill generate --backend vllm` and `distill eval` on a tiny model with default
memory settings, on this machine: the summed RSS of the command and every process it starts
(vLLM's engine core and worker, multiprocessing's helpers, the answer checkers), sampled every
0.1 s. On CPU the KV cache is sized to the run; the line saying what was chosen is shown.
Target: under 4 GiB (vLLM's own CPU default, 90% of memory for the KV cache, peaked at ~23 GiB
on a 24 GiB machine).

    python bench/bench_memory.py [--prompts 256] [--max-tokens 256]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GiB = 1024**3


def peak_rss(command: list[str], log: Path) -> tuple[int, float, int]:
    """Run `command`; (peak summed RSS of its process tree, seconds, exit code)."""
    import psutil

    start = time.monotonic()
    with open(log, "w") as sink:
        process = subprocess.Popen(command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    root, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        total = 0
        for member in [root, *root.children(recursive=True)]:
            try:
                total += member.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        peak = max(peak, total)
        time.sleep(0.1)
    return peak, time.monotonic() - start, process.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from distill.quickstart.tiny import build_model

    work = Path(tempfile.mkdtemp(prefix="bench_memory_"))
    model = build_model(work / "tiny-qwen", family="qwen")
    prompts = work / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"What is {i} plus {2 * i}?", "answer": str(3 * i)}) + "\n"
                               for i in range(args.prompts)))
    cli = [sys.executable, "-m", "cli"]
    runs = {
        "distill generate --backend vllm (n=4)": [*cli, "generate", str(prompts), "-o", str(work / "traces.jsonl"), "-m", str(model),
                                                  "--max-tokens", str(args.max_tokens)],
        "distill eval (k=4)": [*cli, "eval", str(model), "-b", str(prompts), "-o", str(work / "eval"),
                               "--max-tokens", str(args.max_tokens)],
    }
    table = Table(title=f"bench_memory: tiny Qwen2 model, default memory settings, {args.prompts} prompts, max_tokens "
                        f"{args.max_tokens}; {psutil_total() / GiB:.1f} GiB machine, {os.cpu_count()} CPUs")
    for column in ("command", "KV cache chosen", "peak RSS, all processes", "seconds", "target"):
        table.add_column(column, justify="left" if column in ("command", "KV cache chosen") else "right")
    for name, command in runs.items():
        log = work / f"{name.split()[1]}.log"
        peak, seconds, code = peak_rss(command, log)
        if code != 0:
            raise SystemExit(f"{name} failed ({code}); see {log}")
        chosen = next((line for line in log.read_text().splitlines() if line.startswith("KV cache")), "(none printed)")
        verdict = "< 4 GiB " + ("ok" if peak < 4 * GiB else "ABOVE")
        table.add_row(name, chosen.split(": ", 1)[-1].split(";")[0], f"{peak / GiB:.2f} GiB", f"{seconds:.0f}", verdict)
    Console(width=200).print(table)
    print(f"load average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


def psutil_total() -> int:
    import psutil

    return psutil.virtual_memory().total


if __name__ == "__main__":
    main()
