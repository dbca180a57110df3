"""train and publish: inputs checked first (local paths are 'not found', hub ids fail fast offline), and
outputs that would destroy something are refused before anything loads."""

from __future__ import annotations

import json
import time

import pytest


@pytest.fixture
def kept(tmp_path):
    path = tmp_path / "kept.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}) + "\n")
    return path


def test_a_missing_local_data_file_is_not_found_not_a_hub_error(tmp_path, distill_cli):
    code, _, err = distill_cli("train", "--student", "qwen-1.5b", "--data", "nosuch.jsonl", "-o", tmp_path / "run")
    assert code == 2 and err == "error: nosuch.jsonl: no such file or directory\n"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("offline", ["1", ""])
def test_a_hub_base_model_fails_fast_without_the_hub(tmp_path, kept, distill_cli, monkeypatch, offline):
    monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", offline)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: the hub is unreachable
    monkeypatch.setattr("distill.core.hub._why_offline", [])
    from distill.core.hub import reachable

    reachable.cache_clear()
    started = time.monotonic()
    code, _, err = distill_cli("train", "--student", "qwen-1.5b", "--data", kept, "-o", tmp_path / "run")
    assert code == 2 and err.count("\n") == 1 and "not in the hub cache" in err, err
    assert time.monotonic() - started < 30 and not (tmp_path / "run").exists()


def test_a_final_folder_not_written_by_training_is_never_replaced(tmp_path, kept, distill_cli):
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    (run / "final" / "mine.bin").write_text("x")
    (tmp_path / "base").mkdir()
    code, _, err = distill_cli("train", "--student", "qwen-1.5b", "--data", kept, "-o", run, "--base-model", tmp_path / "base")
    assert code == 2 and "final/ folder that no finished training run wrote" in err


@pytest.mark.parametrize(("output", "overwrite", "message"), [
    ("/", True, "not a place for outputs"),
    ("{run}", True, "is also an input"),
    ("{tmp}", True, "holds an input"),
    ("{foreign}", True, "not a published model"),
])
def test_publish_never_replaces_what_it_did_not_publish(tmp_path, distill_cli, output, overwrite, message):
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    (run / "train.json").write_text("{}")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    target = output.format(run=run, tmp=tmp_path, foreign=foreign)
    code, _, err = distill_cli("publish", run, "-o", target, *(["--overwrite"] if overwrite else []))
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert (foreign / "thesis.tex").read_text() == "years of work" and (run / "final").is_dir()


@pytest.mark.parametrize("inside", ["final", "checkpoints/checkpoint-2", "."])
@pytest.mark.parametrize("card_only", [False, True])
def test_publish_overwrite_into_the_run_it_reads_is_refused_and_leaves_it_unchanged(tmp_path, distill_cli, inside, card_only):
    run = tmp_path / "run"
    for folder in (run / "final", run / "checkpoints" / "checkpoint-2"):
        folder.mkdir(parents=True)
        for name in ("config.json", "adapter_config.json", "optimizer.pt", "README.md"):
            (folder / name).write_text(f"{folder.name} {name}")
    (run / "train.json").write_text("{}")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    code, _, err = distill_cli("publish", run, "-o", run / inside, "--overwrite", *(["--card-only"] if card_only else []))
    assert code == 2 and err.count("\n") == 1, err
    assert "inside the run it publishes" in err or "is also an input" in err or "inside an input folder" in err, err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_publish_overwrite_replaces_only_a_folder_publish_wrote(tmp_path, distill_cli):
    model = tmp_path / "someone-elses-model"
    model.mkdir()
    (model / "config.json").write_text("{}")  # a model folder, but not one publish wrote
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    (run / "train.json").write_text("{}")
    code, _, err = distill_cli("publish", run, "-o", model, "--overwrite")
    assert code == 2 and "no .distill-published, which publish writes" in err and (model / "config.json").exists(), err


def test_publish_a_run_without_a_model(tmp_path, distill_cli):
    (tmp_path / "run").mkdir()
    code, _, err = distill_cli("publish", tmp_path / "run", "-o", tmp_path / "out")
    assert code == 2 and "not a finished training run (no final/ folder)" in err and not (tmp_path / "out").exists()


def test_duplicate_ids_in_training_data_name_both_lines(tmp_path):
    from distill.core.errors import InputError
    from students.dataset import load_conversations

    row = {"id": "p1#0", "problem_id": "p1", "sample_index": 0, "problem": "q", "completion": "<think>\nx\n</think>\n\ny"}
    path = tmp_path / "kept.jsonl"
    path.write_text("".join(json.dumps(dict(row, id=i)) + "\n" for i in ("p0#0", "p1#0", "p1#0")))
    with pytest.raises(InputError, match=r"kept\.jsonl:3: field 'id': duplicate id 'p1#0' \(also at .*kept\.jsonl:2\)"):
        load_conversations(path)
