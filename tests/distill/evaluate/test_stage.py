"""`distill eval`: the estimators on known verdicts, the real checker on hand-written samples,
and an end-to-end run of a tiny model with the real vLLM engine."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from distill.core.records import Trace, sample_id
from distill.evaluate import benchmarks
from distill.evaluate.metrics import Sample, cons_at_k, majority_vote, pass_at_1, pass_at_k
from distill.evaluate.stage import EvalConfig, markdown_table, run, score_and_write

from ...conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[3]


def S(answer, correct):
    return Sample(answer, correct)


def test_pass_at_1_is_mean_correctness():
    assert pass_at_1([S("1", True), S("2", False), S("1", True), S("3", False)]) == 0.5
    assert pass_at_1([]) == 0.0


def test_pass_at_k_unbiased():
    samples = [S("1", True), S("2", False), S("3", False), S("4", False)]
    assert pass_at_k(samples) == 1.0
    assert pass_at_k(samples, 1) == pytest.approx(0.25)
    assert pass_at_k(samples, 2) == pytest.approx(1 - 3 / 6)  # 1 - C(3,2)/C(4,2)
    assert pass_at_k([S("2", False)] * 4, 2) == 0.0
    with pytest.raises(ValueError):
        pass_at_k(samples, 5)


def test_majority_vote_and_cons_at_k():
    # 3 votes for a wrong answer beat 1 correct one.
    assert cons_at_k([S("7", False), S("7", False), S("42", True), S("7", False)]) == 0.0
    # Layout-only differences do not split the vote.
    vote = majority_vote([S("\\frac{1}{2}", True), S("\\dfrac{1}{2}", True), S("3", False)])
    assert vote.votes == 2 and vote.correct and vote.groups == 2
    # Samples without an answer do not vote; no answers at all scores 0.
    assert majority_vote([S(None, False), S(None, False), S("5", True)]).answer == "5"
    assert cons_at_k([S(None, False), S("", False)]) == 0.0


def test_cons_at_k_tie_goes_to_earliest_answer():
    assert cons_at_k([S("42", True), S("7", False), S("7", False), S("42", True)]) == 1.0
    assert cons_at_k([S("7", False), S("42", True), S("42", True), S("7", False)]) == 0.0
    # k = 1: cons@1 == pass@1
    assert cons_at_k([S("42", True)]) == pass_at_1([S("42", True)]) == 1.0


def _trace(bench: str, pid: str, index: int, completion: str, answer: str) -> Trace:
    problem_id = f"{bench}/{pid}"
    return Trace(problem_id=problem_id, problem=f"problem {pid}", answer=answer, id=sample_id(problem_id, index),
                 sample_index=index, completion=completion, finish_reason="stop", completion_tokens=10 + index)


def test_cons_at_k_votes_on_every_part_of_the_answer(tmp_path):
    """Against a reference with several parts the vote groups whole answers: one right "2 and 5" does not
    make the group of two wrong "3 and 5" correct (grouped by their last box, all three would vote "5")."""
    done = "<think>\nwork\n</think>\n\n"
    finals = ["\\boxed{2} and \\boxed{5}", "\\boxed{3} and \\boxed{5}", "\\boxed{3}, \\boxed{5}"]
    traces = [_trace("toy", "c", i, done + text, "2, 5") for i, text in enumerate(finals)]
    score_and_write(traces, ["toy"], EvalConfig(model="m", benchmarks=["toy"], output_dir=tmp_path, k=3, workers=1))
    (row,) = map(json.loads, (tmp_path / "toy.jsonl").read_text().split("\n")[:-1])
    assert row["answers"] == ["2, 5", "3, 5", "3, 5"] and row["correct"] == 1
    assert row["vote"] == "3, 5" and row["votes"] == 2 and row["cons@3"] == 0.0


def test_scoring_with_the_real_checker(tmp_path):
    """Hand-written samples through the filter's checker: equivalent forms count, reasoning is not searched."""
    done = "<think>\nwork\n</think>\n\n"
    traces = [
        _trace("toy", "a", 0, done + "The answer is \\boxed{\\frac{1}{2}}", "0.5"),
        _trace("toy", "a", 1, done + "\\boxed{0.5}", "0.5"),
        _trace("toy", "a", 2, done + "\\boxed{3}", "0.5"),
        _trace("toy", "a", 3, "<think>\n\\boxed{0.5} ... still thinking", "0.5"),
        _trace("toy", "b", 0, done + "\\boxed{7}", "42"),
        _trace("toy", "b", 1, done + "\\boxed{7}", "42"),
        _trace("toy", "b", 2, done + "\\boxed{42}", "42"),
        _trace("toy", "b", 3, done + "no idea", "42"),
    ]
    config = EvalConfig(model="m", benchmarks=["toy"], output_dir=tmp_path, k=4, workers=1)
    summary = score_and_write(traces, ["toy"], config)
    rows = {r["problem_id"]: r for r in map(json.loads, (tmp_path / "toy.jsonl").read_text().split("\n")[:-1])}
    # a: 1/2 and 0.5 are equal for math-verify (2 correct); the boxed answer inside unfinished reasoning
    # is the last boxed of the whole text here (no closing tag), so it counts: 3 of 4.
    assert rows["a"]["correct"] == 3 and rows["a"]["pass@1"] == 0.75
    assert rows["b"]["pass@1"] == 0.25 and rows["b"]["cons@4"] == 0.0 and rows["b"]["vote"] == "7"
    bench = summary["benchmarks"]["toy"]
    assert bench["pass@1"] == pytest.approx(0.5) and bench["pass@4"] == 1.0 and bench["problems"] == 2
    samples = [json.loads(line) for line in (tmp_path / "toy.samples.jsonl").read_text().split("\n") if line]
    assert len(samples) == 8 and samples[0]["id"] == "a#0" and "correctness" in samples[0]["verdicts"]
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert "| toy | 2 | 50.0 ± 25.0 |" in (tmp_path / "eval_table.md").read_text()


def test_code_benchmark_is_graded_by_its_tests_with_the_code_limits(tmp_path):
    """A HumanEval-format file: loaded without answers, graded in the sandbox under --code-timeout."""
    bench = tmp_path / "he.jsonl"
    bench.write_text(json.dumps({"prompt": "Write inc(x).", "test": "def check(candidate):\n    assert candidate(1) == 2\n", "entry_point": "inc"}) + "\n")
    config = EvalConfig(model="m", benchmarks=[str(bench)], output_dir=tmp_path / "out", k=3, workers=1, code_timeout=1)
    problems = benchmarks.load(str(bench), config.model_copy(update={"fields": config.fields.model_copy(update={"problem": "prompt"})})).problems
    assert problems[0].domain == "code" and problems[0].tests["entry_point"] == "inc"
    done = "<think>\nwork\n</think>\n\n```python\n"
    bodies = ["def inc(x):\n    return x + 1\n", "def inc(x):\n    return x\n", "def inc(x):\n    while True:\n        pass\n"]
    traces = [Trace(**problems[0].model_dump(exclude={"problem_id"}), problem_id=f"he/{problems[0].problem_id}", id=f"x#{i}",
                    sample_index=i, completion=done + body + "```") for i, body in enumerate(bodies)]
    summary = score_and_write(traces, ["he"], config)
    assert summary["benchmarks"]["he"]["pass@1"] == pytest.approx(1 / 3)
    reasons = [json.loads(line)["verdicts"]["correctness"]["reason"] for line in (tmp_path / "out" / "he.samples.jsonl").read_text().split("\n") if line]
    assert reasons[2].startswith("inc() did not finish within 1s (--code-timeout 1)")


def test_benchmark_files_and_names(tmp_path, shared_data, tiny_qwen):
    aime = benchmarks.load(str(shared_data / "benchmarks" / "aime24.jsonl"), EvalConfig(model="m", benchmarks=["aime24"])).problems
    assert len(aime) == 30 and all(p.answer for p in aime)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "no answer here"}\n')
    result = subprocess.run([sys.executable, "-m", "cli", "eval", str(tiny_qwen), "--benchmark", str(bad), "-o", str(tmp_path / "o")],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "bad.jsonl" in result.stderr and "answer" in result.stderr
    assert result.stderr.strip().count("\n") == 0 and not (tmp_path / "o").exists()
    # A known name without its file needs the hub; offline that is a one-line error, not a traceback.
    result = subprocess.run([sys.executable, "-m", "cli", "eval", str(tiny_qwen), "--benchmark", "aime24", "-o", str(tmp_path / "o")],
                            capture_output=True, text=True, cwd=tmp_path, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2 and "HuggingFaceH4/aime_2024" in result.stderr


def test_eval_has_the_engine_memory_settings_of_generate(tmp_path):
    # They are the sampling layer's (eval.sampling), read from the keys eval always had (issue 25).
    base = dict(model="m", benchmarks=["b.jsonl"])
    settings = EvalConfig(**base, max_model_len=512, max_num_seqs=8, gpu_memory_utilization=0.5, kv_cache_memory_bytes=2**28).sampling
    assert (settings.max_model_len, settings.max_num_seqs, settings.gpu_memory_utilization, settings.kv_cache_memory_bytes) == (
        512, 8, 0.5, 2**28)
    settings = EvalConfig(**base, max_num_seqs=8, generate={"max_num_seqs": 4}).sampling
    assert settings.max_num_seqs == 4  # the free-form `generate` section has the last word
    settings = EvalConfig(**base).sampling
    assert settings.kv_cache_memory_bytes is None and settings.gpu_memory_utilization is None  # on CPU: sized to the run
    shown = subprocess.run([sys.executable, "-m", "cli", "eval", "--help"], capture_output=True, text=True, cwd=ROOT).stdout
    assert all(flag in shown for flag in ("--max-model-len", "--max-num-seqs", "--gpu-memory-utilization", "--kv-cache-memory-bytes"))


def test_markdown_table_compares_models():
    one = {"model": "a/student", "k": 4, "benchmarks": {"aime24": {"problems": 30, "pass@1": 0.5, "pass@1_stderr": 0.1, "cons@4": 0.6, "pass@4": 0.7, "mean_tokens": 900.0}}}
    two = {**one, "model": "b/teacher"}
    table = markdown_table([one, two])
    assert table.splitlines()[0].startswith("| model | benchmark") and "| teacher | aime24 | 30 | 50.0 ± 10.0 | 60.0 | 70.0 | 900 |" in table


@pytest.fixture(scope="module")
def small_benchmark(tmp_path_factory) -> Path:
    """Three real AIME 2024 problems when ../shared is present, else a small file written here."""
    path = tmp_path_factory.mktemp("bench") / "mini.jsonl"
    source = SHARED_DATA / "benchmarks" / "aime24.jsonl"
    if source.exists():
        lines = source.read_text().splitlines()[:3]
    else:
        lines = [json.dumps({"problem": f"What is {a} + {b}?", "answer": str(a + b)}) for a, b in ((1, 2), (20, 22), (7, 5))]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def published_tiny(tiny_qwen, tmp_path_factory) -> Path:
    """The tiny model as `distill publish` writes it (sharded safetensors, inference template, generation config)."""
    from transformers import AutoTokenizer

    from students.publish import PublishConfig
    from students.publish import run as publish
    from students.templates import TEMPLATES, prepare_tokenizer

    root = tmp_path_factory.mktemp("published")
    final = root / "run" / "final"
    shutil.copytree(tiny_qwen, final)
    prepare_tokenizer(AutoTokenizer.from_pretrained(final), TEMPLATES["chatml"], "<|endoftext|>").save_pretrained(final)
    (root / "run" / "train.json").write_text(json.dumps({"student": "qwen-1.5b", "base_model": str(tiny_qwen), "method": "full", "template": "chatml"}))
    publish(PublishConfig(run_dir=root / "run", output=root / "model", max_shard_size="200KB"))
    assert len(list((root / "model").glob("*.safetensors"))) > 1
    return root / "model"


@pytest.mark.slow
def test_end_to_end_eval_with_vllm(published_tiny, small_benchmark, tmp_path):
    """A published model, evaluated with the real vLLM engine: also proves vLLM loads what publish writes."""
    from teacher.backends.vllm import _ENGINES, release

    config = EvalConfig(
        model=str(published_tiny), benchmarks=[str(small_benchmark)], output_dir=tmp_path / "eval", k=3, max_tokens=24, workers=1,
        generate={"kv_cache_memory_bytes": 256 * 1024**2, "max_model_len": 1024},
    )
    try:
        summary = run(config, keep_engine=True)
        engine = next(iter(_ENGINES.values()))
        defaults = engine.get_default_sampling_params()  # read by vLLM from the published generation_config.json
        assert defaults.temperature == pytest.approx(0.6) and defaults.top_p == pytest.approx(0.95)
        prompt = engine.get_tokenizer().apply_chat_template([{"role": "user", "content": "2+2?"}], add_generation_prompt=True, tokenize=False)
        assert prompt.endswith("<|im_start|>assistant\n<think>\n")
    finally:
        release()  # shut the engine down now, not at interpreter exit
    out = tmp_path / "eval"
    bench = summary["benchmarks"]["mini"]
    assert bench["problems"] == 3 and bench["samples"] == 9
    rows = [json.loads(line) for line in (out / "mini.jsonl").read_text().split("\n") if line]
    samples = [json.loads(line) for line in (out / "mini.samples.jsonl").read_text().split("\n") if line]
    assert len(rows) == 3 and all(r["samples"] == 3 for r in rows) and len(samples) == 9
    # Every sample was really generated (R1 form: opens with the think prefill) and graded by the checker.
    assert all(s["completion"].startswith("<think>") and s["verdicts"]["correctness"]["reason"] for s in samples)
    assert all(s["teacher"]["temperature"] == 0.6 and s["teacher"]["top_p"] == 0.95 for s in samples)
    for row in rows:
        mine = [s for s in samples if s["problem_id"] == row["problem_id"]]
        assert row["pass@1"] == pytest.approx(sum(s["verdicts"]["correctness"]["passed"] for s in mine) / 3)
    assert bench["pass@1"] == pytest.approx(sum(r["pass@1"] for r in rows) / 3)
    assert {p.name for p in out.iterdir()} == {"mini.jsonl", "mini.samples.jsonl", "summary.json", "eval_table.md"}


@pytest.mark.slow
def test_the_papers_benchmarks_with_a_tiny_model(published_tiny, small_benchmark, tmp_path):
    """AIME-style, GPQA and LiveCodeBench files with the real engine, k per benchmark (two sampling runs, one engine):
    summary.json per benchmark, and the paper's table with the published row of the student's R1-Distill model."""
    from teacher.backends.vllm import release

    fixtures = ROOT / "tests" / "fixtures" / "eval"
    aime = tmp_path / "aime24.jsonl"
    shutil.copy(small_benchmark, aime)
    config = EvalConfig(
        model=str(published_tiny), benchmarks=[str(aime), str(fixtures / "gpqa_diamond.csv"), str(fixtures / "livecodebench.jsonl")],
        output_dir=tmp_path / "eval", k="aime24=3,1", max_tokens=24, workers=1, student="qwen-1.5b",
        generate={"kv_cache_memory_bytes": 256 * 1024**2, "max_model_len": 1024},
    )
    try:
        summary = run(config)
    finally:
        release()
    figures = summary["benchmarks"]
    assert (figures["aime24"]["k"], figures["aime24"]["samples"]) == (3, 9)
    assert (figures["gpqa_diamond"]["k"], figures["gpqa_diamond"]["samples"], figures["gpqa_diamond"]["kind"]) == (1, 4, "choice")
    assert (figures["livecodebench"]["samples"], figures["livecodebench"]["kind"]) == (2, "code")
    assert summary["published"] == "DeepSeek-R1-Distill-Qwen-1.5B"
    table = (tmp_path / "eval" / "paper_table.md").read_text()
    print(table)
    assert "| DeepSeek-R1-Distill-Qwen-1.5B (published) | 28.9 | 52.7 | 83.9 | 33.8 | 16.9 |" in table
