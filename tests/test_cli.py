"""The `distill` entry point: every stage is listed, start-up stays light, user errors are one line and exit 2."""

from __future__ import annotations

import subprocess
import sys

COMMANDS = ["generate", "merge", "filter", "inspect", "train", "students", "publish", "eval", "run"]


def distill(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_help_lists_every_command():
    result = distill("--help")
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert f" {command} " in result.stdout, command


def test_help_does_not_import_heavy_libraries():
    code = "import sys, cli; sys.argv = ['distill', '--help']\ntry:\n    cli.main()\nexcept SystemExit:\n    pass\nprint(sorted(m for m in ('torch', 'vllm', 'transformers', 'datasets') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_version_and_bad_input(tmp_path):
    assert distill("--version").stdout.startswith("distill ")
    bad = tmp_path / "traces.jsonl"
    bad.write_text('{"problem": "x"}\n{"problem": \n')
    result = distill("filter", str(bad), "-o", str(tmp_path / "kept.jsonl"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "traces.jsonl:1: field 'completion': missing" in result.stderr  # ids are derived when absent
    assert not (tmp_path / "kept.jsonl").exists()
