"""`distill run` removes only what it wrote (RUN_DIR/.distill-run.json): foreign files are an error unless
--force and are never removed; a recipe's name is a name; -o must be a folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.core.data import write_records
from distill.core.records import Trace


@pytest.fixture
def recipe(tmp_path) -> Path:
    source = tmp_path / "s.jsonl"
    write_records(source, [Trace(id=f"p{i}#0", problem_id=f"p{i}", sample_index=0, problem="What is 1+1?", answer="2",
                                 completion="<think>\none plus one\n</think>\n\n\\boxed{2}") for i in range(4)])
    path = tmp_path / "r.yaml"
    path.write_text(f"name: own\nrun: {{stages: [filter]}}\nfilter: {{input: {source}, rules: [format]}}\n")
    return path


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_stage_folder_the_user_made_is_never_wiped(recipe, tmp_path, distill_cli):
    run = tmp_path / "run"
    (run / "filter").mkdir(parents=True)
    (run / "filter" / "notes.txt").write_text("my notes")
    code, _, err = distill_cli("run", recipe, "-o", run)
    assert code == 2 and "holds files distill did not write (filter)" in err and "--force" in err
    assert tree(run) == {"filter/notes.txt": b"my notes"}
    code, _, err = distill_cli("run", recipe, "-o", run, "--force")
    assert code == 0, err
    assert (run / "filter" / "notes.txt").read_text() == "my notes" and (run / "filter" / "kept.jsonl").exists()
    code, _, err = distill_cli("run", recipe, "-o", run, "--force", "--set", "filter.rules=[format,length]")  # re-run: clears
    assert code == 0, err
    assert (run / "filter" / "notes.txt").read_text() == "my notes"  # ...only what it wrote


def test_files_added_to_a_finished_run_are_foreign(recipe, tmp_path, distill_cli):
    run = tmp_path / "run"
    assert distill_cli("run", recipe, "-o", run)[0] == 0
    manifest = json.loads((run / ".distill-run.json").read_text())
    assert "kept.jsonl" in manifest["stages"]["filter"]["entries"]
    (run / "filter" / "mine.txt").write_text("x")
    (run / "todo.md").write_text("y")
    before = tree(run)
    code, _, err = distill_cli("run", recipe, "-o", run, "--set", "filter.rules=[format,length]")
    assert code == 2 and "filter/mine.txt" in err and "todo.md" in err
    assert tree(run) == before
    assert distill_cli("run", recipe, "-o", run, "--force", "--set", "filter.rules=[format,length]")[0] == 0
    assert (run / "filter" / "mine.txt").read_text() == "x" and (run / "todo.md").read_text() == "y"


def test_an_existing_folder_of_someone_elses_files_is_not_a_run_directory(recipe, tmp_path, distill_cli):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    code, _, err = distill_cli("run", recipe, "-o", home)
    assert code == 2 and "thesis.tex" in err and tree(home) == {"thesis.tex": b"years of work"}


@pytest.mark.parametrize(("name", "message"), [("/some/dir", "must be a name"), ("/", "must be a name"), ("../up", "must be a name")])
def test_a_recipe_name_is_a_name_not_a_path(recipe, tmp_path, distill_cli, monkeypatch, name, message):
    monkeypatch.chdir(tmp_path)
    recipe.write_text(recipe.read_text().replace("name: own", f"name: '{name}'"))
    code, _, err = distill_cli("run", recipe)
    assert code == 2 and message in err and not (tmp_path / "runs").exists()


def test_the_run_directory_must_be_a_folder(recipe, tmp_path, distill_cli):
    existing = tmp_path / "existing_file"
    existing.write_text("keep")
    code, _, err = distill_cli("run", recipe, "-o", existing)
    assert code == 2 and "exists and is not a directory" in err and existing.read_text() == "keep"
    code, _, err = distill_cli("run", recipe, "-o", "/proc/run")
    assert code == 2 and "not a place for outputs" in err
