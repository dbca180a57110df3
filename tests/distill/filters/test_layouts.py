"""`filter` and `inspect` on the public layouts as they are: every preset's fixture goes through,
the input's own columns reach kept and rejected outputs (JSONL and Parquet) unchanged, the
majority vote works on mapped rows, datasets (the hub's path) are read, recipes name the preset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from distill.core.data import count_rows, iter_rows, read_records
from distill.core.trace_layout import TraceLayout, read_traces
from distill.filters.config import FilterConfig
from distill.filters.stage import run

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "layouts"
# preset -> ids of the kept records' problems and samples (sample_index), as (problem, index)
KEPT = {
    "openr1": [("What is 7 plus 7?", 0), ("Compute 12 times 3.", 0), ("Compute 12 times 3.", 1)],
    "sharegpt": [("Return your final response within \\boxed{}. What is 7 plus 7?", 0),
                 ("Return your final response within \\boxed{}. Compute 12 times 3.", 0),
                 ("Return your final response within \\boxed{}. What is 9 squared?", 0)],
    "s1k": [("What is 7 plus 7?", 0), ("Compute 12 times 3.", 0)],
    "messages": [("What is 7 plus 7?", 0), ("Compute 12 times 3.", 0), ("What is 9 squared?", 0)],
    "distill": [("What is 7 plus 7?", 0), ("Compute 12 times 3.", 0)],
}


def read(path: Path) -> list:
    return list(read_records(path)) if path.exists() and path.stat().st_size and count_rows(path) else []


def carried_ok(trace, layout: TraceLayout) -> None:
    """Every column the record carries holds the input row's value (its own item of a per-sample list)."""
    source = trace.source or {}
    renamed = {new: old for old, new in source.get("renamed", {}).items()}
    rows = {row_ref: row for row_ref, row in ((where.rsplit(":", 1)[-1], row) for where, row in iter_rows(FIXTURES / f"{layout.preset}.jsonl"))}
    row = rows[source["row"]] if "row" in source else next(r for r in rows.values() if r.get("id", trace.id) == trace.id and r["problem"] == trace.problem)
    for name, value in trace.model_extra.items():
        original = row[renamed.get(name, name)]
        if renamed.get(name, name) in layout.fields.per_sample and isinstance(original, list):
            original = original[trace.sample_index]
        assert value == original, (trace.id, name)


@pytest.mark.parametrize("preset", list(KEPT))
@pytest.mark.parametrize("rejected_format", ["jsonl", "parquet"])
def test_filter_keeps_the_right_samples_and_carries_every_column(tmp_path, preset, rejected_format):
    config = FilterConfig(input=str(FIXTURES / f"{preset}.jsonl"), output=str(tmp_path / "kept.jsonl"), preset=preset,
                          rejected=str(tmp_path / f"rejected.{rejected_format}"), correctness={"no_reference": "keep"})
    report = run(config)
    kept, rejected = read(tmp_path / "kept.jsonl"), read(tmp_path / f"rejected.{rejected_format}")
    assert [(t.problem, t.sample_index) for t in kept] == KEPT[preset]
    assert report["records_in"] == len(kept) + len(rejected) == len(list(read_traces(config.input, config)))
    for trace in kept + rejected:
        carried_ok(trace, config)
    for trace in kept:  # SFT-ready in R1 form, whatever the input's delimiters
        assert trace.messages[1]["content"].startswith("<think>\n") and "</think>\n\n" in trace.messages[1]["content"]
    if preset == "openr1":
        assert {t.id.split("#")[1]: (t.rejected_by, t.model_extra["correctness_math_verify"]) for t in rejected} == {
            "1": ("correctness", False), "2": ("format", False)}


def test_a_rerun_gives_the_same_ids_and_bytes(tmp_path):
    outputs = []
    for attempt in range(2):
        config = FilterConfig(input=str(FIXTURES / "sharegpt.jsonl"), output=str(tmp_path / f"k{attempt}.jsonl"), preset="sharegpt",
                              correctness={"no_reference": "keep"}, workers=attempt + 1)
        run(config)
        outputs.append((tmp_path / f"k{attempt}.jsonl").read_bytes())
    assert outputs[0] == outputs[1]


def test_majority_vote_on_mapped_rows(tmp_path):
    # OpenR1-style rows without an answer: the generations vote (the tally reads the mapped rows too)
    think = "<think>\nSeven plus seven is fourteen, counting up from seven one step at a time to be sure.\n</think>\n\n"
    rows = [{"problem": "What is 7 plus 7?", "generations": [think + "\\boxed{14}", think + "\\boxed{14}", think + "\\boxed{15}"], "label": "x"}]
    source = tmp_path / "noref.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = FilterConfig(input=str(source), output=str(tmp_path / "k.jsonl"), rejected=str(tmp_path / "r.jsonl"), preset="openr1",
                          rules=["format", "correctness"], correctness={"no_reference": "majority"})
    run(config)
    assert [t.sample_index for t in read(tmp_path / "k.jsonl")] == [0, 1]
    (loser,) = read(tmp_path / "r.jsonl")
    assert "majority answer 14 (2 of 3 samples)" in loser.reason and loser.model_extra == {"label": "x"}


def test_dataset_folders_and_parquet_are_mapped_like_jsonl(tmp_path):
    import datasets

    items = [row for _, row in iter_rows(FIXTURES / "openr1.jsonl")]
    datasets.Dataset.from_list(items).save_to_disk(str(tmp_path / "ds"))
    datasets.Dataset.from_list(items).to_parquet(str(tmp_path / "openr1.parquet"))
    outputs = []
    for source in ("ds", "openr1.parquet"):
        config = FilterConfig(input=str(tmp_path / source), output=str(tmp_path / f"{source}.kept.jsonl"), preset="openr1")
        run(config)
        kept = read(tmp_path / f"{source}.kept.jsonl")
        assert [t.sample_index for t in kept] == [0, 0, 1] and kept[0].model_extra["orig_source"] == "olympiads"
        outputs.append([t.model_dump(exclude={"source"}) for t in kept])
    assert outputs[0] == outputs[1]


def test_a_hub_id_is_read_through_the_preset(monkeypatch):
    # No hub here: the datasets call the hub would answer is stood in for by the fixture's rows.
    import datasets

    items = [row for _, row in iter_rows(FIXTURES / "openr1.jsonl")]
    asked = []

    def load_dataset(name, subset=None, *, split, streaming):  # datasets.load_dataset(path, name, ...): a hub subset is its name
        asked.append((name, subset, split, streaming))
        return datasets.Dataset.from_list(items).to_iterable_dataset()

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    read = list(read_traces("hf:open-r1/OpenR1-Math-220k", TraceLayout(preset="openr1")))
    assert asked == [("open-r1/OpenR1-Math-220k", None, "train", True)] and len(read) == 5
    assert read[0].source["input"] == "hf:open-r1/OpenR1-Math-220k" and read[0].model_extra["problem_type"] == "Algebra"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_cli_preset_flags_and_recipe_key(tmp_path):
    kept = tmp_path / "kept.jsonl"
    result = cli("filter", str(FIXTURES / "s1k.jsonl"), "--preset", "s1k", "-o", str(kept))
    assert result.returncode == 0, result.stderr
    assert "filter: 2 of 3 kept" in result.stderr
    shown = cli("inspect", "tests/fixtures/layouts/sharegpt.jsonl", "--preset", "sharegpt", "--sample", "4")
    assert shown.returncode == 0, shown.stderr
    assert "sharegpt.jsonl: 4 records" in shown.stdout and "carried: system=Your role" in shown.stdout
    assert "Reasoning (171 chars)" in shown.stdout and "Final answer" in shown.stdout
    recipe = tmp_path / "r.yaml"
    recipe.write_text("filter:\n  preset: openr1\n  fields:\n    per_sample: [finish_reasons, grade]\n")
    printed = cli("filter", "x.jsonl", "-o", "k.jsonl", "--recipe", str(recipe), "--field-completion", "gens", "--print-config")
    assert printed.returncode == 0, printed.stderr
    assert "preset: openr1" in printed.stdout and "completion: gens" in printed.stdout and "delimiters: r1" in printed.stdout
    assert "- grade" in printed.stdout and "id: uuid" in printed.stdout  # the preset's, under the recipe's, under the flag's
    bad = cli("filter", str(FIXTURES / "sharegpt.jsonl"), "--preset", "sharegtp", "-o", str(kept))
    assert bad.returncode == 2 and "preset" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    wrong = cli("filter", str(FIXTURES / "sharegpt.jsonl"), "-o", str(tmp_path / "k2.jsonl"))  # our layout: a one-line error
    assert wrong.returncode == 2 and "sharegpt.jsonl:1: field 'problem': missing" in wrong.stderr


@pytest.mark.parametrize("preset", list(KEPT))
def test_inspect_reads_every_layout_and_shows_carried_columns(preset):
    import io

    from rich.console import Console

    from distill.filters.inspect import InspectConfig, inspect

    out = io.StringIO()
    config = InspectConfig(file=str(FIXTURES / f"{preset}.jsonl"), preset=preset, sample=10)
    summary = inspect(config, Console(file=out, width=200))
    traces = list(read_traces(config.file, config))
    assert summary["counts"] == {"records": len(traces), "not filtered": len(traces)}
    shown = out.getvalue()
    assert shown.count("Problem") == len(traces) and shown.count("Final answer") >= len(KEPT[preset])
    carried = {name for trace in traces for name in trace.model_extra}
    assert all(f"{name}=" in shown for name in carried)  # every carried column is shown under its (renamed) name
    if preset != "distill":  # public sets' collisions show as orig_NAME, never dropped
        assert ("orig_source=" in shown) == any("source" in row for _, row in iter_rows(config.file))


def test_the_delimiters_are_detected_from_the_data_when_not_given(tmp_path, capfd):
    # A ShareGPT file whose completions use <think> tags (not Sky-T1's markers, the preset's default)
    rows = [json.loads(line) for line in (FIXTURES / "sharegpt.jsonl").read_text().split("\n") if line]
    for row in rows:
        reply = row["conversations"][-1]
        reply["value"] = (reply["value"].replace("<|begin_of_thought|>", "<think>").replace("<|end_of_thought|>", "</think>")
                          .replace("<|begin_of_solution|>", "").replace("<|end_of_solution|>", ""))
    source = tmp_path / "think.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    capfd.readouterr()
    report = run(FilterConfig(input=str(source), output=str(tmp_path / "k.jsonl"), preset="sharegpt", correctness={"no_reference": "keep"}))
    original = run(FilterConfig(input=str(FIXTURES / "sharegpt.jsonl"), output=str(tmp_path / "k0.jsonl"), preset="sharegpt",
                                correctness={"no_reference": "keep"}))
    assert report["kept"] == original["kept"] > 0 and report["rejected_by"] == original["rejected_by"]
    assert f"filter: {source}: the completions close their reasoning with </think>: reading them with --delimiters r1" in capfd.readouterr().err
    given = run(FilterConfig(input=str(source), output=str(tmp_path / "k2.jsonl"), preset="sharegpt", delimiters="sky-t1",
                             correctness={"no_reference": "keep"}))
    assert given["kept"] < report["kept"]  # delimiters the user names are never second-guessed
