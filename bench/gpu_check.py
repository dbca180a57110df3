"""GPU check: one command that runs `distill train`'s GPU path on real hardware and measures it.

    python3 bench/gpu_check.py --wheels-dir .gpu-wheels --out $OUT/gpu   # the GPU machine (~3-4 min on one H100)
    python bench/gpu_check.py --cpu-smoke --out /tmp/gpu-check           # the rehearsal on a CPU (< 90 s)
    python3 bench/gpu_check.py --wheels                                  # what travels (bench/gpu_wheels.txt)

1. --wheels-dir: installs the carried wheels (bench/gpu_wheels.py) into a folder put first on PYTHONPATH.
2. A child process (so that this one never holds a CUDA context while the runs measure memory) builds
   a random-weight student of the qwen-1.5b preset's shape with Qwen2.5's real tokenizer (--cpu-smoke:
   the tiny test model), writes one JSONL of real-length synthetic conversations per micro-step size
   (three samples of 55/25/15% of the micro-step, which `distill train` packs into identical packs, one
   per optimizer step), and checks that packed samples do not see each other on this device (a sample's
   logits alone vs packed with others, through the real loading code and training collator).
3. Runs the real `distill train` (python -m cli train) per configuration: 16k and 32k tokens per micro-step
   x full and LoRA x chunked loss and Liger, gradient checkpointing on, no gradient accumulation.
   --cpu-smoke: one size on the CPU; the Liger rows are shown as skipped.
4. Reads each run's train.json: steady tokens/s (after the first step), peak memory, and the planner's
   prediction for the same settings; MFU from the model's FLOPs per token and the GPU's peak.
5. Writes gpu_check.json, gpu_check.md (the table) and gpu_check.log (the runs' output) under --out after
   every run, so a run cut short still leaves what it measured, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import gpu_wheels  # noqa: E402  (next to this file)
from gpu_check_parts import GIB, PEAK_BF16_TFLOPS, STUDENT, flops_per_token, peak_tflops  # noqa: E402

from distill.core import processes  # noqa: E402  (stdlib only: importable before the wheels are installed)

GPU = {"tokens": [16384, 32768], "steps": 4, "budget_s": 225}
SMOKE = {"tokens": [1024], "steps": 2, "budget_s": None}
RUNS = [(method, loss) for method in ("full", "lora") for loss in ("chunked", "liger")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="Folder for gpu_check.json, gpu_check.md and gpu_check.log.")
    parser.add_argument("--cpu-smoke", action="store_true", help="The rehearsal: tiny model, CPU, one size.")
    parser.add_argument("--wheels", action="store_true", help="Print the carried wheels and their total, then exit.")
    parser.add_argument("--download", type=Path, metavar="DIR", help="Download the listed wheels into DIR, then exit.")
    parser.add_argument("--wheels-dir", type=Path, help="Install the listed wheels from here first (the GPU machine).")
    parser.add_argument("--tokens", type=lambda text: [int(n) for n in text.split(",")], help="Tokens per micro-step, e.g. 16384,32768.")
    parser.add_argument("--steps", type=int, help="Optimizer steps per run (the first is not timed).")
    parser.add_argument("--budget-s", type=float, help="Skip the runs that would end past this many seconds (GPU: 225).")
    parser.add_argument("--peak-tflops", type=float, help=f"The GPU's dense bf16 peak (default by name: {PEAK_BF16_TFLOPS}).")
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)  # the child process of step 2
    args = parser.parse_args()
    if args.wheels:
        print(gpu_wheels.table(gpu_wheels.read_list()))
        return
    if args.download:
        gpu_wheels.download(args.download, gpu_wheels.read_list())
        print(gpu_wheels.table(gpu_wheels.read_list()))
        return
    if args.prepare:
        from gpu_check_parts import prepare

        prepare(args.prepare, smoke=args.cpu_smoke, tokens=args.tokens, steps=args.steps)
        return
    if args.out is None:
        parser.error("--out DIR is needed")
    sys.exit(check(args))


def check(args) -> int:
    started = time.monotonic()
    settings = SMOKE if args.cpu_smoke else GPU
    tokens, steps = args.tokens or settings["tokens"], args.steps or settings["steps"]
    budget = args.budget_s if args.budget_s is not None else settings["budget_s"]
    work = Path(tempfile.mkdtemp(prefix="distill-gpu-check-", dir=scratch(args.cpu_smoke)))
    report = Report(args.out)
    try:
        if args.wheels_dir:
            report.log(f"$ install the listed wheels from {args.wheels_dir} into {work / 'site'}")
            try:
                gpu_wheels.install(args.wheels_dir, work / "site", gpu_wheels.read_list())
            except (SystemExit, subprocess.CalledProcessError) as exc:
                report.fail(f"installing the wheels failed: {exc}")
                return 1
        env = child_env(args, work)
        report.log(f"$ prepare (model, data, packed-sample isolation) in {work}")
        prepare = [sys.executable, __file__, "--prepare", str(work), "--tokens", ",".join(map(str, tokens)),
                   "--steps", str(steps), *(["--cpu-smoke"] if args.cpu_smoke else [])]
        if report.run(prepare, env, timeout=600) != 0:
            report.fail("prepare failed: see gpu_check.log")
            return 1
        prepared = json.loads((work / "prepare.json").read_text())
        report.start(prepared, steps, peak_tflops(prepared["device"]["name"], args.peak_tflops) if prepared["device"]["cuda"] else None)
        for size in tokens:
            for method, loss in RUNS:
                row = {"tokens": size, "method": method, "loss": loss}
                if loss == "liger" and not prepared["liger"]:
                    row["status"] = "skipped: Liger needs a CUDA GPU and liger-kernel"
                elif budget and time.monotonic() - started + report.expected(method) > budget:
                    row["status"] = f"skipped: past the {budget:.0f} s budget"
                else:  # a run that hangs is stopped soon enough for the files to be written before the machine's limit
                    timeout = 600 if not budget else max(60.0, budget - (time.monotonic() - started) + 90)
                    row.update(train(report, env, work, prepared, size, steps, method, loss, timeout))
                report.add(row)
        report.finish(time.monotonic() - started)
        print(report.markdown())
        return 0 if report.passed() else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


def scratch(smoke: bool) -> str | None:
    """Run folders on /dev/shm when it has room (full runs save ~12 GB each: weights, optimizer, final/)."""
    if not smoke and os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free > 40 * GIB:
        return "/dev/shm"
    return None


def child_env(args, work: Path) -> dict[str, str]:
    """The children's environment: offline, the installed wheels and this checkout first on the path;
    the smoke hides any GPU so that it rehearses the same on every machine."""
    paths = [str(work / "site"), str(ROOT)] if args.wheels_dir else [str(ROOT)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONUNBUFFERED="1")
    if args.cpu_smoke:
        env["CUDA_VISIBLE_DEVICES"] = ""
        # one thread: a tiny model gains nothing from more, and on a busy machine spinning OpenMP threads made
        # each step ~5x slower
        env.setdefault("OMP_NUM_THREADS", "1")
    return env


def train(report, env, work: Path, prepared: dict, tokens: int, steps: int, method: str, loss: str, timeout: float) -> dict:
    """One `distill train` run; its figures from train.json."""
    run_dir = work / f"run-{tokens}-{method}-{loss}"
    command = [sys.executable, "-m", "cli", "train", "--student", STUDENT, "--base-model", prepared["model"],
               "--data", prepared["data"][str(tokens)], "--output", str(run_dir), "--max-seq-length", str(tokens),
               "--batch-size", "1", "--grad-accum", "1", "--max-steps", str(steps), "--eval-fraction", "0",
               "--logging-steps", "1", "--loss-kernel", loss, "--seed", "0", "--gradient-checkpointing",
               *(["--lora"] if method == "lora" else [])]
    report.log(f"$ {' '.join(command)}")
    begun = time.monotonic()
    code = report.run(command, env, timeout=timeout)
    wall = time.monotonic() - begun
    report.seen(method, wall)
    if code != 0 or not (run_dir / "train.json").is_file():
        return {"status": f"failed (exit {code}): {report.last_error()}", "wall_s": round(wall, 1)}
    summary = json.loads((run_dir / "train.json").read_text())
    shutil.rmtree(run_dir, ignore_errors=True)  # gigabytes of weights and optimizer state
    metrics = summary["metrics"]
    row = {"status": "ok", "wall_s": round(wall, 1), "steps": metrics["steps"], "ran_loss": summary["loss_kernel"],
           "tokens_per_s": metrics.get("steady_tokens_per_s"), "tokens_per_s_whole_run": metrics["tokens_per_s"],
           "sequences": metrics["sequences"], "examples": metrics["examples"], "train_loss_curve": metrics["train_loss_curve"],
           **{key: metrics.get(key) for key in ("peak_gpu_allocated_bytes", "peak_gpu_reserved_bytes",
                                                "gpu_outside_allocator_bytes", "peak_rss_bytes", "predicted_peak_bytes")}}
    if summary["loss_kernel"] != loss:
        row["status"] = f"failed: ran the {summary['loss_kernel']} loss, not {loss}"
    elif metrics["sequences"] != steps or metrics["dropped_too_long"]:
        row["status"] = f"failed: {metrics['sequences']} packs, {metrics['dropped_too_long']} dropped (want {steps}, 0)"
    if row["peak_gpu_reserved_bytes"] is not None:  # what the planner's total stands for: the allocator's peak and the rest of the device's use
        row["measured_bytes"] = row["peak_gpu_reserved_bytes"] + row["gpu_outside_allocator_bytes"]
    flops = flops_per_token(prepared["arch"], prepared["lengths"][str(tokens)], method)
    row["flops_per_token"] = flops
    if report.peak and row["tokens_per_s"]:
        row["mfu"] = row["tokens_per_s"] * flops / (report.peak["tflops"] * 1e12)
    return row


class Report:
    """gpu_check.json, gpu_check.md and gpu_check.log under `out`, rewritten after every row."""

    def __init__(self, out: Path):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.data: dict = {"rows": []}
        self.peak = None
        self.durations: dict[str, float] = {}
        self.log_path = out / "gpu_check.log"
        self.log_path.write_text("")
        self.tail = ""

    def log(self, text: str) -> None:
        print(text, flush=True)
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(text + "\n")

    def run(self, command: list[str], env: dict, timeout: float | None) -> int:
        """Run `command` from the checkout's root; its output is appended to the log (and kept for last_error)."""
        with open(self.log_path, "a", encoding="utf-8") as log:
            start = log.tell()
            child = processes.start(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # dies with us
            try:
                code = child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                processes.stop(child)
                code = 124
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            log.seek(start)
            self.tail = log.read()[-4000:]
        return code

    def last_error(self) -> str:
        lines = [line.strip() for line in self.tail.splitlines() if line.strip() and not line.startswith(("training", "Writing"))]
        return lines[-1][:300] if lines else "no output"

    def expected(self, method: str) -> float:
        """Seconds a run of `method` is expected to take: the longest seen so far (a first guess before any)."""
        return self.durations.get(method, 40.0)

    def seen(self, method: str, seconds: float) -> None:
        self.durations[method] = max(seconds, self.durations.get(method, 0.0))

    def start(self, prepared: dict, steps: int, peak: float | None) -> None:
        self.peak = peak
        self.data.update({key: prepared[key] for key in ("device", "arch", "isolation", "versions", "lengths")},
                         student=STUDENT, steps=steps, peak_tflops=peak)
        self.write()

    def add(self, row: dict) -> None:
        self.data["rows"].append(row)
        self.write()
        figures = [f"{key} {row[key]:,.0f}" for key in ("tokens_per_s", "peak_gpu_allocated_bytes", "predicted_peak_bytes")
                   if row.get(key) is not None]
        self.log(f"-> {row['tokens']} {row['method']} {row['loss']}: {row['status']}" + (f" ({', '.join(figures)})" if figures else ""))

    def fail(self, reason: str) -> None:
        self.data["error"] = reason
        self.write()
        print(reason, file=sys.stderr)

    def finish(self, seconds: float) -> None:
        self.data["wall_s"] = round(seconds, 1)
        self.write()

    def passed(self) -> bool:
        rows = self.data["rows"]
        return self.data["isolation"]["passed"] and all(row["status"] == "ok" or row["status"].startswith("skipped") for row in rows)

    def write(self) -> None:
        for name, text in (("gpu_check.json", json.dumps(self.data, indent=2) + "\n"), ("gpu_check.md", self.markdown())):
            tmp = self.out / f".{name}.tmp"
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.out / name)

    def markdown(self) -> str:
        from gpu_check_parts import markdown

        return markdown(self.data)


if __name__ == "__main__":
    main()
