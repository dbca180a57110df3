"""`distill generate` and `distill merge` from the command line: bad input and an unreachable server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DISTILL = [sys.executable, "-c", "import cli; cli.main()"]


def distill(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*DISTILL, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture
def prompts(tmp_path) -> Path:
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"problem": f"What is {i}+1?", "answer": str(i + 1)}) + "\n" for i in range(3)))
    return path


@pytest.fixture
def existing(tmp_path) -> Path:
    out = tmp_path / "out.jsonl"
    out.write_text(json.dumps({"id": "x#0", "problem_id": "x", "problem": "p", "sample_index": 0, "completion": "c",
                               "teacher": {"model": "tiny"}}) + "\n")
    return out


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--field-problem", "question"], "p.jsonl:1: field 'question': missing; columns are answer, problem"),
        (["--shard", "2/2"], "field 'shard': value error, shard must be 'i/n'"),
        (["--n", "0"], "field 'n'"),
        (["--backend", "openai"], "needs --base-url"),
        (["--teacher", "other"], "holds samples of teacher 'tiny'"),
        (["--backend", "openai", "--base-url", "https://api.deepseek.com", "--logprobs", "5"], "reasoner returns no log-probabilities"),
        (["--backend", "openai", "--base-url", "http://127.0.0.1:1/v1", "--logprobs", "21"], "return at most 20 log-probabilities"),
        (["--logprobs", "5"], "recorded with --logprobs 0, this run has --logprobs 5"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_output_untouched(prompts, existing, args, message):
    before = existing.read_bytes()
    argv = ["generate", str(prompts), "-o", str(existing), "--teacher", "tiny", *args]
    if "--teacher" in args:
        argv[argv.index("--teacher")] = "--backend"  # keep only the second --teacher
        argv[argv.index("--backend") + 1] = "vllm"
    done = distill(*argv)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1 and message in done.stderr
    assert existing.read_bytes() == before


def test_output_must_be_jsonl(prompts, tmp_path):
    done = distill("generate", str(prompts), "-o", str(tmp_path / "o.parquet"), "--teacher", "tiny")
    assert done.returncode == 2 and "must be .jsonl" in done.stderr and not (tmp_path / "o.parquet").exists()


def test_a_refused_connection_fails_at_once_without_retries(prompts, existing):
    before = existing.read_bytes()
    done = distill("generate", str(prompts), "-o", str(existing), "--teacher", "tiny", "--backend", "openai",
                   "--base-url", f"http://127.0.0.1:{closed_port()}/v1", "--max-retries", "2")
    assert done.returncode == 1
    assert "failed: cannot reach http://127.0.0.1:" in done.stderr and "connection refused" in done.stderr
    assert "after 2 retries" not in done.stderr and "retries 0," in done.stderr  # not a transient fault: no retry
    assert "Traceback" not in done.stderr
    assert existing.read_bytes() == before
    fresh = existing.with_name("fresh.jsonl")
    done = distill("generate", str(prompts), "-o", str(fresh), "--teacher", "tiny", "--backend", "openai",
                   "--base-url", f"http://127.0.0.1:{closed_port()}", "--max-retries", "0")
    assert done.returncode == 1 and not fresh.exists()  # nothing written, not even an empty file


def test_completions_api_without_a_loadable_tokenizer(prompts, tmp_path):
    done = distill("generate", str(prompts), "-o", str(tmp_path / "o.jsonl"), "--teacher", "deepseek-reasoner",
                   "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--api", "completions")
    assert done.returncode == 2 and "set --tokenizer" in done.stderr and not (tmp_path / "o.jsonl").exists()


def test_merge_command(tmp_path, existing):
    out = tmp_path / "merged.jsonl"
    done = distill("merge", str(existing), str(existing), "-o", str(out))
    assert done.returncode == 0 and "merged 1 records from 2 files" in done.stdout
    assert out.read_text().count("\n") == 1
    bad = distill("merge", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "m2.jsonl"))
    assert bad.returncode == 2 and "missing.jsonl" in bad.stderr and not (tmp_path / "m2.jsonl").exists()


def test_recipe_then_flags_and_print_config(prompts, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("generate:\n  teacher: deepseek-ai/DeepSeek-R1\n  n: 8\n  fields:\n    id: uid\n")
    done = distill("generate", str(prompts), "-o", str(tmp_path / "o.jsonl"), "--recipe", str(recipe), "--n", "2",
                   "--field-answer", "gt", "--print-config")
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    assert config["teacher"] == "deepseek-ai/DeepSeek-R1" and config["n"] == 2  # the flag wins over the recipe
    assert config["fields"]["id"] == "uid" and config["fields"]["answer"] == "gt"  # field flags refine the recipe's map
    assert (config["temperature"], config["top_p"], config["max_tokens"], config["think_prefill"]) == (0.6, 0.95, 32768, "<think>\n")
    assert not (tmp_path / "o.jsonl").exists()

    recipe.write_text("generate:\n  teacher: t\n  temprature: 0.7\n")
    done = distill("generate", str(prompts), "-o", str(tmp_path / "o.jsonl"), "--recipe", str(recipe))
    assert done.returncode == 2 and "r.yaml:3" in done.stderr and "did you mean 'temperature'" in done.stderr
