"""`distill generate --backend vllm` as a user runs it, with default memory settings, on the tiny
model: the KV cache is sized to the run (the whole run stays small), the engine processes die
with a SIGKILLed main process, the resumed run writes every sample exactly once, and an engine
that cannot start says in one line what to change."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
GiB = 1024**3


def write_prompts(path: Path, count: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"What is {i} plus {2 * i}?"}) + "\n" for i in range(count)))
    return path


def generate(prompts: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cli", "generate", str(prompts), "-o", str(out), "-m", str(model), "-n", "2",
            "--max-tokens", "64", "--field-id", "id", *extra]


def watch(process: subprocess.Popen, process_tree, until=lambda: False, timeout: float = 300) -> int:
    """Poll until `until()` or the process ends; the peak of the summed RSS of its process tree."""
    peak, deadline = 0, time.monotonic() + timeout
    while process.poll() is None and not until() and time.monotonic() < deadline:
        peak = max(peak, process_tree.rss_bytes(process.pid))
        time.sleep(0.1)
    return peak


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_defaults_size_memory_to_the_run_and_engines_die_with_a_sigkilled_run(tiny_qwen, tmp_path, process_tree):
    prompts = write_prompts(tmp_path / "p.jsonl", 150)
    out, log = tmp_path / "out.jsonl", tmp_path / "log.txt"
    with open(log, "w") as sink:
        process = subprocess.Popen(generate(prompts, out, tiny_qwen), cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    peak = watch(process, process_tree, until=lambda: lines(out) >= 2)
    assert process.poll() is None, f"generate ended before it was killed:\n{log.read_text()[-3000:]}"
    recorded, survivors = process_tree.survivors_of_sigkill(process, wait_s=5.0)
    assert len(recorded) >= 2  # vLLM's engine core and its worker (and multiprocessing's resource tracker)
    assert not survivors, f"{len(survivors)} of {len(recorded)} processes of the run outlived it by 5 s"
    kv_lines = [line for line in log.read_text().splitlines() if line.startswith("KV cache")]
    assert len(kv_lines) == 1 and "sequences" in kv_lines[0], log.read_text()[-3000:]

    with open(log, "w") as sink:  # the same command again: resumes
        process = subprocess.Popen(generate(prompts, out, tiny_qwen), cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    peak = max(peak, watch(process, process_tree))
    assert process.wait(10) == 0, log.read_text()[-3000:]
    ids = Counter(json.loads(line)["id"] for line in out.read_text().split("\n") if line)
    assert set(ids) == {f"p{i}#{j}" for i in range(150) for j in range(2)} and set(ids.values()) == {1}
    # 2.6 GiB here; the summed RSS counts shared pages once per process, so it varies with the machine. The
    # 90% default this guards against took ~16 GiB.
    assert peak < 6 * GiB, f"the run's processes peaked at {peak / GiB:.1f} GiB"
    print(f"peak RSS of the run's processes, default memory settings: {peak / GiB:.2f} GiB")


def test_on_cpu_the_kv_cache_is_what_the_run_needs_and_impossible_settings_fail_before_the_engine_starts(tiny_qwen):
    from distill.core.errors import StageError
    from teacher.backends._vllm_memory import plan

    # The tiny model caches 2 layers x 1 KV head x 64 dims x (key + value) in bf16: 512 bytes a token.
    options, line = plan(str(tiny_qwen), {"seed": 0})
    assert options["kv_cache_memory_bytes"] == 256 * 4096 * 512  # vLLM's 256 sequences on CPU x the model's 4096 tokens
    assert line.startswith("KV cache (vLLM on CPU): 512 MiB = 256 sequences x 4096 tokens x 512 B per token;")
    options, _ = plan(str(tiny_qwen), {"seed": 0, "max_model_len": 512, "max_num_seqs": 8})
    assert options["kv_cache_memory_bytes"] == 8 * 512 * 512
    assert plan(str(tiny_qwen), {"kv_cache_memory_bytes": 2**28}) == ({"kv_cache_memory_bytes": 2**28}, None)  # as asked
    for asked, hint in (
        ({"kv_cache_memory_bytes": 2**50}, "--kv-cache-memory-bytes asks for 1048576.0 GiB and only"),  # more than the machine has
        ({"kv_cache_memory_bytes": 2**20}, "raise it, or lower --max-model-len"),  # less than one sequence of 4096 tokens
        ({"gpu_memory_utilization": 1.0}, "--gpu-memory-utilization 1.0 asks for"),  # all of memory, on CPU
        ({"max_model_len": 100000}, "greater than the derived max_model_len"),  # vLLM's own check, past the model's context
    ):
        with pytest.raises(StageError, match=re.escape(hint)):
            plan(str(tiny_qwen), asked)


def test_an_engine_that_cannot_start_is_one_line_exit_1_and_nothing_written(tiny_qwen, tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 2)
    out = tmp_path / "out.jsonl"
    for bad in (["--kv-cache-memory-bytes", str(2**50)],  # refused before the engine starts
                ["--engine-kwargs", "{kv_cache_dtype: bogus}"]):  # refused by vllm.LLM itself
        done = subprocess.run(generate(prompts, out, tiny_qwen, *bad), cwd=ROOT, capture_output=True, text=True, timeout=300)
        last = done.stderr.strip().splitlines()[-1]
        assert done.returncode == 1 and last.startswith("failed: ") and "Traceback" not in done.stderr, done.stderr[-3000:]
        assert not out.exists()
