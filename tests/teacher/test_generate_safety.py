"""`distill generate` never loses samples or shows a key: OUT that is the prompts or not a trace file,
a server that echoes the Authorization header, Ctrl-C mid-run, a full disk (local endpoints, no model)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from teacher.store import scan_output

from .conftest import generate_args

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-test-echoed-0123456789abcdef"


@pytest.mark.parametrize("content", ["hello\n", "hello", '{"a": 1}\n', '{"id": "x#0", "problem_id": "x", "completion": "c"}\n{broken\n'])
def test_an_output_that_is_not_a_trace_file_is_refused_and_left_alone(prompts, tmp_path, distill_cli, content):
    out = tmp_path / "n.jsonl"
    out.write_text(content)
    code, _, err = distill_cli(*generate_args(prompts, out, "http://127.0.0.1:9/v1"))
    assert code == 2 and "not a trace file" in err and err.count("\n") == 1
    assert out.read_text() == content


def test_the_prompts_file_as_output_is_refused(prompts, distill_cli):
    before = prompts.read_bytes()
    code, _, err = distill_cli(*generate_args(prompts, prompts, "http://127.0.0.1:9/v1"))
    assert code == 2 and "is also an input" in err and prompts.read_bytes() == before


@pytest.mark.parametrize(("status", "key_env", "key"), [(400, "OPENAI_API_KEY", KEY), (404, "MY_KEY", "plain-value-not-shaped-like-a-key")])
def test_a_server_that_echoes_the_key_never_gets_it_shown(prompts, tmp_path, distill_cli, fake_endpoint, monkeypatch, status, key_env, key):
    monkeypatch.setenv(key_env, key)
    with fake_endpoint("echo", status=status) as server:
        code, out, err = distill_cli(*generate_args(prompts, tmp_path / "t.jsonl", server.url, "--api-key-env", key_env))
    assert server.requests >= 1 and code == 1, err
    assert key not in out + err and "<redacted>" in err  # the echo did come back, and was redacted
    assert not (tmp_path / "t.jsonl").exists()


def test_a_run_log_never_holds_the_key(prompts, tmp_path, distill_cli, fake_endpoint, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with fake_endpoint("echo") as server:
        recipe = tmp_path / "r.yaml"
        recipe.write_text(f"run: {{stages: [generate]}}\ngenerate: {{prompts: {prompts}, teacher: m, backend: openai, "
                          f"base_url: '{server.url}', max_retries: 0, fields: {{id: id}}}}\n")
        code, out, err = distill_cli("run", recipe, "-o", tmp_path / "run")
    assert code == 1
    written = "".join(p.read_text(errors="replace") for p in (tmp_path / "run").rglob("*") if p.is_file())
    assert KEY not in out + err + written and "<redacted>" in err  # the echo came back, and was redacted


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_ctrl_c_says_how_many_samples_are_kept_and_a_rerun_resumes(prompts, tmp_path, fake_endpoint):
    out = tmp_path / "t.jsonl"
    with fake_endpoint("ok", delay=0.3) as server:
        process = _start(generate_args(prompts, out, server.url, "--concurrency", "1"))
        deadline = time.monotonic() + 60
        while (not out.exists() or out.read_text().count("\n") < 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        kept = out.read_text().count("\n")
        assert err.splitlines()[-1] == f"interrupted: {kept} samples written to {out}; re-run the same command to resume"
        assert "Traceback" not in err and kept >= 2
        done = subprocess.run([sys.executable, "-m", "cli", *generate_args(prompts, out, server.url)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    ids = [json.loads(line)["id"] for line in out.read_text().split("\n") if line]
    assert sorted(ids) == sorted(f"q{i}#{j}" for i in range(6) for j in range(2))  # each sample exactly once


def test_full_disk_mid_run_is_one_line_and_keeps_every_whole_sample(prompts, tmp_path, distill_cli, fake_endpoint):
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("a small tmpfs needs root")
    try:
        out = disk / "t.jsonl"
        with fake_endpoint("ok", size=8000) as server:  # 12 samples of 8 KB into 64 KB
            code, _, err = distill_cli(*generate_args(prompts, out, server.url, "--concurrency", "1"))
        assert code == 1 and err.splitlines()[-1].startswith("failed: No space left on device"), err
        assert "Traceback" not in err
        state = scan_output(out)  # what is there is whole records, and at most a torn tail a re-run drops
        assert len(state.done) >= 1
    finally:
        subprocess.run(["umount", str(disk)], check=True)
