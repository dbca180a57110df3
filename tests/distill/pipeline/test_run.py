"""`distill run` mechanics with real stages (filter, train, publish on a tiny model): chaining,
fingerprints and skipping, --from/--until, --set, per-stage logs, failures that keep earlier
outputs and say how to continue, bad recipes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from distill.core.data import write_records
from distill.core.errors import InputError
from distill.core.records import Trace
from distill.pipeline.run import execute, plan
from distill.quickstart.task import make_examples


@pytest.fixture(scope="module")
def traces(tmp_path_factory) -> Path:
    """Synthetic traces: some wrong, some mixing Chinese into the reasoning."""
    examples = make_examples(40, seed=3, wrong_rate=0.3, mixed_rate=0.3)
    path = tmp_path_factory.mktemp("data") / "traces.jsonl"
    write_records(path, [Trace(**e.problem.model_dump(), id=f"{e.problem.problem_id}#0", sample_index=0,
                               completion="<think>\n" + e.completion) for e in examples])
    return path


def write_recipe(path: Path, traces: Path, base: Path, stages=("filter", "train", "publish"), **changes) -> Path:
    doc = {
        "name": "mechanics",
        "run": {"stages": list(stages), "torch_threads": 1},
        "filter": {"input": str(traces), "rules": ["format", "language", "correctness"], "workers": 1},
        "train": {"student": "qwen-1.5b", "base_model": str(base), "method": "full", "max_steps": 2, "max_seq_length": 256,
                  "batch_size": 4, "grad_accum": 1, "packing": False, "gradient_checkpointing": False,
                  "eval_fraction": 0, "save_steps": 1000, "logging_steps": 1},
        "publish": {"merge": False},
    }
    for key, value in changes.items():
        section, name = key.split("__")
        doc[section][name] = value
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def run(recipe: Path, run_dir: Path, **kwargs) -> dict:
    ctx, planned = plan(recipe, run_dir, kwargs.pop("start", None), kwargs.pop("until", None), kwargs.pop("sets", None))
    return execute(ctx, planned, recipe.read_text())


@pytest.mark.slow
def test_pipeline_chains_skips_and_redoes(traces, tiny_qwen, tmp_path):
    recipe, out = write_recipe(tmp_path / "r.yaml", traces, tiny_qwen), tmp_path / "run"

    first = run(recipe, out)
    assert list(first) == ["filter", "train", "publish"] and not any(r.get("skipped") for r in first.values())
    assert (out / "filter" / "kept.jsonl").exists() and (out / "filter" / "report.json").exists()
    assert (out / "train" / "final").is_dir() and (out / "train" / "train.json").exists()
    assert (out / "publish" / "model" / "config.json").exists()
    assert (out / "recipe.yaml").read_text() == recipe.read_text()
    for stage in first:
        state = json.loads((out / stage / "stage.json").read_text())
        assert state["status"] == "complete" and len(state["fingerprint"]) == 16
        assert (out / stage / "config.yaml").exists() and (out / stage / "log.txt").exists()
    assert "kept" in (out / "filter" / "stage.json").read_text()
    # The filter really judged: the wrong and the mixed traces are rejected.
    report = json.loads((out / "filter" / "report.json").read_text())
    assert 0 < report["kept"] < report["records_in"] == 40
    trained = (out / "train" / "train.json").stat().st_mtime_ns

    # Unchanged: everything is skipped, nothing rewritten.
    again = run(recipe, out)
    assert all(r.get("skipped") for r in again.values())
    assert (out / "train" / "train.json").stat().st_mtime_ns == trained

    # A train setting changed: filter is skipped, train and (through the chain) publish re-run.
    changed = run(recipe, out, sets=["train.learning_rate=1e-4"])
    assert changed["filter"].get("skipped") and not changed["train"].get("skipped") and not changed["publish"].get("skipped")
    assert json.loads((out / "train" / "config.yaml").read_text().split("learning_rate: ")[1].split("\n")[0]) == 1e-4

    # --from redoes a stage and what follows, --until stops early.
    redo = run(recipe, out, start="publish", sets=["train.learning_rate=1e-4"])
    assert redo["filter"].get("skipped") and redo["train"].get("skipped") and not redo["publish"].get("skipped")
    until = run(recipe, out, until="filter", start="filter", sets=["train.learning_rate=1e-4"])
    assert list(until) == ["filter"] and not until["filter"].get("skipped")

    # An input file that changes invalidates the stage reading it, and everything after it.
    _, planned = plan(recipe, out, None, None, ["train.learning_rate=1e-4"])
    # Fingerprints are of configuration and inputs: a redone filter with the same inputs leaves train valid.
    assert [p.state for p in planned] == ["done", "done", "done"]
    # A stage whose record is gone runs again, and so does every stage that reads its outputs.
    (out / "filter" / "stage.json").unlink()
    _, planned = plan(recipe, out, None, None, ["train.learning_rate=1e-4"])
    assert [p.state for p in planned] == ["new", "stale", "stale"]
    traces.write_text(traces.read_text() + traces.read_text().splitlines()[0].replace("#0", "#1") + "\n")
    _, planned = plan(recipe, out, None, None, ["train.learning_rate=1e-4"])
    assert [p.state for p in planned] == ["new", "changed", "changed"]


def test_failed_stage_keeps_earlier_outputs_and_says_how_to_continue(traces, tmp_path):
    (tmp_path / "not-a-model").mkdir()  # exists (so the run starts), but train cannot load it
    recipe = write_recipe(tmp_path / "r.yaml", traces, tmp_path / "not-a-model", stages=("filter", "train"))
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", "from cli import main; main()", "run", str(recipe), "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode in (1, 2), done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "stage 'train' failed" in last and f"distill run {recipe} -o {out}" in last
    assert json.loads((out / "filter" / "stage.json").read_text())["status"] == "complete"
    assert (out / "filter" / "kept.jsonl").exists()
    assert not (out / "train" / "stage.json").exists()
    ctx, planned = plan(recipe, out)
    assert [p.state for p in planned] == ["done", "new"]  # a re-run continues at train


def test_stage_log_captures_python_and_child_process_output(tmp_path, capfd):
    from distill.pipeline.log import stage_log

    with stage_log(tmp_path / "log.txt"):
        print("from python")
        print("\x1b[1mbold\x1b[0m from python's stderr", file=sys.stderr)
        subprocess.run(["echo", "from a child process"], check=True)
    text = (tmp_path / "log.txt").read_text()
    assert "from python\n" in text and "bold from python's stderr" in text and "from a child process" in text
    shown = capfd.readouterr()
    assert "from a child process" in shown.out + shown.err  # the terminal still sees it


THIRD_PARTY = (
    "INFO 12-07 18:00:01 [core.py:71] Initializing a V1 LLM engine with config: model='tiny'\n"
    "(EngineCore_DP0 pid=4242) WARNING 12-07 18:00:02 [cpu.py:12] Pin memory is not supported on CPU.\n"
    "/x/site-packages/torch/utils.py:12: FutureWarning: `torch.x` is deprecated.\n  warnings.warn(\n"
    "Automatic NUMA binding is not supported on this machine\n"
    "Writing model shards:  50%|█████     | 1/2 [00:01<00:01,  1.0it/s]\rWriting model shards: 100%|██████████| 2/2 [00:02<00:00,  1.0it/s]\n"
)


@pytest.mark.parametrize("verbose", [False, True])
def test_third_party_output_stays_in_the_log_unless_verbose(tmp_path, capfd, monkeypatch, verbose):
    from distill.pipeline.log import stage_log

    monkeypatch.setenv("DISTILL_VERBOSE", "1" if verbose else "0")
    with stage_log(tmp_path / "log.txt"):
        print("== filter -> runs/x/filter", flush=True)
        subprocess.run(["printf", "%s", THIRD_PARTY], check=True)  # from a child process, as vLLM's engine core writes
        print("ERROR 12-07 18:00:03 [core.py:9] EngineCore failed", file=sys.stderr, flush=True)
        print("filter: 3 of 4 kept", file=sys.stderr, flush=True)
    log = (tmp_path / "log.txt").read_text()
    assert all(line.split("\r")[-1] in log for line in THIRD_PARTY.splitlines())  # everything is in the log
    shown = capfd.readouterr()
    terminal = shown.out + shown.err
    assert "== filter -> runs/x/filter" in terminal and "filter: 3 of 4 kept" in terminal and "EngineCore failed" in terminal
    noise = ("Initializing a V1 LLM engine", "Pin memory", "FutureWarning", "warnings.warn(", "NUMA", "Writing model shards")
    assert [word for word in noise if word in terminal] == (list(noise) if verbose else [])


def test_dry_run_and_print_config_write_nothing(traces, tmp_path):
    recipe, out = write_recipe(tmp_path / "r.yaml", traces, tmp_path / "base"), tmp_path / "run"
    base = [sys.executable, "-c", "from cli import main; main()", "run", str(recipe), "-o", str(out)]
    dry = subprocess.run(base + ["--dry-run"], capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "settings valid for 3 stage(s)" in dry.stdout and "base, which is not found yet" in dry.stdout
    printed = subprocess.run(base + ["--print-config", "--set", "train.epochs=2"], capture_output=True, text=True, timeout=120)
    doc = yaml.safe_load(printed.stdout)
    assert doc["train"]["epochs"] == 2 and doc["train"]["data"] == f"{out.resolve()}/filter/kept.jsonl"
    assert not out.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"run": {"stages": ["filter", "trian"]}}, "field 'run.stages': unknown stage 'trian' (did you mean 'train'?)"),
        ({"run": {"stages": ["filter", "filter"]}}, "a stage is listed twice"),
        ({"filter": {"input": "x", "rulez": []}}, "field 'filter.rulez': unknown key (did you mean 'rules'?)"),
        ({"trian": {}}, "field 'trian': unknown section (did you mean 'train'?)"),
        ({"train": {"student": "qwen-3b"}}, "field 'train.student'"),
    ],
)
def test_bad_recipe_is_one_input_error(traces, tmp_path, change, message):
    recipe = write_recipe(tmp_path / "r.yaml", traces, tmp_path / "base")
    doc = yaml.safe_load(recipe.read_text())
    for section, values in change.items():
        doc[section] = {**(doc.get(section) or {}), **values} if section != "filter" else values
    recipe.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputError) as error:
        plan(recipe, tmp_path / "run")
    assert message in str(error.value)
    assert not (tmp_path / "run").exists()


def test_from_and_until_must_name_a_stage_of_the_recipe(traces, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", traces, tmp_path / "base")
    with pytest.raises(InputError, match="'eval' is not a stage of this recipe"):
        plan(recipe, tmp_path / "run", start="eval")
    with pytest.raises(InputError, match="--set expects SECTION.KEY=VALUE"):
        plan(recipe, tmp_path / "run", overrides=["epochs=3"])


def test_the_filter_stage_log_holds_what_it_printed(traces, tmp_path, capfd):
    recipe = write_recipe(tmp_path / "r.yaml", traces, tmp_path / "base", stages=("filter",))
    run(recipe, tmp_path / "run")
    log = (tmp_path / "run" / "filter" / "log.txt").read_text()
    assert "filter: kept " in log and f"in {tmp_path / 'run' / 'filter' / 'kept.jsonl'}" in log, log
    assert "filter: kept " in capfd.readouterr().err  # and the terminal saw it too


@pytest.mark.parametrize(("item", "field", "message"), [
    ("train.student=no-such-student", "train.student", "unknown student"),
    ("train.studnet=qwen-1.5b", "train.studnet", "unknown key (did you mean 'student'?)"),
    ("filter.workers=-3", "filter.workers", "greater than"),
    ("run.stages=[filter, nosuch]", "run.stages", "unknown stage 'nosuch'"),
])
def test_a_bad_set_is_named_not_the_recipe_line_it_replaced(traces, tmp_path, item, field, message):
    recipe = write_recipe(tmp_path / "r.yaml", traces, tmp_path / "base")
    with pytest.raises(InputError) as error:
        plan(recipe, tmp_path / "run", overrides=[item])
    assert str(error.value).startswith(f"--set {item}: field '{field}': "), str(error.value)
    assert message in str(error.value) and "r.yaml" not in str(error.value)


def test_operational_settings_nested_ones_included_do_not_change_a_fingerprint(tmp_path):
    from distill.filters.config import FilterConfig
    from distill.pipeline.run import fingerprint
    from distill.pipeline.stages import Context

    ctx = Context(run_dir=tmp_path / "run", stages=["filter"], doc={})

    def of(**changes):
        values = {"input": str(tmp_path / "in.jsonl"), "output": str(tmp_path / "run" / "filter" / "kept.jsonl"),
                  "rules": ["format", "correctness", "judge"], "judge": {"model": "j", "base_url": "http://127.0.0.1:9/v1"}}
        for key, value in changes.items():
            section, _, name = key.partition("__")
            (values.setdefault(section, {}).__setitem__(name, value) if name else values.__setitem__(section, value))
        return fingerprint("filter", FilterConfig(**values), ctx, {})

    same = of()
    assert of(workers=2) == same and of(judge__price_in=3.0, judge__price_out=9.0) == same  # how it runs, what it costs
    assert of(judge__model="another") != same and of(rules=["format", "correctness"]) != same
