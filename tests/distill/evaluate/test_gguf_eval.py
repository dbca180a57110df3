"""`distill eval FILE.gguf`: the file is served by llama.cpp's OpenAI-compatible server, started on
127.0.0.1 by the command, sampled through the openai backend, and stopped after; the server dies
with the command, SIGKILL included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp", reason="needs the gguf extra (llama-cpp-python)")

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def gguf_file(released_qwen, tmp_path_factory) -> Path:
    """A tiny student with Qwen2.5's tokenizer as `distill publish --gguf q8_0` writes it."""
    import shutil

    from transformers import AutoTokenizer

    from students.publish import PublishConfig
    from students.publish import run as publish
    from students.templates import TEMPLATES, prepare_tokenizer

    root = tmp_path_factory.mktemp("gguf-eval")
    final = root / "run" / "final"
    shutil.copytree(released_qwen, final)
    prepare_tokenizer(AutoTokenizer.from_pretrained(final), TEMPLATES["chatml"], "<|endoftext|>").save_pretrained(final)
    (root / "run" / "train.json").write_text(json.dumps({"student": "qwen-1.5b", "method": "full", "template": "chatml", "max_length": 256}))
    publish(PublishConfig(run_dir=root / "run", output=root / "model", gguf=["q8_0"], model_name="tiny"))
    return root / "model" / "tiny-Q8_0.gguf"


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "mini.jsonl"
    path.write_text("".join(json.dumps({"problem": f"What is {a} + {b}?", "answer": str(a + b)}) + "\n" for a, b in ((1, 2), (20, 22), (7, 5))))
    return path


def servers(model: Path) -> dict[int, int]:
    """pid -> parent pid of the llama.cpp servers running this file."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"llama_cpp.server" in command and str(model).encode() in command:
            found[int(entry.name)] = parent
    return found


def test_requests_sample_as_the_protocol_says(tmp_path):
    """llama-cpp-python's server would add top_k 40, min_p 0.05 and repeat_penalty 1.1 to every request."""
    from distill.evaluate.config import EvalConfig
    from teacher.backends.llamacpp import served
    from teacher.sampling import SamplingConfig

    assert EvalConfig(model="m-Q4_K_M.gguf", benchmarks=["b.jsonl"]).sampling.backend == "llamacpp"
    config = SamplingConfig(model="m.gguf", backend="llamacpp", extra_body={"top_k": 20})
    body = served(config, "http://127.0.0.1:1/v1")
    assert body.extra_body == {"top_k": 20, "min_p": 0.0, "repeat_penalty": 1.0}  # what the user sets still wins
    assert body.request_seed and body.api == "chat" and body.concurrency == 2 and body.base_url == "http://127.0.0.1:1/v1"


@pytest.mark.slow
def test_eval_of_a_gguf_file_runs_llama_cpp_server(gguf_file, benchmark, tmp_path):
    out = tmp_path / "eval"
    command = [sys.executable, "-m", "cli", "eval", str(gguf_file), "-b", str(benchmark), "-o", str(out), "--k", "2",
               "--max-tokens", "16", "--workers", "1"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == "llamacpp" and summary["benchmarks"]["mini"]["samples"] == 6
    assert summary["tokens_per_s"] > 0
    samples = [json.loads(line) for line in (out / "mini.samples.jsonl").read_text().split("\n") if line]
    # Rendered by the server with the GGUF's template, whose generation prompt opens the reasoning.
    assert all(s["completion"].startswith("<think>\n") and s["completion_tokens"] for s in samples)
    assert all(s["teacher"]["backend"] == "llamacpp" and s["verdicts"]["correctness"]["reason"] for s in samples)
    assert servers(gguf_file) == {}  # stopped when the command finished
    # Same request seeds, same samples: the comparison between files is not sampling noise.
    again = tmp_path / "again"
    command[command.index(str(out))] = str(again)
    assert subprocess.run(command, capture_output=True, cwd=ROOT, timeout=300).returncode == 0
    first = {s["id"]: s["completion"] for s in samples}
    assert {s["id"]: s["completion"] for s in map(json.loads, (again / "mini.samples.jsonl").read_text().split("\n")[:-1])} == first
    assert len(set(first.values())) == len(first)  # the seeds differ between samples
    assert servers(gguf_file) == {}


@pytest.mark.slow
def test_server_dies_with_the_command(gguf_file, benchmark, tmp_path):
    command = [sys.executable, "-m", "cli", "eval", str(gguf_file), "-b", str(benchmark), "-o", str(tmp_path / "eval"),
               "--k", "64", "--max-tokens", "512", "--workers", "1"]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while child.pid not in servers(gguf_file).values() and time.monotonic() < deadline:
            assert child.poll() is None, "eval ended before its server started"
            time.sleep(0.2)
        (server,) = [pid for pid, parent in servers(gguf_file).items() if parent == child.pid]
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        deadline = time.monotonic() + 10
        while server in servers(gguf_file) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server not in servers(gguf_file)
    finally:
        if child.poll() is None:
            child.kill()
