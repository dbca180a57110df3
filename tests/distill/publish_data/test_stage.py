"""`distill publish-data`: kept traces (judged by the real filter) published as a dataset folder that
`datasets` loads, with a card the hub parses, the secret rules of model publishing, and a push
through the same recording stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.core.data import read_records, write_records
from distill.core.errors import InputError
from distill.core.records import Trace
from distill.filters.config import FilterConfig
from distill.filters.stage import run as filter_run
from distill.publish_data.rows import COLUMNS
from distill.publish_data.stage import PublishDataConfig, run
from distill.quickstart.task import make_examples

TEACHER = {"model": "deepseek-ai/DeepSeek-R1", "backend": "openai", "temperature": 0.6, "top_p": 0.95,
           "max_tokens": 32768, "seed": None, "think_prefill": "<think>\n", "base_url": "http://10.0.0.7:8000/v1"}


@pytest.fixture(scope="module")
def filtered(tmp_path_factory) -> dict[str, Path]:
    """Traces of 30 problems x 2 samples (some wrong, some mixing Chinese), prompts from a 'hub snapshot'
    whose card says MIT, judged by the real filter with decontamination against a benchmark file."""
    root = tmp_path_factory.mktemp("filtered")
    snapshot = root / "snapshot"
    (snapshot / "data").mkdir(parents=True)
    (snapshot / "README.md").write_text("---\nlicense: mit\npretty_name: arithmetic\n---\n# Arithmetic prompts\n")
    prompts = snapshot / "data" / "train.jsonl"
    examples = make_examples(30, seed=5, wrong_rate=0.2, mixed_rate=0.2)
    write_records(prompts, [e.problem for e in examples], model=type(examples[0].problem))
    traces = [Trace(**{**e.problem.model_dump(), "source": {"input": str(prompts), "row": str(i)}},
                    id=f"{e.problem.problem_id}#{k}", sample_index=k, completion="<think>\n" + e.completion,
                    finish_reason="stop", completion_tokens=20 + len(e.completion) // 3 + k, teacher=TEACHER)
              for i, e in enumerate(examples) for k in range(2)]
    write_records(root / "traces.jsonl", traces)
    benchmark = root / "aime24.jsonl"
    benchmark.write_text(json.dumps({"problem": examples[0].problem.problem, "answer": "0"}) + "\n")
    config = FilterConfig(input=str(root / "traces.jsonl"), output=str(root / "kept.jsonl"), report=str(root / "report.json"),
                          rules=["format", "decontaminate", "language", "correctness"], workers=1,
                          decontaminate={"benchmarks": [str(benchmark)], "ngram": 3})
    filter_run(config)
    return {"kept": root / "kept.jsonl", "report": root / "report.json", "traces": root / "traces.jsonl"}


@pytest.fixture(scope="module")
def published(filtered, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("published") / "r1-traces"
    run(PublishDataConfig(input=str(filtered["kept"]), output=out))  # the report beside the input is found
    return out


def test_folder_loads_with_datasets(published, filtered, tmp_path):
    import datasets

    kept = list(read_records(filtered["kept"]))
    # A fresh cache: datasets may serve an earlier folder of the same name from ~/.cache.
    loaded = datasets.load_dataset(str(published), cache_dir=str(tmp_path / "cache"))
    assert list(loaded) == ["train"]
    train = loaded["train"]
    assert train.num_rows == len(kept) > 0
    assert train.column_names == [name for name, _ in COLUMNS]
    first = train[0]
    assert first["messages"] == kept[0].messages and first["messages"][1]["content"].startswith("<think>\n")
    assert first["id"] == kept[0].id and first["teacher"] == "deepseek-ai/DeepSeek-R1" and first["language"] == "en"
    # The card's configs name the shards: the picture is never data.
    builder = datasets.load_dataset_builder(str(published))
    files = [Path(f).relative_to(published).as_posix() for f in builder.config.data_files["train"]]
    assert files == ["data/train-00000-of-00001.parquet"]
    assert (published / "images" / "completion_lengths.png").stat().st_size > 1000


def test_test_split_holds_whole_problems_and_shards_roll_over(filtered, tmp_path):
    import datasets

    out = tmp_path / "split"
    summary = run(PublishDataConfig(input=str(filtered["kept"]), output=out, test_fraction=0.3, seed=1, max_shard_size="2KB"))
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert sorted(loaded) == ["test", "train"]
    assert {s: loaded[s].num_rows for s in loaded} == summary["rows"]
    assert sum(summary["rows"].values()) == len(list(read_records(filtered["kept"])))
    assert not set(loaded["train"]["problem_id"]) & set(loaded["test"]["problem_id"])
    shards = sorted(p.name for p in (out / "data").iterdir())
    assert len(shards) > 2 and all(name.endswith(f"-of-{sum(n.startswith(name.split('-')[0]) for n in shards):05d}.parquet")
                                   for name in shards)


def test_card_parses_as_hub_dataset_card_and_states_the_run(published, filtered):
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(published / "README.md", repo_type="dataset")
    data = card.data.to_dict()
    report = json.loads(filtered["report"].read_text())
    assert data["license"] == "mit"  # from the prompts' dataset card
    assert data["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}]
    assert data["language"] == ["en"] and data["task_categories"] == ["text-generation"] and data["size_categories"] == ["n<1K"]
    text = card.text
    assert "| deepseek-ai/DeepSeek-R1 | openai | 0.6 | 0.95 | 32768 |" in text  # teacher and sampling
    assert "10.0.0.7" not in text  # the endpoint's address is not published
    for rule in ("format", "decontaminate", "language", "correctness"):
        assert f"| `{rule}` | {report['rejected_by'][rule]} |" in text
    assert report["rejected_by"]["decontaminate"] > 0 and "3-gram with a problem of `aime24.jsonl`" in text  # what it was decontaminated against
    assert f"{report['kept']} of {report['records_in']} teacher samples kept" in text
    assert "| en |" in text and "![completion lengths](images/completion_lengths.png)" in text
    assert str(filtered["kept"].parent) not in text  # no local paths


def test_license_from_flag_else_unknown(filtered, tmp_path):
    rows = [json.loads(line) for line in filtered["kept"].read_text().split("\n") if line]
    plain = tmp_path / "kept.jsonl"
    plain.write_text("".join(json.dumps({k: v for k, v in row.items() if k != "source"}) + "\n" for row in rows))
    assert run(PublishDataConfig(input=str(plain), output=tmp_path / "a", license="cc-by-4.0"))["license"] == "cc-by-4.0"
    assert run(PublishDataConfig(input=str(plain), output=tmp_path / "b"))["license"] == "unknown"
    assert "No filter report was given" in (tmp_path / "b" / "README.md").read_text()  # no report beside this file


def test_token_in_environment_never_reaches_the_folder(filtered, tmp_path, monkeypatch):
    token = "hf_SeCrEtToKeN1234567890abcdef"
    monkeypatch.setenv("HF_TOKEN", token)
    out = tmp_path / "named"
    run(PublishDataConfig(input=str(filtered["kept"]), output=out, dataset_name=f"traces {token}"))
    assert "<redacted>" in (out / "README.md").read_text()
    for path in out.rglob("*"):
        assert path.is_dir() or token.encode() not in path.read_bytes()
    # A record holding the token: refused, naming the record (a byte scan of compressed Parquet could miss
    # it), and nothing written.
    rows = filtered["kept"].read_text().splitlines()
    leaky = tmp_path / "leaky.jsonl"
    row = json.loads(rows[0])
    row["messages"][1]["content"] += f" my key is {token}"
    leaky.write_text("\n".join([*rows[1:], json.dumps(row)]) + "\n")
    with pytest.raises(InputError, match=f"{leaky}:{len(rows)}: field 'messages': holds the value of a token from the environment"):
        run(PublishDataConfig(input=str(leaky), output=tmp_path / "leak"))
    assert not (tmp_path / "leak").exists() and not list(tmp_path.glob(".leak*"))


def test_push_goes_through_the_recording_stand_in(filtered, tmp_path, monkeypatch, hub_api):
    monkeypatch.setenv("HF_TOKEN", "hf_AnotherSeCrEt0987654321")
    out = tmp_path / "pushed"
    summary = run(PublishDataConfig(input=str(filtered["kept"]), output=out, push="me/r1-traces", private=True), api=hub_api)
    assert [call[0] for call in hub_api.calls] == ["create_repo", "upload_folder"]
    assert hub_api.calls[0][1] == hub_api.calls[1][1] == "me/r1-traces"
    assert hub_api.calls[0][2]["private"] is True
    assert hub_api.calls[0][2]["repo_type"] == hub_api.calls[1][2]["repo_type"] == "dataset"
    uploaded = hub_api.calls[1][2]["files"]
    assert sorted(uploaded) == ["README.md", "data/train-00000-of-00001.parquet", "images/completion_lengths.png"]
    assert all(b"hf_AnotherSeCrEt0987654321" not in data for data in uploaded.values())
    assert summary["url"].endswith("datasets/me/r1-traces")
    assert 'load_dataset("me/r1-traces", split="train")' in uploaded["README.md"].decode()


def test_refusals_leave_everything_as_it_was(filtered, tmp_path):
    rejected = tmp_path / "rejected.jsonl"
    row = json.loads(filtered["kept"].read_text().split("\n")[:-1][0])
    rejected.write_text(json.dumps({**row, "rejected_by": "language"}) + "\n")
    with pytest.raises(InputError, match="rejected record"):
        run(PublishDataConfig(input=str(rejected), output=tmp_path / "x"))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    for overwrite in (False, True):  # publish-data replaces only its own folders
        with pytest.raises(InputError):
            run(PublishDataConfig(input=str(filtered["kept"]), output=mine, overwrite=overwrite))
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and not (tmp_path / "x").exists()
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(row) + "\n")
    with pytest.raises(InputError, match="report counts"):  # the report of another file
        run(PublishDataConfig(input=str(one), output=tmp_path / "y", filter_report=filtered["report"]))
    assert not (tmp_path / "y").exists()


def test_overwrite_replaces_a_published_folder(filtered, tmp_path):
    out = tmp_path / "again"
    run(PublishDataConfig(input=str(filtered["kept"]), output=out, test_fraction=0.3))
    with pytest.raises(InputError, match="not empty"):
        run(PublishDataConfig(input=str(filtered["kept"]), output=out))
    run(PublishDataConfig(input=str(filtered["kept"]), output=out, overwrite=True))
    assert sorted(p.name for p in (out / "data").iterdir()) == ["train-00000-of-00001.parquet"]


def test_cli_one_line_errors_and_summary(filtered, tmp_path, distill_cli):
    code, out, err = distill_cli("publish-data", filtered["kept"], "-o", tmp_path / "cli", "--test-fraction", "0.2")
    assert code == 0 and out.startswith("published train ") and "license mit" in out
    code, out, err = distill_cli("publish-data", tmp_path / "nope.jsonl", "-o", tmp_path / "cli2")
    assert code == 2 and err.strip().count("\n") == 0 and "no such file" in err
    code, out, err = distill_cli("publish-data", filtered["kept"], "-o", tmp_path / "cli3", "--max-shard-size", "huge")
    assert code == 2 and "max_shard_size" in err and not (tmp_path / "cli3").exists()


def test_a_recipe_publishes_the_kept_data_as_a_stage(filtered, tmp_path):
    import yaml

    from distill.pipeline.run import execute, plan

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "data", "run": {"stages": ["filter", "publish-data"]},
        "filter": {"input": str(filtered["traces"]), "rules": ["format", "language", "correctness"], "workers": 1},
        "publish_data": {"license": "apache-2.0", "test_fraction": 0.2},
    }))
    results = execute(*plan(recipe, tmp_path / "run", None, None, None), recipe.read_text())
    dataset = tmp_path / "run" / "publish-data" / "dataset"
    report = json.loads((tmp_path / "run" / "filter" / "report.json").read_text())
    assert sum(results["publish-data"]["rows"].values()) == report["kept"]  # wired: the filter's kept file and report
    assert f"{report['kept']} of {report['records_in']} teacher samples kept" in (dataset / "README.md").read_text()
    again = execute(*plan(recipe, tmp_path / "run", None, None, ["publish_data.test_fraction=0"]), recipe.read_text())
    assert again["filter"].get("skipped") and list(again["publish-data"]["rows"]) == ["train"]  # replaced its own folder


def test_a_republished_folder_is_not_read_from_the_cache_of_the_earlier_one(filtered, tmp_path):
    import datasets

    rows = filtered["kept"].read_text().splitlines()
    fewer = tmp_path / "fewer.jsonl"
    fewer.write_text("\n".join(rows[:5]) + "\n")
    out, cache = tmp_path / "same-name", str(tmp_path / "cache")
    run(PublishDataConfig(input=str(filtered["kept"]), output=out))
    assert datasets.load_dataset(str(out), cache_dir=cache)["train"].num_rows == len(rows)
    run(PublishDataConfig(input=str(fewer), output=out, overwrite=True))
    assert datasets.load_dataset(str(out), cache_dir=cache)["train"].num_rows == 5


def test_distill_reads_the_published_folder_back(published, filtered):
    from students.dataset import load_conversations

    kept = list(read_records(filtered["kept"]))
    assert load_conversations(published) == [trace.messages for trace in kept]  # `distill train --data FOLDER`


def _rows_of(filtered, problems: int) -> list[dict]:
    rows = [json.loads(line) for line in filtered["kept"].read_text().split("\n") if line]
    wanted = list(dict.fromkeys(row["problem_id"] for row in rows))[:problems]
    return [row for row in rows if row["problem_id"] in wanted]


@pytest.mark.parametrize("shape", ["hf_" + "aB3" * 11, "sk-proj-" + "x7Y" * 9, "Bearer " + "eyJhbGciOi.J9" * 3,
                                   "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----"])
def test_a_token_shaped_string_in_a_row_is_refused_with_exit_2(filtered, tmp_path, distill_cli, shape):
    rows = _rows_of(filtered, 3)
    rows[1]["problem"] += f" (my key: {shape})"
    leaky = tmp_path / "leaky.jsonl"
    leaky.write_text("".join(json.dumps(row) + "\n" for row in rows))
    code, out, err = distill_cli("publish-data", leaky, "-o", tmp_path / "out")
    line = err.strip().splitlines()[-1]
    assert code == 2 and line.startswith(f"error: {leaky}:2: field 'problem': holds ") and "--allow-token-shapes" in line, err
    assert shape not in err + out and not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    code, out, err = distill_cli("publish-data", leaky, "-o", tmp_path / "out", "--allow-token-shapes")
    assert code == 0 and (tmp_path / "out" / "README.md").is_file(), err


def test_the_test_split_holds_the_requested_count_of_problems(filtered, tmp_path, capfd):
    eight = tmp_path / "eight.jsonl"
    eight.write_text("".join(json.dumps(row) + "\n" for row in _rows_of(filtered, 8)))
    for seed in range(4):
        summary = run(PublishDataConfig(input=str(eight), output=tmp_path / f"q{seed}", test_fraction=0.25, seed=seed))
        assert summary["problems"]["test"] == 2 and summary["problems"]["train"] == 6
        assert summary["test_split"] == {"requested": 0.25, "realised": 0.25, "test_problems": 2, "problems": 8}
    capfd.readouterr()
    summary = run(PublishDataConfig(input=str(eight), output=tmp_path / "tiny", test_fraction=0.05))
    assert summary["problems"]["test"] == 1  # at least one problem when the fraction is above 0
    assert "warning: 8 problem(s) are too few for --test-fraction 0.05: holding out 1 (12%)" in capfd.readouterr().err
    with pytest.raises(InputError, match="would hold out every one"):
        run(PublishDataConfig(input=str(tmp_path / "q0" / "../eight.jsonl"), output=tmp_path / "all", test_fraction=0.95))
