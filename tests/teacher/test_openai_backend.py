"""The openai backend against a real vLLM server on 127.0.0.1 (started once for the module),
with a fault-injecting proxy in front of it, and a real `distill generate` killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distill.core.data import read_records
from teacher.config import GenerateConfig
from teacher.generate import run

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DISTILL = [sys.executable, "-c", "import cli; cli.main()"]
SECRET = "sk-test-never-written-0123456789"


@pytest.fixture
def server(tiny_server):
    """The session's vLLM server (tests/conftest.py): it splits the reasoning out; the backend stitches it back."""
    return tiny_server


def write_prompts(path: Path, count: int) -> Path:
    rows = [{"id": f"q{i}", "problem": f"Compute {i} times 7.", "answer": str(7 * i)} for i in range(count)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def config_for(prompts: Path, output: Path, base_url: str, **overrides) -> GenerateConfig:
    values = dict(prompts=str(prompts), output=output, teacher="tiny", backend="openai", base_url=base_url, n=2,
                  max_tokens=24, fields={"id": "id"}, retry_base_delay=0.05, retry_max_delay=0.5)
    values.update(overrides)
    return GenerateConfig(**values)


def ids_of(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().split("\n") if line]


def test_endpoint_samples_with_reasoning_stitched_back(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    prompts = write_prompts(tmp_path / "p.jsonl", 6)
    with open(prompts, "a") as handle:  # past the server's 2048-token context: the server says 400, we skip it
        handle.write(json.dumps({"id": "long", "problem": "The lazy dog sleeps. " * 2000}) + "\n")
    summary = run(config_for(prompts, tmp_path / "out.jsonl", server))
    records = list(read_records(tmp_path / "out.jsonl"))
    assert sorted(r.id for r in records) == sorted(f"q{i}#{j}" for i in range(6) for j in range(2))
    assert summary["samples_written"] == 12 and summary["retries"] == 0
    assert summary["skipped_prompts"] == {"prompt longer than the context (endpoint)": 1}
    for record in records:
        # The server returned `reasoning` apart (content empty): R1 form again, tag left open.
        assert record.completion.startswith("<think>\n")
        assert record.finish_reason in ("stop", "length") and 1 <= record.completion_tokens <= 24
        assert record.teacher["base_url"] == server
    # A random-weight model may end a sample at its first token (CI saw one): the stitched
    # reasoning must show in most samples, not in every one.
    assert sum(len(r.completion) > len("<think>\n") for r in records) >= len(records) // 2
    assert SECRET not in (tmp_path / "out.jsonl").read_text()


def test_completions_api_renders_prompt_with_prefill(server, tiny_qwen, tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 3)
    run(config_for(prompts, tmp_path / "out.jsonl", server, api="completions", tokenizer=str(tiny_qwen), n=1))
    records = list(read_records(tmp_path / "out.jsonl"))
    assert len(records) == 3 and all(r.completion.startswith("<think>\n") for r in records)


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_logprobs_from_a_vllm_server_as_token_ids(server, tiny_qwen, tmp_path, api):
    from transformers import AutoTokenizer

    from distill.core import logprobs

    prompts = write_prompts(tmp_path / "p.jsonl", 2)
    out = tmp_path / "out.jsonl"
    summary = run(config_for(prompts, out, server, api=api, tokenizer=str(tiny_qwen), logprobs=20))
    index = logprobs.scan(logprobs.side_path(out))
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen)
    assert summary["logprobs_bytes_per_token"] < 6 + 6 * 20 + 10
    for record in read_records(out):
        lp = index.read(record.id)
        assert lp.k == 20 and len(lp) == record.completion_tokens and (lp.top_ids >= 0).all()
        assert (lp.top_logprobs[:, 0].astype(float) >= lp.logprob.astype(float) - 1e-2).all()  # top-1 is the most likely
        if api == "completions":  # chat: the server's reasoning parser re-cuts the text (the ids are what it sampled)
            # a random model can stop inside a UTF-8 character: vLLM's text leaves the unfinished tail out, the ids have it
            text = record.completion.removeprefix("<think>\n").rstrip("\ufffd")
            full = tokenizer.decode(lp.ids.tolist(), skip_special_tokens=True)
            assert full.startswith(text[:-2]) and len(full.rstrip("\ufffd")) <= len(text) + 2, (full, text)


def test_faults_every_sample_once_and_retries_bounded(server, tmp_path, fault_proxy):
    prompts = write_prompts(tmp_path / "p.jsonl", 16)
    out = tmp_path / "out.jsonl"
    # the timeout leaves a loaded 2-core machine room for a normal request; a stall outlasts it
    with fault_proxy(server.removesuffix("/v1"), stall_s=40) as proxy:
        summary = run(config_for(prompts, out, proxy.url, concurrency=8, request_timeout=10, max_retries=6))
    ids = ids_of(out)
    assert sorted(ids) == sorted(f"q{i}#{j}" for i in range(16) for j in range(2))  # each exactly once
    assert set(proxy.faults) == {"500", "429", "drop", "stall"}
    assert summary["retries"] == sum(proxy.faults.values())  # one retry per injected fault, no more


def test_requests_lost_on_closed_keep_alive_connections_are_resent_at_once_not_retried(server, tmp_path, fault_proxy):
    # Every connection that served a request is closed when the next one arrives on it: the
    # race between a server's keep-alive timeout and the client's reuse, made certain.
    prompts = write_prompts(tmp_path / "p.jsonl", 10)
    out = tmp_path / "out.jsonl"
    with fault_proxy(server.removesuffix("/v1"), cycle=(None,), keep_alive=True) as proxy:
        summary = run(config_for(prompts, out, proxy.url, concurrency=2))
    assert sorted(ids_of(out)) == sorted(f"q{i}#{j}" for i in range(10) for j in range(2))
    assert proxy.faults["stale"] >= 10  # most requests went out on a reused connection first
    assert summary["retries"] == 0 and summary["errors"] == 0  # a retry is counted, and backed off, only for a fault


def _generate_cli(prompts: Path, out: Path, base_url: str, *extra: str) -> list[str]:
    return [*DISTILL, "generate", str(prompts), "-o", str(out), "--teacher", "tiny", "--backend", "openai",
            "--base-url", base_url, "--n", "2", "--max-tokens", "48", "--field-id", "id", *extra]


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_sigkill_then_resume_equals_uninterrupted_run(server, tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 150)
    reference = tmp_path / "reference.jsonl"
    subprocess.run(_generate_cli(prompts, reference, server, "--concurrency", "4"), cwd=ROOT, check=True, capture_output=True)

    out = tmp_path / "out.jsonl"
    kills = 0
    for threshold in (0, 40, 150):  # before the first sample, then twice mid-run
        process = subprocess.Popen(_generate_cli(prompts, out, server, "--concurrency", "4"), cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while _lines(out) < threshold + (1 if threshold else 0) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if threshold == 0:
            time.sleep(0.3)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(30)
    assert kills >= 2 and 0 < _lines(out) < 300
    done = subprocess.run(_generate_cli(prompts, out, server, "--concurrency", "4"), cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    ids = ids_of(out)
    assert len(ids) == len(set(ids)) == 300
    assert set(ids) == set(ids_of(reference))
    list(read_records(out))  # every line a valid record


def test_generate_cli_never_prints_the_key(server, tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 2)
    env = {**os.environ, "MY_KEY": SECRET}
    done = subprocess.run(_generate_cli(prompts, tmp_path / "out.jsonl", server, "--api-key-env", "MY_KEY"), cwd=ROOT,
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "samples written" in done.stderr
    assert SECRET not in done.stdout + done.stderr + (tmp_path / "out.jsonl").read_text()
