"""`distill generate` and `distill run` on a shared cluster: two writers of one output, a scheduler's
SIGTERM, a key written into the endpoint URL (local stand-in endpoints, no model)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .conftest import generate_args

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-in-the-url-0123456789abcdef"
PARAM_KEY = "query-key-0123456789abcdef"


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _wait_for_lines(path: Path, count: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while (not path.exists() or path.read_text().count("\n") < count) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().split("\n") if line]


def test_a_second_generate_on_the_same_output_is_refused_naming_the_first(prompts, tmp_path, distill_cli, fake_endpoint):
    out = tmp_path / "same.jsonl"
    with fake_endpoint("ok", delay=0.2) as server:
        first = _start(generate_args(prompts, out, server.url, "--concurrency", "1"))
        _wait_for_lines(out, 1, first)
        code, _, err = distill_cli(*generate_args(prompts, out, server.url))
        _, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert code == 2 and err.count("\n") == 1, err
    assert f"is being written by process {first.pid} on host {socket.gethostname()}" in err
    ids = _ids(out)
    assert len(ids) == len(set(ids)) == 12


def test_a_lock_left_by_a_killed_writer_is_taken_over(prompts, tmp_path, distill_cli, fake_endpoint):
    out = tmp_path / "t.jsonl"
    with fake_endpoint("ok", delay=0.2) as server:
        first = _start(generate_args(prompts, out, server.url, "--concurrency", "1"))
        _wait_for_lines(out, 1, first)
        first.kill()
        first.wait()
        assert (tmp_path / ".t.jsonl.lock").exists()  # what SIGKILL leaves
        code, _, err = distill_cli(*generate_args(prompts, out, server.url))
    assert code == 0, err
    ids = _ids(out)
    assert len(ids) == len(set(ids)) == 12 and not (tmp_path / ".t.jsonl.lock").exists()


def _holder(path: Path) -> subprocess.Popen:
    """Another process that holds the lock of `path` until killed."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from distill.core.lock import hold\n"
                               f"with hold({str(path)!r}):\n    print('held', flush=True); time.sleep(60)"],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_writer_samples_nothing(prompts, tmp_path, distill_cli, fake_endpoint):
    out = tmp_path / "t.jsonl"
    holder = _holder(out)
    try:
        with fake_endpoint("ok") as server:
            code, _, err = distill_cli(*generate_args(prompts, out, server.url))
            assert server.requests == 0
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and f"{out}: field 'output': is being written by process {holder.pid} on host" in err
    assert not out.exists()


def test_a_second_run_on_the_same_folder_is_refused_before_anything_runs(prompts, tmp_path, distill_cli, fake_endpoint):
    run = tmp_path / "run"
    holder = _holder(run)
    try:
        with fake_endpoint("ok") as server:
            recipe = tmp_path / "r.yaml"
            recipe.write_text(yaml.safe_dump({"run": {"stages": ["generate"]}, "generate": {
                "prompts": str(prompts), "teacher": "m", "backend": "openai", "base_url": server.url, "fields": {"id": "id"}}}))
            code, _, err = distill_cli("run", recipe, "-o", run)
            assert server.requests == 0
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and err.count("\n") == 1 and f"is being written by process {holder.pid}" in err, err
    assert not run.exists()


def test_a_file_two_writers_appended_to_is_repaired_by_merge(tmp_path, distill_cli):
    row = {"problem_id": "q", "problem": "p", "completion": "c", "teacher": {"model": "m"}}
    traces = tmp_path / "t.jsonl"
    traces.write_text("".join(json.dumps({**row, "id": f"q#{i}", "sample_index": i}) + "\n" for i in (0, 1, 0, 1)))
    code, _, err = distill_cli("filter", traces, "-o", tmp_path / "kept.jsonl")
    assert code == 2 and "duplicate id 'q#0'" in err and f"distill merge {traces} -o NEW.jsonl --drop-duplicates" in err, err
    code, out, err = distill_cli("merge", traces, "-o", tmp_path / "fixed.jsonl", "--drop-duplicates")
    assert code == 0, err
    assert _ids(tmp_path / "fixed.jsonl") == ["q#0", "q#1"] and "2 duplicates" in out


def test_sigterm_ends_generate_like_ctrl_c_with_one_line_and_exit_143(prompts, tmp_path, fake_endpoint):
    out = tmp_path / "t.jsonl"
    with fake_endpoint("ok", delay=0.3) as server:
        process = _start(generate_args(prompts, out, server.url, "--concurrency", "1"))
        _wait_for_lines(out, 2, process)
        process.send_signal(signal.SIGTERM)  # what Kubernetes sends (to the main process only)
        _, err = process.communicate(timeout=60)
        kept = out.read_text().count("\n")
    assert process.returncode == 143, err
    lines = err.strip().splitlines()  # the progress line (this is no terminal), then the one line
    assert lines[-1] == f"interrupted: {kept} samples written to {out}; re-run the same command to resume"
    assert len(lines) <= 2 and "Traceback" not in err


def test_sigterm_ends_a_run_with_one_line_and_the_same_command_resumes(prompts, tmp_path, fake_endpoint):
    recipe = tmp_path / "r.yaml"
    run = tmp_path / "run"
    with fake_endpoint("ok", delay=0.3) as server:
        recipe.write_text(yaml.safe_dump({"run": {"stages": ["generate"]}, "generate": {
            "prompts": str(prompts), "teacher": "m", "backend": "openai", "base_url": server.url, "max_retries": 0,
            "fields": {"id": "id"}, "n": 2, "concurrency": 1}}))
        process = _start(["run", str(recipe), "-o", str(run)])
        _wait_for_lines(run / "generate" / "traces.jsonl", 2, process)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 143, err
        kept = (run / "generate" / "traces.jsonl").read_text().count("\n")
        assert err.strip().splitlines()[-1] == (f"interrupted: stage 'generate': {kept} samples written to "
                                                f"{run / 'generate' / 'traces.jsonl'}; re-run the same command to resume")
        assert "Traceback" not in err and "resource_tracker" not in err
        again = subprocess.run([sys.executable, "-m", "cli", "run", str(recipe), "-o", str(run)], cwd=ROOT,
                               capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    ids = _ids(run / "generate" / "traces.jsonl")
    assert len(ids) == len(set(ids)) == 12


def test_a_key_in_the_endpoint_url_is_in_no_file_the_run_writes(prompts, tmp_path, distill_cli, fake_endpoint):
    with fake_endpoint("ok") as server:
        port = server.url.split(":")[2].split("/")[0]
        for url in (f"http://user:{KEY}@127.0.0.1:{port}/v1", f"http://127.0.0.1:{port}/v1?api_key={PARAM_KEY}"):
            run = tmp_path / f"run{len(url)}"
            recipe = tmp_path / "r.yaml"
            recipe.write_text(yaml.safe_dump({"run": {"stages": ["generate", "filter"]}, "generate": {
                "prompts": str(prompts), "teacher": "m", "backend": "openai", "base_url": url, "max_retries": 0,
                "fields": {"id": "id"}, "n": 2}, "filter": {"rules": ["format"], "workers": 1}}))
            code, out, err = distill_cli("run", recipe, "-o", run)
            assert code == 0, err
            written = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
            assert len(written) > 8 and all(KEY.encode() not in data and PARAM_KEY.encode() not in data
                                            for data in written.values()), [p for p, d in written.items() if KEY.encode() in d]
            assert KEY not in out + err and PARAM_KEY not in out + err
            record = json.loads((run / "generate" / "traces.jsonl").read_text().split("\n")[:-1][0])
            assert record["teacher"]["base_url"].startswith(f"http://127.0.0.1:{port}/v1")
