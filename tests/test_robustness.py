"""Bad input by kind, generated (hypothesis): records, recipes, `--set` values and output paths.

Every example runs the real command in this process (cli.main with sys.argv set) and must keep
the promises: exit 0, 2 (a user's mistake) or 1 (the environment: a server that is not there);
a failure is one line (`error:` / `failed:`) without a traceback and never an internal error;
exit 2 creates or changes no file. The example budget is fixed and derandomized, so the suite is
deterministic and takes seconds; a new flag or recipe key is covered without a new case.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cli

BUDGET = settings(max_examples=20, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
GOOD = {"id": "p0#0", "problem_id": "p0", "sample_index": 0, "problem": "What is 1+1?", "answer": "2",
        "completion": "<think>\nOne plus one is two.\n</think>\n\n\\boxed{2}"}


def run_cli(*args) -> tuple[int, str]:
    err = io.StringIO()
    old = sys.argv
    sys.argv = ["distill", *map(str, args)]
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old
    return code, err.getvalue()


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def check(code: int, err: str, before: dict, after: dict, allowed=(0, 2)) -> None:
    assert code in allowed, (code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    if code != 0:
        lines = [line for line in err.splitlines() if line.startswith(("error:", "failed:", "interrupted:"))]
        assert len(lines) == 1 and err.strip().splitlines()[-1] == lines[0], err
    if code == 2:
        assert after == before, (err, set(after) ^ set(before))


@contextlib.contextmanager
def workdir():
    folder = Path(tempfile.mkdtemp(prefix="distill-robust-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------- records

VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=False), st.text(max_size=20),
                   st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


@st.composite
def bad_line(draw) -> bytes:
    kind = draw(st.sampled_from(["ok", "drop", "retype", "extra-type", "non-object", "truncated", "utf8", "deep", "blank", "dup-id"]))
    row = dict(GOOD, id=f"p{draw(st.integers(0, 3))}#{draw(st.integers(0, 1))}")
    if kind == "drop":
        row.pop(draw(st.sampled_from(sorted(row))))
    elif kind in ("retype", "extra-type"):
        row[draw(st.sampled_from(sorted(GOOD) + ["verdicts", "finish_reason", "teacher", "messages"]))] = draw(VALUES)
    elif kind == "non-object":
        return json.dumps(draw(st.one_of(st.lists(st.integers(), max_size=2), st.text(max_size=5), st.integers()))).encode() + b"\n"
    elif kind == "truncated":
        text = json.dumps(row)
        return text[: draw(st.integers(1, len(text) - 1))].encode() + b"\n"
    elif kind == "utf8":
        return json.dumps(row).encode().replace(b"two", b"tw\xff") + b"\n"
    elif kind == "deep":
        return b"[" * 100000 + b"]" * 100000 + b"\n"
    elif kind == "blank":
        return b"   \n"
    elif kind == "dup-id":
        row["id"] = "p0#0"
    return json.dumps(row).encode() + b"\n"


@BUDGET
@given(lines=st.lists(bad_line(), min_size=0, max_size=5), command=st.sampled_from(["filter", "inspect", "merge", "train-plan"]))
def test_records_by_kind(lines, command):
    with workdir() as folder:
        source = folder / "in.jsonl"
        source.write_bytes(b"".join(lines))
        before = snapshot(folder)
        args = {
            "filter": ["filter", source, "-o", folder / "k.jsonl", "--rejected", folder / "r.jsonl", "--rules", "format,length"],
            "inspect": ["inspect", source],
            "merge": ["merge", source, "-o", folder / "m.jsonl"],
            "train-plan": ["train", "--student", "qwen-1.5b", "--data", source, "--plan"],
        }[command]
        code, err = run_cli(*args)
        check(code, err, before, snapshot(folder))


# ---------------------------------------------------------------------------- recipes and --set values


def base_recipe(folder: Path) -> dict:
    source = folder / "in.jsonl"
    source.write_text(json.dumps(GOOD) + "\n")
    return {"name": "robust", "run": {"stages": ["filter"]}, "filter": {"input": str(source), "rules": ["format"]}}


SECTIONS = ["name", "description", "run", "filter", "generate", "train", "publish", "publish_data", "eval", "quickstart", "compare", "bogus", "Filter"]
YAML_TEXT = st.text(alphabet="abc01[]{}:,&*!-|>'\"#% .\\\n", max_size=25)
TAGS = ["!!python/object/apply:os.system [id]", "!!binary aGVsbG8=", "!!set {a}", "!foo x", "!!python/name:os.system"]


@st.composite
def bad_recipe(draw, folder: Path) -> str:
    doc = base_recipe(folder)
    kind = draw(st.sampled_from(["ok", "section-type", "unknown-key", "unknown-section", "tag", "bomb", "deep", "dup", "syntax",
                                 "name", "value"]))
    if kind == "section-type":
        doc[draw(st.sampled_from(SECTIONS[:6]))] = draw(VALUES)
    elif kind == "unknown-key":
        doc[draw(st.sampled_from(["run", "filter"]))][draw(st.text(alphabet="abcxyz_", min_size=1, max_size=8))] = 1
    elif kind == "unknown-section":
        doc[draw(st.text(alphabet="abcxyz_", min_size=1, max_size=8))] = {}
    elif kind == "value":
        doc["filter"][draw(st.sampled_from(["rules", "workers", "length", "delimiters", "output", "input", "all_verdicts"]))] = draw(VALUES)
    elif kind == "name":
        doc["name"] = draw(st.sampled_from(["/", "/etc", "..", "../x", "a/b", ".", "~", "runs/../..", ""]))
    text = yaml.safe_dump(doc)
    if kind == "tag":
        text += f"description: {draw(st.sampled_from(TAGS))}\n"
    elif kind == "bomb":
        levels = draw(st.integers(2, 9))
        text += "generate:\n  extra_body:\n    a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        text += "".join(f"    a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, levels + 1))
    elif kind == "deep":
        depth = draw(st.integers(60, 20000))
        text += "description: " + "[" * depth + "]" * depth + "\n"
    elif kind == "dup":
        text += f"{draw(st.sampled_from(['filter', 'run', 'name']))}: {{}}\n"
    elif kind == "syntax":
        text += draw(YAML_TEXT)
    return text


@BUDGET
@given(data=st.data())
def test_recipes_by_kind(data):
    with workdir() as folder:
        recipe = folder / "r.yaml"
        recipe.write_text(data.draw(bad_recipe(folder)))
        before = snapshot(folder)
        code, err = run_cli("run", recipe, "-o", folder / "run")
        check(code, err, before, snapshot(folder))


@BUDGET
@given(key=st.lists(st.sampled_from(SECTIONS + ["rules", "workers", "length", "max", "input", "stages", "x"]), min_size=1, max_size=3),
       value=st.one_of(YAML_TEXT, st.sampled_from(TAGS), st.sampled_from(["[format", "{a: &a [1], b: [*a]}", "[[[[[[", "null", "-1"])),
       separator=st.sampled_from(["=", "", "=="]))
def test_set_values_by_kind(key, value, separator):
    with workdir() as folder:
        recipe = folder / "r.yaml"
        recipe.write_text(yaml.safe_dump(base_recipe(folder)))
        before = snapshot(folder)
        code, err = run_cli("run", recipe, "-o", folder / "run", "--set", ".".join(key) + separator + value)
        check(code, err, before, snapshot(folder))


# ---------------------------------------------------------------------------- output paths

PATH_KINDS = ["fresh", "input", "dotdot", "missing-dotdot", "symlink", "hardlink", "directory", "proc", "sys", "dev", "under-a-file",
              "other-output", "root"]


def make_path(kind: str, folder: Path, source: Path, other: Path) -> str:
    if kind == "symlink":
        (folder / "link.jsonl").symlink_to(source)
    if kind == "hardlink":
        os.link(source, folder / "hard.jsonl")
    if kind == "directory":
        (folder / "dir.jsonl").mkdir()
    return {
        "fresh": str(folder / "new" / "out.jsonl"), "input": str(source), "dotdot": f"{folder}/x/../{source.name}",
        "missing-dotdot": f"{folder}/nosuch/../{source.name}", "symlink": str(folder / "link.jsonl"),
        "hardlink": str(folder / "hard.jsonl"), "directory": str(folder / "dir.jsonl"), "proc": "/proc/distill.jsonl",
        "sys": "/sys/distill.jsonl", "dev": "/dev/distill.jsonl", "under-a-file": f"{source}/out.jsonl", "other-output": str(other),
        "root": "/",
    }[kind]


@BUDGET
@given(kind=st.sampled_from(PATH_KINDS), option=st.sampled_from(["-o", "--rejected", "--report"]),
       command=st.sampled_from(["filter", "generate", "merge", "train", "publish", "publish-data", "eval", "run"]))
def test_output_paths_by_kind(kind, option, command):
    with workdir() as folder:
        (folder / "x").mkdir()
        source = folder / "in.jsonl"
        source.write_text(json.dumps(GOOD) + "\n")
        other = folder / "other.jsonl"
        path = make_path(kind, folder, source, other)
        unreachable = ["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--max-retries", "0"]
        args = {
            "filter": ["filter", source, "-o", other, "--rules", "format"] + ([option, path] if option != "-o" else []),
            "generate": ["generate", source, "-o", path, "--teacher", "m", *unreachable],
            "merge": ["merge", source, "-o", path],
            "train": ["train", "--student", "qwen-1.5b", "--data", source, "-o", path, "--base-model", folder / "nosuch"],
            "publish": ["publish", folder, "-o", path, "--overwrite"],
            "publish-data": ["publish-data", source, "-o", path, "--overwrite"],
            "eval": ["eval", "m", "-b", source, "-o", path, *unreachable],
            "run": ["run", folder / "nosuch.yaml", "-o", path],
        }[command]
        if command == "filter" and option == "-o":
            args[args.index(other)] = path
        before = snapshot(folder)
        code, err = run_cli(*args)
        check(code, err, before, snapshot(folder), allowed=(0, 1, 2))
        folder_output = command == "publish-data" and kind == "directory"  # an empty folder is a place for a dataset
        if kind not in ("fresh", "other-output") and not folder_output:
            assert code == 2, (kind, command, err)
