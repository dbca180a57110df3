"""The `distill` entry point: every stage is listed, start-up stays light, user errors are one line and exit 2."""

from __future__ import annotations

import subprocess
import sys

COMMANDS = ["generate", "merge", "filter", "inspect", "train", "doctor", "students", "publish", "eval", "eval-table", "run"]


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


def test_options_that_would_do_nothing_or_nonsense_are_errors(tmp_path, distill_cli):
    traces = tmp_path / "t.jsonl"
    traces.write_text('{"id": "a#0", "problem_id": "a", "sample_index": 0, "problem": "p", "completion": "c"}\n')
    for args, message in [
        (["filter", traces, "-o", tmp_path / "k.jsonl", "--rules", ","], "field '--rules': empty list"),
        (["inspect", traces, "--sample", "-1"], "field 'sample'"),
        (["inspect", traces, "--rejected-by", "nonsense"], "unknown rule 'nonsense'"),
        (["nosuchcommand"], "No such command"),
        (["filter", traces, "--nosuch-option"], "No such option"),
    ]:
        code, _, err = distill_cli(*args)
        assert code == 2 and err.count("\n") == 1 and message in err, (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]
