"""`distill difficulty`: the student's samples, graded by the verifier, as per-prompt rows train and filter read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from distill.core.data import read_problems
from distill.core.errors import InputError
from distill.core.prompt_stats import read_pass_rates
from distill.difficulty.config import DifficultyConfig
from distill.difficulty.stage import run, student_model
from teacher.prompts import job_for
from teacher.sink import TraceSink

ROOT = Path(__file__).resolve().parents[3]
PROMPTS = [{"problem": "What is 1+1?", "answer": "2"}, {"problem": "What is 2+3?", "answer": "5"}, {"problem": "Name a colour."}]


def _prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in PROMPTS))
    return path


def _model(tmp_path: Path) -> Path:
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def _write_samples(config: DifficultyConfig, answers: dict[str, list[str]]) -> None:
    """The student's samples as the sampling layer's record sink writes them (no engine needed to grade them)."""
    sink = TraceSink(Path(config.samples), config.sampling.info(config.think_prefill))
    problems = {p.problem: p for p in read_problems(config.prompts, config.fields)}
    jobs = [job_for(problems[text], list(range(len(given))), config) for text, given in answers.items()]
    sink.start(jobs)
    for job, given in zip(jobs, answers.values(), strict=True):
        sink.emit_many(job, [(i, f"<think>\nsum\n</think>\n\n\\boxed{{{a}}}", "stop", 7) for i, a in enumerate(given)], prompt_tokens=11)
    sink.stop()


def test_rows_are_the_verifiers_pass_rates_and_nothing_is_sampled_again(tmp_path):
    config = DifficultyConfig(model=str(_model(tmp_path)), prompts=str(_prompts(tmp_path)), output=str(tmp_path / "rates.jsonl"), k=3, workers=1)
    assert config.sampling.n == 3 and config.samples == str(tmp_path / "rates.samples.jsonl")
    _write_samples(config, {"What is 1+1?": ["2", "2", "2"], "What is 2+3?": ["5", "4", "6"]})
    summary = run(config)  # every sample is there: the engine is never loaded
    assert summary["samples_written"] == 0 and summary["samples"] == 6 and summary["prompts"] == 2 and summary["ungradable"] == 1
    rows = [json.loads(line) for line in (tmp_path / "rates.jsonl").read_text().split("\n") if line]
    assert [(r["drawn"], r["correct"], r["pass_rate"], r["always_solved"], r["never_solved"]) for r in rows] == [
        (3, 3, 1.0, True, False), (3, 1, 0.3333, False, False)]
    assert rows[0]["completion_tokens"] == 21 and rows[0]["shortest_correct_tokens"] == 7
    assert summary["always_solved"] == 1 and summary["never_solved"] == 0 and summary["mean_pass_rate"] == round((1 + 1 / 3) / 2, 4)
    # train reads them back as (correct, drawn) per problem id: the ids generate gives the same prompts
    ids = [p.problem_id for p in read_problems(config.prompts)][:2]
    assert read_pass_rates(config.output) == {ids[0]: (3, 3), ids[1]: (1, 3)}


def test_samples_of_another_model_or_a_larger_k(tmp_path):
    config = DifficultyConfig(model=str(_model(tmp_path)), prompts=str(_prompts(tmp_path)), output=str(tmp_path / "rates.jsonl"), k=2, workers=1)
    _write_samples(config, {"What is 1+1?": ["2", "3", "2"], "What is 2+3?": ["5", "5", "1"]})
    run(config)  # a file with more samples than k: the first k of each prompt count
    assert [json.loads(line)["correct"] for line in (tmp_path / "rates.jsonl").read_text().split("\n") if line] == [1, 2]
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(InputError, match="holds samples of"):
        run(config.model_copy(update={"sampling": config.sampling.model_copy(update={"model": str(other)})}))


def test_the_student_is_a_preset_a_train_run_or_a_folder(tmp_path):
    assert student_model("qwen-1.5b") == "Qwen/Qwen2.5-Math-1.5B"
    (tmp_path / "run" / "final").mkdir(parents=True)
    (tmp_path / "run" / "final" / "config.json").write_text("{}")
    assert student_model(str(tmp_path / "run")) == str(tmp_path / "run" / "final")
    (tmp_path / "lora" / "final").mkdir(parents=True)
    (tmp_path / "lora" / "final" / "adapter_config.json").write_text("{}")
    with pytest.raises(InputError, match="adapter"):
        student_model(str(tmp_path / "lora"))


@pytest.mark.parametrize(("args", "said"), [
    (["-k", "0"], "field 'k'"),
    (["-p", "NOANSWER"], "no prompt has a reference answer"),
    (["-o", "rates.txt"], "must end in .jsonl"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, said):
    (tmp_path / "noanswer.jsonl").write_text('{"problem": "Name a colour."}\n')
    _prompts(tmp_path)
    model = _model(tmp_path)
    base = {"-p": "prompts.jsonl", "-o": "rates.jsonl"}
    given = dict(zip(args[::2], [a.replace("NOANSWER", "noanswer.jsonl") for a in args[1::2]], strict=True))
    line = [str(model)] + [x for flag, value in {**base, **given}.items() for x in (flag, value)]
    before = sorted(p.name for p in tmp_path.iterdir())
    result = subprocess.run([sys.executable, "-m", "cli", "difficulty", *line], capture_output=True, text=True, cwd=tmp_path,
                            env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2 and said in result.stderr and result.stderr.strip().count("\n") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.slow
def test_the_student_sampled_by_the_engine_graded_and_resumed(tiny_qwen, tmp_path):
    """The real vLLM engine: k samples of each gradable prompt, rows that agree with the verifier's verdicts, and a
    re-run that samples nothing and writes the same rows."""
    from distill.core.data import read_records
    from distill.core.records import Trace
    from distill.core.verify import check

    config = DifficultyConfig(model=str(tiny_qwen), prompts=str(_prompts(tmp_path)), output=str(tmp_path / "rates.jsonl"), k=2, workers=1,
                              max_tokens=12, max_model_len=512, kv_cache_memory_bytes=128 * 1024**2)
    summary = run(config)
    samples = list(read_records(config.samples, Trace))
    assert summary["samples_written"] == 4 and len(samples) == 4 and {s.sample_index for s in samples} == {0, 1}
    assert all(s.teacher["model"] == str(tiny_qwen) and s.teacher["temperature"] == 0.6 and s.completion_tokens for s in samples)
    rows = [json.loads(line) for line in (tmp_path / "rates.jsonl").read_text().split("\n") if line]
    assert [r["problem_id"] for r in rows] == [p.problem_id for p in read_problems(config.prompts)][:2]
    for row in rows:
        mine = [s for s in samples if s.problem_id == row["problem_id"]]
        correct = sum(check(s).passed for s in mine)
        assert (row["drawn"], row["correct"], row["pass_rate"]) == (2, correct, round(correct / 2, 4))
    first = (tmp_path / "rates.jsonl").read_text()
    again = run(config)
    assert again["samples_written"] == 0 and again["samples"] == 4 and (tmp_path / "rates.jsonl").read_text() == first


def test_a_run_chains_generate_filter_difficulty_train(tmp_path):
    """difficulty samples train's student before training on generate's prompts; train and train-hard read its rows."""
    from distill.pipeline.stages import Context, wire

    doc = {"generate": {"prompts": "p.jsonl"}, "train": {"student": "qwen-1.5b"}}
    ctx = Context(run_dir=tmp_path, stages=["generate", "filter", "difficulty", "train", "train-hard"], doc=doc)
    values = wire("difficulty", {"k": 8}, ctx)
    assert values == {"k": 8, "prompts": "p.jsonl", "student": "qwen-1.5b", "output": str(tmp_path / "difficulty" / "prompts.jsonl"),
                      "samples": str(tmp_path / "difficulty" / "samples.jsonl")}
    assert DifficultyConfig(**values).model == "qwen-1.5b"  # the preset: its base model is what the engine loads
    for stage in ("train", "train-hard"):
        assert wire(stage, {}, ctx)["pass_rates"] == str(tmp_path / "difficulty" / "prompts.jsonl")
    doc["train"]["base_model"] = "base"  # train's own base overrides the preset's, here too
    assert wire("difficulty", {}, ctx)["model"] == "base"
    # before the filter, the filter's band reads the student's rates (filter --pass-rates)
    ctx.stages = ["generate", "difficulty", "filter", "train"]
    assert wire("filter", {}, ctx)["pass_rates"] == str(tmp_path / "difficulty" / "prompts.jsonl")
