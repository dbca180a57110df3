"""eval's benchmark kinds: GPQA Diamond (multiple choice) and LiveCodeBench (code) read from files in
their public layouts (tests/fixtures/eval), graded end to end, and the bad inputs."""

from __future__ import annotations

import json
import re
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from distill.core.errors import InputError
from distill.core.records import Trace, sample_id
from distill.core.verify.choice import extract_choice
from distill.evaluate import benchmarks
from distill.evaluate.config import EvalConfig
from distill.evaluate.stage import score_and_write

from ...conftest import JsonHandler

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "eval"
GPQA = FIXTURES / "gpqa_diamond.csv"
LCB = FIXTURES / "livecodebench.jsonl"
CORRECT = {"Nitrogen", "E/c", "The nucleus", "+7"}  # the fixture's correct answers
THINK = "<think>\nLet me work through the options.\n</think>\n\n"


def config(tmp_path: Path, *specs, **settings) -> EvalConfig:
    return EvalConfig(model="stand-in", benchmarks=[str(s) for s in specs], output_dir=tmp_path / "out", workers=1, **settings)


# ---------------------------------------------------------------------------- GPQA


def test_gpqa_options_are_shuffled_with_the_recorded_seed_in_simple_evals_form(tmp_path):
    bench = benchmarks.load(str(GPQA), config(tmp_path, GPQA))
    assert bench.kind == "choice" and bench.info == {"shuffle_seed": 0} and len(bench.problems) == 4
    first = bench.problems[0]
    options = re.findall(r"^([A-D])\) (.*)$", first.problem, re.M)
    assert [letter for letter, _ in options] == list("ABCD")
    assert dict(options)[first.answer] == "Nitrogen"
    assert first.problem.startswith("Answer the following multiple choice question.") and "'Answer: $LETTER'" in first.problem
    assert {p.answer for p in bench.problems} != {"A"}  # the gold letter moves
    again = benchmarks.load(str(GPQA), config(tmp_path, GPQA))
    other = benchmarks.load(str(GPQA), config(tmp_path, GPQA, shuffle_seed=7))
    assert [p.problem for p in again.problems] == [p.problem for p in bench.problems]
    assert [p.problem for p in other.problems] != [p.problem for p in bench.problems]


@pytest.mark.parametrize(("text", "letter"), [
    ("\\boxed{C}", "C"), ("\\boxed{\\text{B}}", "B"), ("Answer: D", "D"), ("**Answer:** (A)", "A"), ("The answer is (B).", "B"),
    ("so the right one is (C)", "C"), ("B", "B"), ("The gas is Argon.", "B"), ("the answer: a long story", None), ("Answer: Carbon", None),
])
def test_the_letter_is_read_in_each_accepted_form(text, letter):
    assert extract_choice(text, {"A": "Nitrogen", "B": "Argon", "C": "Oxygen", "D": "Carbon dioxide"}) == letter


class StandIn:
    """An OpenAI-compatible endpoint answering GPQA prompts: the right letter boxed, as "Answer: X" and as
    "(X)", then a wrong letter, in turn for each prompt."""

    FORMS = ("The answer is \\boxed{{{right}}}.", "Answer: {right}", "It must be ({right}).", "Answer: {wrong}")

    def __init__(self):
        self.served: dict[str, int] = {}
        server = self

        class Handler(JsonHandler):
            def do_GET(self):
                self._send(200, {"data": [{"id": "stand-in"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                options = dict(re.findall(r"^([A-D])\) (.*)$", prompt, re.M))
                if not options:  # a math problem: always 2
                    reply = {"message": {"role": "assistant", "content": THINK + "\\boxed{2}"}, "finish_reason": "stop"}
                    choices = [{"index": i, **reply} for i in range(body.get("n", 1))]
                    return self._send(200, {"choices": choices, "usage": {"prompt_tokens": 5, "completion_tokens": 5 * len(choices)}})
                right = next(letter for letter, text in options.items() if text in CORRECT)
                wrong = next(letter for letter in "ABCD" if letter != right)
                choices = []
                for index in range(body.get("n", 1)):
                    turn = server.served.get(prompt, 0)
                    server.served[prompt] = turn + 1
                    reply = THINK + StandIn.FORMS[turn % 4].format(right=right, wrong=wrong)
                    choices.append({"index": index, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"})
                self._send(200, {"choices": choices, "usage": {"prompt_tokens": 50, "completion_tokens": 12 * len(choices)}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stand_in():
    server = StandIn()
    yield server
    server.close()


def test_gpqa_end_to_end_grades_each_form(stand_in, tmp_path, distill_cli):
    """The bar: a right letter is right boxed, as "Answer: X" and as "(X)"; a wrong letter is wrong."""
    out = tmp_path / "out"
    code, _, err = distill_cli("eval", "stand-in", "-b", GPQA, "--backend", "openai", "--base-url", stand_in.url, "--k", "4",
                               "-o", out, "--workers", "1")
    assert code == 0, err
    samples = [json.loads(line) for line in (out / "gpqa_diamond.samples.jsonl").read_text().split("\n") if line]
    assert len(samples) == 16
    for sample in samples:
        final = sample["completion"].split("</think>")[1]
        wrong = final.strip().startswith("Answer: ") and final.strip()[-1] != sample["answer"]
        assert sample["verdicts"]["correctness"]["passed"] is (not wrong), final
    summary = json.loads((out / "summary.json").read_text())
    figures = summary["benchmarks"]["gpqa_diamond"]
    assert figures["pass@1"] == 0.75 and figures["kind"] == "choice" and figures["shuffle_seed"] == 0
    assert figures["no_answer"] == 0.0 and figures["unclosed"] == 0.0


def test_k_per_benchmark_samples_each_benchmark_its_k(stand_in, tmp_path, distill_cli):
    toy = tmp_path / "toy.jsonl"
    toy.write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\n")
    out = tmp_path / "out"
    code, _, err = distill_cli("eval", "stand-in", "-b", f"{GPQA},{toy}", "--backend", "openai", "--base-url", stand_in.url,
                               "--k", "gpqa_diamond=4,2", "-o", out, "--workers", "1")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    gpqa, math = summary["benchmarks"]["gpqa_diamond"], summary["benchmarks"]["toy"]
    assert (gpqa["k"], gpqa["samples"], gpqa["pass@1"]) == (4, 16, 0.75)
    assert (math["k"], math["samples"], math["pass@1"], math["cons@2"]) == (2, 2, 1.0, 1.0)
    assert sorted(p.name for p in out.iterdir()) == ["eval_table.md", "gpqa_diamond.jsonl", "gpqa_diamond.samples.jsonl", "summary.json",
                                                    "toy.jsonl", "toy.samples.jsonl"]  # the raw samples of both runs are gone


# ---------------------------------------------------------------------------- LiveCodeBench


def test_lcb_reads_public_and_compressed_private_tests_in_the_date_window(tmp_path):
    bench = benchmarks.load(str(LCB), config(tmp_path, LCB))
    assert bench.kind == "code" and [p.problem_id for p in bench.problems] == ["abc999_a", "3999"]  # 2023-05 is outside 2024-08..2025-01
    stdin, call = bench.problems
    assert stdin.tests["type"] == "stdin" and len(stdin.tests["cases"]) == 3  # one public, two private
    assert call.tests == {"type": "call", "entry_point": "multiplyTwo",
                          "cases": [{"input": [3, 4], "output": 12}, {"input": [0, 9], "output": 0}, {"input": [-2, 8], "output": -16}]}
    assert "### Question:" in stdin.problem and "# YOUR CODE HERE" in stdin.problem and "def multiplyTwo" in call.problem
    wide = benchmarks.load(str(LCB), config(tmp_path, LCB, since="2023-01", until=None))
    assert len(wide.problems) == 3
    with pytest.raises(InputError, match="no problems with a contest_date"):
        benchmarks.load(str(LCB), config(tmp_path, LCB, since="2025-02", until="2025-03"))


def _code_trace(problem, index: int, program: str) -> Trace:
    problem_id = f"livecodebench/{problem.problem_id}"
    return Trace(**problem.model_dump(exclude={"problem_id"}), problem_id=problem_id, id=sample_id(problem_id, index), sample_index=index,
                 completion=f"{THINK}```python\n{program}\n```", finish_reason="stop", completion_tokens=20)


def test_lcb_grading_in_the_sandbox_functional_and_stdin(tmp_path):
    settings = config(tmp_path, LCB)
    bench = benchmarks.load(str(LCB), settings)
    bench.name = "livecodebench"
    stdin, call = bench.problems
    traces = [
        _code_trace(stdin, 0, "a, b = map(int, input().split())\nprint(a + b)"),
        _code_trace(stdin, 1, "a, b = map(int, input().split())\nprint(a - b)"),
        _code_trace(call, 0, "class Solution:\n    def multiplyTwo(self, a: int, b: int) -> int:\n        return a * b"),
        _code_trace(call, 1, "class Solution:\n    def multiplyTwo(self, a: int, b: int) -> int:\n        return a + b"),
    ]
    summary = score_and_write(traces, ["livecodebench"], settings.model_copy(update={"k": 2}), loaded={"livecodebench": bench})
    rows = {r["problem_id"]: r for r in map(json.loads, (tmp_path / "out" / "livecodebench.jsonl").read_text().split("\n")[:-1])}
    assert rows["abc999_a"]["correct"] == 1 and rows["3999"]["correct"] == 1
    samples = [json.loads(line) for line in (tmp_path / "out" / "livecodebench.samples.jsonl").read_text().split("\n") if line]
    verdicts = {(s["problem_id"], s["sample_index"]): s["verdicts"]["correctness"]["passed"] for s in samples}
    assert verdicts == {("abc999_a", 0): True, ("abc999_a", 1): False, ("3999", 0): True, ("3999", 1): False}
    assert summary["benchmarks"]["livecodebench"]["pass@1"] == 0.5 and summary["benchmarks"]["livecodebench"]["since"] == "2024-08"


# ---------------------------------------------------------------------------- k per benchmark, bad input


def test_k_per_benchmark():
    assert benchmarks.k_for(4, "aime24") == 4
    settings = EvalConfig(model="m", benchmarks=["aime24"], k="aime24=64,math500=4")
    assert benchmarks.k_for(settings.k, "aime24") == 64 and benchmarks.k_for(settings.k, "gpqa_diamond") == 4
    assert benchmarks.k_for(EvalConfig(model="m", benchmarks=["x"], k="aime24=64,8").k, "lcb") == 8
    assert EvalConfig(model="m", benchmarks=["x"], k="16").k == 16
    assert EvalConfig(model="m", benchmarks=["x"], k={"aime24": 64}).k == "aime24=64"


@pytest.mark.parametrize("k", ["aime24=0", "aime24=many", "0"])
def test_a_bad_k_is_one_line(k, tmp_path, distill_cli):
    code, _, err = distill_cli("eval", "m", "-b", GPQA, "--k", k, "-o", tmp_path / "out", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1")
    assert code == 2 and err.count("\n") == 1 and "k" in err, err


@pytest.mark.parametrize(("bench", "where", "field"), [
    ("nosuchbench", None, "benchmarks"),
    (FIXTURES / "gpqa_missing_option.csv", "gpqa_missing_option.csv:6", "Incorrect Answer 3"),
    (FIXTURES / "livecodebench_bad_tests.jsonl", "livecodebench_bad_tests.jsonl:2", "private_test_cases"),
])
def test_bad_benchmarks_are_one_line_naming_file_line_and_field(bench, where, field, tmp_path, distill_cli):
    out = tmp_path / "out"
    code, _, err = distill_cli("eval", "m", "-b", bench, "-o", out, "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1")
    assert code == 2 and err.count("\n") == 1, err
    assert field in err and (where is None or where in err), err
    if where is None:
        assert all(name in err for name in ("gpqa_diamond", "livecodebench", "aime24", "aime25", "math500")), err
    assert not out.exists()


def test_a_gpqa_row_without_its_gold_answer_is_one_line(tmp_path, distill_cli):
    bad = tmp_path / "gpqa.csv"
    bad.write_text(GPQA.read_text(encoding="utf-8").replace("?,+7,+2", "?,,+2"), encoding="utf-8")  # the 4th question (line 7) loses its gold
    code, _, err = distill_cli("eval", "m", "-b", bad, "-o", tmp_path / "out", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1")
    assert code == 2 and err.count("\n") == 1 and "gpqa.csv:7" in err and "'Correct Answer'" in err, err


def test_benchmarks_help_names_gpqa_diamond_and_livecodebench(distill_cli):
    code, out, _ = distill_cli("eval", "--help")
    text = " ".join(out.replace("│", " ").split())
    assert code == 0 and "GPQA Diamond" in text and "LiveCodeBench" in text
