"""`eval --think-budget` (issue 30): budget forcing as s1 defines it. Parsing and bad input, the fingerprint of
an eval without budgets, the table and chart, the figures from graded samples, and one run with the real vLLM
engine that checks what the code guarantees (thinking within the budget, the forced closing, resuming a step)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from distill.core.config import fingerprint_view, validate
from distill.core.errors import InputError
from distill.core.records import Trace, sample_id
from distill.evaluate import think_budget
from distill.evaluate.config import EvalConfig

ROOT = Path(__file__).resolve().parents[3]


def test_budgets_are_whole_numbers_in_increasing_order():
    assert EvalConfig(model="m", benchmarks=["b"], think_budget="512,64, 512").think_budget == [64, 512]
    assert EvalConfig(model="m", benchmarks=["b"], think_budget=[128, 32]).think_budget == [32, 128]  # a recipe's list
    assert EvalConfig(model="m", benchmarks=["b"]).think_budget == []


@pytest.mark.parametrize(("budget", "message"), [
    ("0", "at least 1 token, got 0"), ("-3", "at least 1 token"), ("abc", "whole number of tokens, got 'abc'"), ("1.5", "whole number"),
    ("4096", "think budget 4096 is larger than max_tokens (2048)"),
])
def test_a_bad_budget_is_one_line(budget, message):
    with pytest.raises(InputError) as error:
        validate(EvalConfig, {"model": "m", "benchmarks": ["b"], "max_tokens": 2048, "think_budget": budget}, where="command line")
    assert error.value.field == "think_budget" and message in str(error.value)


def test_a_chat_endpoint_cannot_take_a_budget():
    with pytest.raises(InputError, match="needs the vllm backend"):
        validate(EvalConfig, {"model": "m.gguf", "benchmarks": ["b"], "think_budget": "64"})
    validate(EvalConfig, {"model": "m", "benchmarks": ["b"], "think_budget": "64", "backend": "openai", "generate": {"api": "completions"}})


def test_the_command_refuses_a_bad_budget_writing_nothing(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "cli", "eval", "m", "-b", "b.jsonl", "--max-tokens", "256", "--think-budget", "64,512", "-o", str(out)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "think budget 512 is larger than max_tokens (256)" in result.stderr and not out.exists()


def test_an_eval_without_budgets_keeps_its_fingerprint():
    plain = fingerprint_view(EvalConfig(model="m", benchmarks=["b"]))
    assert not {"think_budget", "answer_tokens", "answer_prefix"} & set(plain)
    assert fingerprint_view(EvalConfig(model="m", benchmarks=["b"], think_budget="64"))["think_budget"] == [64]


def test_a_continuation_does_not_repeat_the_opening_the_template_wrote(tiny_qwen):
    """The R1 template opens the response with "<think>\\n"; the completion to continue starts with it too."""
    from transformers import AutoTokenizer

    from teacher.sampler import Job, render

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen)
    messages = [{"role": "user", "content": "What is 2 plus 3?"}]
    template = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert template.endswith("<think>\n")
    forced = "<think>\nadd them" + think_budget.closing(think_budget.DELIMITER_PRESETS["r1"], "Final Answer: ")
    assert render(Job("k", messages, [0], prefill=forced, continuation=True), tokenizer) == template + forced.removeprefix("<think>\n")
    assert render(Job("k", messages, [0], prefill="<think>\n"), tokenizer) == template  # an opening as before


def _sample(pid: str, index: int, budget: int, completion: str, thinking: int, forced: bool) -> Trace:
    problem_id = f"toy/{pid}"
    return Trace(problem_id=problem_id, problem=f"problem {pid}", answer="7", id=sample_id(problem_id, index), sample_index=index,
                 completion=completion, finish_reason="stop", completion_tokens=thinking + 3, think_budget=budget,
                 thinking_tokens=thinking, answer_tokens=3, forced=forced)


def test_figures_per_budget_from_graded_samples(tmp_path):
    from distill.evaluate.stage import grade_samples

    config = EvalConfig(model="m", benchmarks=["toy"], output_dir=tmp_path, k=2, workers=1, think_budget="8,2")
    right, wrong = "<think>\nwork\n</think>\n\nFinal Answer: 7", "<think>\nwo\n</think>\n\nFinal Answer: 5"
    forced = {8: [_sample("a", 0, 8, right, 8, True), _sample("a", 1, 8, right, 5, False), _sample("b", 0, 8, wrong, 8, True), _sample("b", 1, 8, right, 2, False)],
              2: [_sample("a", 0, 2, wrong, 2, True), _sample("a", 1, 2, right, 2, True), _sample("b", 0, 2, wrong, 2, True), _sample("b", 1, 2, wrong, 2, True)]}
    rows = think_budget.score({budget: grade_samples(samples, {"toy": "answer"}, config) for budget, samples in forced.items()}, config, {"toy": "answer"})
    assert [r["budget"] for r in rows] == [2, 8]  # in increasing order, whatever order they came in
    assert [r["pass@1"] for r in rows] == [pytest.approx(0.25), pytest.approx(0.75)]  # the mean over problems of the mean over samples
    assert [r["mean_thinking_tokens"] for r in rows] == [2.0, 5.75] and [r["forced"] for r in rows] == [1.0, 0.5]
    kept = [json.loads(line) for line in (tmp_path / "toy.think-8.samples.jsonl").read_text().split("\n") if line]
    assert [s["thinking_tokens"] for s in kept] == [8, 5, 8, 2] and all("verdicts" in s for s in kept)
    assert len((tmp_path / "toy.think-2.jsonl").read_text().split("\n")[:-1]) == 2


def test_table_and_chart(tmp_path):
    rows = [{"budget": b, "benchmark": "aime24", "pass@1": p, "pass@1_stderr": 0.05, "mean_thinking_tokens": t, "mean_answer_tokens": 40.0, "forced": f}
            for b, p, t, f in ((512, 0.1, 500.0, 0.9), (4096, 0.3, 2500.4, 0.25))]
    summary = {"model": "runs/x/final", "max_tokens": 8192, "benchmarks": {"aime24": {"pass@1": 0.35, "pass@1_stderr": 0.06}},
               "think_budgets": {"answer_tokens": 1024}}
    lines = think_budget.markdown(rows, summary).splitlines()
    assert lines[0] == "| budget | benchmark | pass@1 | mean thinking tokens | mean answer tokens | closed by the budget |"
    assert lines[2:] == ["| 512 | aime24 | 10.0 ± 5.0 | 500 | 40 | 90% |", "| 4096 | aime24 | 30.0 ± 5.0 | 2500 | 40 | 25% |",
                         "| none (8192) | aime24 | 35.0 ± 6.0 | - | - | - |"]
    think_budget.write(rows, summary, tmp_path)
    assert (tmp_path / "think_budgets.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "think_budgets.md").exists()


@pytest.mark.slow
def test_budget_forcing_with_vllm(tiny_qwen, tmp_path):
    """The real engine, two budgets; budget 4's thinking step was sampled before (a run interrupted after it):
    the run goes on from that file. Asserted: what the code guarantees, never what a random model writes."""
    from distill.evaluate.stage import _settings_hash, run

    bench = tmp_path / "mini.jsonl"
    bench.write_text("".join(json.dumps({"problem": f"What is {a} + {b}?", "answer": str(a + b)}) + "\n" for a, b in ((1, 2), (20, 22), (7, 5))))
    out = tmp_path / "eval"
    config = EvalConfig(model=str(tiny_qwen), benchmarks=[str(bench)], output_dir=out, k=2, max_tokens=24, workers=1, think_budget="12,4",
                        answer_tokens=6, generate={"kv_cache_memory_bytes": 256 * 1024**2, "max_model_len": 1024})
    from distill.evaluate.benchmarks import load

    problems = load(str(bench), config).problems
    first, _ = think_budget.step_files(config, _settings_hash(config), 4)
    out.mkdir()
    written = [Trace(**p.model_dump(exclude={"problem_id"}), problem_id=f"mini/{p.problem_id}", id=sample_id(f"mini/{p.problem_id}", i), sample_index=i,
                     completion=f"<think>\nwritten before {i}", finish_reason="length", completion_tokens=4) for p in problems for i in range(2)]
    first.write_text("".join(json.dumps(t.model_dump(mode="json", exclude_none=True)) + "\n" for t in written))

    summary = run(config)
    rows = summary["think_budgets"]["rows"]
    assert [(r["budget"], r["benchmark"], r["samples"]) for r in rows] == [(4, "mini", 6), (12, "mini", 6)]
    closing = think_budget.closing(think_budget.DELIMITER_PRESETS["r1"], "Final Answer: ")
    resumed = [json.loads(line) for line in (out / "mini.think-4.samples.jsonl").read_text().split("\n") if line]
    assert sorted(s["completion"].split(closing)[0] for s in resumed) == sorted(f"<think>\nwritten before {i}" for i in range(2) for _ in problems)
    assert all(s["forced"] and s["thinking_tokens"] == 4 for s in resumed)
    for sample in [json.loads(line) for line in (out / "mini.think-12.samples.jsonl").read_text().split("\n") if line]:
        assert sample["completion"].startswith("<think>\n") and 0 < sample["thinking_tokens"] <= 12  # never past the budget
        assert sample["answer_tokens"] <= 6 and sample["completion_tokens"] == sample["thinking_tokens"] + sample["answer_tokens"]
        assert "</think>" in sample["completion"]  # every reasoning closed: by the model (its tag put back) or by the budget
        if sample["forced"]:  # cut at the budget, then closed once, by us, and the model went on after the answer prefix
            reasoning, tag, _ = sample["completion"].partition(closing)
            assert tag and "</think>" not in reasoning and sample["thinking_tokens"] == 12
    per_problem = [json.loads(line) for line in (out / "mini.think-12.jsonl").read_text().split("\n") if line]
    assert rows[1]["pass@1"] == pytest.approx(sum(r["pass@1"] for r in per_problem) / 3)
    assert summary["benchmarks"]["mini"]["samples"] == 6  # eval's own samples as without budgets
    table = (out / "think_budgets.md").read_text().splitlines()
    assert [line.split(" | ")[0] for line in table[2:]] == ["| 4", "| 12", "| none (24)"]
    assert not list(out.glob(".*.jsonl"))  # the step files go once the results are written
    assert {p.name for p in out.iterdir()} == {"mini.jsonl", "mini.samples.jsonl", "summary.json", "eval_table.md", "think_budgets.md", "think_budgets.png",
                                               "mini.think-4.jsonl", "mini.think-4.samples.jsonl", "mini.think-12.jsonl", "mini.think-12.samples.jsonl"}
