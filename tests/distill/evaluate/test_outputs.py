"""eval: a benchmark file inside the output folder is never overwritten; duplicate explicit ids; a hub model offline."""

from __future__ import annotations

import json


def test_a_result_file_that_is_a_benchmark_is_refused(tmp_path, distill_cli):
    bench = tmp_path / "aime24.jsonl"
    bench.write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\n")
    code, _, err = distill_cli("eval", "m", "-b", bench, "-o", tmp_path, "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1")
    assert code == 2 and "is also an input" in err and bench.read_text().count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aime24.jsonl"]


def test_duplicate_benchmark_ids_name_both_rows(tmp_path, distill_cli):
    bench = tmp_path / "b.jsonl"
    bench.write_text("".join(json.dumps({"id": "x", "problem": f"{i}+1?", "answer": "2"}) + "\n" for i in range(2)))
    code, _, err = distill_cli("eval", "m", "-b", bench, "--field-id", "id", "-o", tmp_path / "out", "--backend", "openai",
                               "--base-url", "http://127.0.0.1:9/v1")
    assert code == 2 and "duplicate id 'x'" in err and "row 2" in err and "row 1" in err


def test_a_hub_model_while_offline_fails_at_once(tmp_path, distill_cli, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bench = tmp_path / "b.jsonl"
    bench.write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\n")
    code, _, err = distill_cli("eval", "someorg/somemodel", "-b", bench, "-o", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and "offline mode is set" in err, err
    assert not (tmp_path / "out").exists()
