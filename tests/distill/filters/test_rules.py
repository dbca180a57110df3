"""The filter rules, the stage (order, workers, outputs, bad input), inspect, and the real traces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from distill.core.data import read_records, write_records
from distill.core.r1_format import DELIMITER_PRESETS, split_completion
from distill.core.records import Trace
from distill.filters.config import FilterConfig
from distill.filters.registry import RULES
from distill.filters.rules.language import check_language
from distill.filters.stage import run

ROOT = Path(__file__).resolve().parents[3]
ENGLISH = (
    "First, I need to find the sum of the two numbers. Let me think about this carefully, because the problem "
    "asks for the total and we should check that the result is consistent with the constraints given above. "
)


def make(completion: str, index: int = 0, problem: str = "What is 7 plus 7? Give the answer as a number.", **extra) -> Trace:
    values = {"problem_id": extra.pop("problem_id", "p1"), "answer": "14"} | extra
    return Trace(id=f"{values['problem_id']}#{index}", sample_index=index, problem=problem, completion=completion, **values)


def verdict(rule: str, trace: Trace, **options):
    config = FilterConfig(input="x.jsonl", output="y.jsonl", **options)
    parts = split_completion(trace.completion, DELIMITER_PRESETS[config.delimiters])
    return RULES[rule].check(trace, parts, config)


def r1(reasoning: str, answer: str = "So the answer is \\boxed{14}.") -> str:
    return f"<think>\n{reasoning}\n</think>\n\n{answer}"


# ---------------------------------------------------------------------------- rules


def test_format_rule():
    assert verdict("format", make(r1(ENGLISH))).passed
    assert verdict("format", make(r1(ENGLISH), finish_reason="length")).reason == "truncated (finish_reason: length)"
    assert "no closing" in verdict("format", make("<think>" + ENGLISH)).reason
    assert "2 closing" in verdict("format", make(r1(ENGLISH) + "</think>")).reason
    assert verdict("format", make(r1("", ""))).passed is False
    assert verdict("format", make(r1("", "Hello!"), domain="general")).passed  # simple queries: no chain of thought
    sky = "<|begin_of_thought|>\nthink\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\\boxed{14}"
    assert "truncated" in verdict("format", make(sky), delimiters="sky-t1").reason
    assert verdict("format", make(sky + "\n<|end_of_solution|>"), delimiters="sky-t1").passed


def test_length_rule():
    trace = make(r1(ENGLISH), completion_tokens=300)
    assert verdict("length", trace, length={"max": 200}).reason == "300 tokens > maximum 200"
    assert verdict("length", trace, length={"min": 10, "unit": "chars"}).passed


def test_length_in_tokens_of_a_tokenizer(tiny_qwen):
    trace = make(r1(ENGLISH))
    result = verdict("length", trace, length={"max": 5, "tokenizer": str(tiny_qwen)})
    assert not result.passed and result.score > 5


def test_language_catches_cross_script_mixing():
    chinese = "因此我们需要计算两个数的和然后检查结果是否正确这是关键步骤" * 3
    result = verdict("language", make(r1(ENGLISH + "\n\n" + chinese)))
    assert not result.passed and result.reason.startswith("chinese") and "reasoning" in result.reason
    english_in_chinese = make(r1("我们先计算。" + ENGLISH, "答案是 \\boxed{14}"), problem="七加七等于多少？请给出数字答案。")
    result = verdict("language", english_in_chinese)
    assert not result.passed and "target zh" in result.reason
    cyrillic = verdict("language", make(r1(ENGLISH + " Теперь нужно проверить ответ и посчитать сумму чисел ещё раз.")))
    assert not cyrillic.passed and cyrillic.reason.startswith("cyrillic")


def test_language_catches_same_script_mixing():
    french = ("Maintenant nous devons vérifier que la somme est correcte, et donc nous allons calculer "
              "le résultat avec une autre méthode pour être sûrs que la réponse est bonne. ") * 2
    result = verdict("language", make(r1(ENGLISH + "\n\n" + french)))
    assert not result.passed and result.reason.startswith("fr ")


def test_language_ignores_math_code_names_and_greek():
    noisy = ENGLISH + (
        "\n\nWe have $\\alpha + \\beta = \\frac{\\pi}{2}$ and \\[ \\int_0^1 x^2 \\, dx = \\tfrac13 \\]. "
        "Let θ = 30°, so sin θ = 1/2 and Δx = 0.5. The variable max_len_2 and numPeople are fine.\n\n"
        "```python\ndef solve(数据):\n    return sum(数据)\n```\n"
        "\\begin{align} f(x) &= \\mathrm{softmax}(Wx) \\end{align} `np.linalg.norm` ok. "
        "In Chinese the term is 勾股定理 as in the problem."
    )
    problem = "Use 勾股定理 to find the hypotenuse."
    result = verdict("language", make(r1(noisy), problem=problem))
    assert result.passed, result.reason


def test_readability_and_repetition_rules():
    assert verdict("readability", make(r1(ENGLISH + "\n```python\nprint(1)\n```"))).reason == "code fence in the reasoning"
    assert not verdict("readability", make(r1(ENGLISH * 60))).passed
    assert verdict("readability", make(r1(ENGLISH * 60), domain="general")).passed
    loop = ENGLISH + "\n" + "Wait, let me recompute the sum of the numbers again.\n" * 30
    assert "line repeated" in verdict("repetition", make(r1(loop))).reason
    tail = ENGLISH + "and so on " * 100
    assert not verdict("repetition", make(tail)).passed
    assert verdict("repetition", make(r1(ENGLISH * 5))).passed


def test_correctness_rule_reason():
    result = verdict("correctness", make(r1(ENGLISH, "So \\boxed{12}")))
    assert result.reason == "answer 12 != reference 14"
    assert not verdict("correctness", make(r1(ENGLISH), answer=None)).passed
    assert verdict("correctness", make(r1(ENGLISH), answer=None), correctness={"no_reference": "keep"}).passed


# ---------------------------------------------------------------------------- the stage


@pytest.fixture(scope="module")
def traces_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("filter") / "traces.jsonl"
    rows = []
    for p in range(6):
        good = r1(ENGLISH, "So \\boxed{14}.")
        rows += [
            make(good, 0, problem_id=f"p{p}"),
            make(good, 1, problem_id=f"p{p}"),  # duplicate of sample 0
            make(r1(ENGLISH, "So \\boxed{13}."), 2, problem_id=f"p{p}"),
            make("<think>" + ENGLISH, 3, problem_id=f"p{p}", finish_reason="length"),
            make(r1(ENGLISH + " So we get it. " + ENGLISH, "Thus \\boxed{14}."), 4, problem_id=f"p{p}"),
        ]
    write_records(path, rows)
    return path


def run_filter(traces_file: Path, tmp_path: Path, **options) -> tuple[dict, list[Trace], list[Trace]]:
    config = FilterConfig(input=str(traces_file), output=str(tmp_path / "kept.jsonl"), rejected=str(tmp_path / "rej.jsonl"),
                          report=str(tmp_path / "report.json"), **options)
    report = run(config)
    return report, records(config.output), records(config.rejected)


def records(path: str) -> list[Trace]:
    return list(read_records(path)) if Path(path).stat().st_size else []


def test_stage_outputs_report_and_determinism(traces_file, tmp_path):
    report, kept, rejected = run_filter(traces_file, tmp_path / "one", workers=1, dedup={"max_per_problem": 5})
    assert report["records_in"] == 30 and report["kept"] == 12
    assert report["rejected_by"]["format"] == 6 and report["rejected_by"]["correctness"] == 6
    assert report["rejected_by"]["dedup"] == 6
    assert json.loads((tmp_path / "one" / "report.json").read_text())["kept"] == 12
    assert all(t.messages[1]["content"].startswith("<think>\n") for t in kept)
    assert {t.rejected_by for t in rejected} == {"format", "correctness", "dedup"}
    assert next(t for t in rejected if t.rejected_by == "correctness").reason == "answer 13 != reference 14"
    _, kept2, rejected2 = run_filter(traces_file, tmp_path / "two", workers=2, dedup={"max_per_problem": 5})
    assert (tmp_path / "one" / "kept.jsonl").read_bytes() == (tmp_path / "two" / "kept.jsonl").read_bytes()
    assert (tmp_path / "one" / "rej.jsonl").read_bytes() == (tmp_path / "two" / "rej.jsonl").read_bytes()


def test_all_verdicts_and_max_per_problem(traces_file, tmp_path):
    report, kept, _ = run_filter(traces_file, tmp_path, all_verdicts=True, dedup={"max_per_problem": 1})
    assert report["kept"] == 6 and all(len(t.verdicts) == 9 for t in kept)  # every default rule, the judge ("no judge") included
    assert report["failed_by_rule"]["correctness"] >= 6 + 6  # wrong answers and the truncated ones


def test_decontaminate(traces_file, tmp_path):
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"problem": "Question: what is 7 plus 7? Give the answer as a number, please."}) + "\n")
    report, kept, rejected = run_filter(traces_file, tmp_path, rules=["decontaminate"], decontaminate={"benchmarks": [str(bench)], "ngram": 5})
    assert report["kept"] == 0
    assert rejected[0].reason == "shares 5-gram 'what is 7 plus 7' with bench.jsonl"


def test_sky_t1_messages_are_normalised_to_r1(tmp_path):
    sky = "<|begin_of_thought|>\n\nthink hard\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n\\boxed{14}\n\n<|end_of_solution|>"
    source = tmp_path / "sky.jsonl"
    write_records(source, [make(sky)])
    config = FilterConfig(input=str(source), output=str(tmp_path / "k.jsonl"), delimiters="sky-t1", rules=["format", "correctness"])
    run(config)
    (kept,) = read_records(config.output)
    assert kept.messages[1]["content"] == "<think>\nthink hard\n</think>\n\n\\boxed{14}"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.jsonl"
    good_line = json.dumps(make(r1(ENGLISH)).model_dump(mode="json", exclude_none=True))
    bad.write_text(good_line + "\n" + good_line.replace('"completion"', '"completon"') + "\n")
    out = tmp_path / "kept.jsonl"
    out.write_text("previous\n")
    result = cli("filter", str(bad), "-o", str(out), "--rejected", str(tmp_path / "rej.jsonl"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and f"{bad}:2" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert out.read_text() == "previous\n" and not (tmp_path / "rej.jsonl").exists()
    assert list(tmp_path.iterdir()) == [bad, out] or set(tmp_path.iterdir()) == {bad, out}
    unknown = cli("filter", str(bad), "-o", str(out), "--rules", "format,corectness")
    assert unknown.returncode == 2 and "unknown rule 'corectness'" in unknown.stderr


def test_cli_filter_and_inspect(traces_file, tmp_path):
    kept = tmp_path / "kept.jsonl"
    result = cli("filter", str(traces_file), "-o", str(kept), "--rejected", str(tmp_path / "rej.jsonl"), "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "filter: 12 of 30 kept" in result.stderr
    shown = cli("inspect", str(tmp_path / "rej.jsonl"), "--rejected-by", "correctness", "--sample", "1")
    assert shown.returncode == 0
    assert "answer 13 != reference 14" in shown.stdout and "18 records" in shown.stdout
    assert "Problem" in shown.stdout and "languages" in shown.stdout


# ---------------------------------------------------------------------------- real traces


def real_traces(shared_data: Path) -> list[Trace]:
    """The Sky-T1 traces as Trace records (MATH-500's original `answer`, else the harness's `gt`)."""
    out = []
    for name in ("math500", "minerva"):
        for line in (shared_data / "traces" / f"sky-t1-27b_{name}.jsonl").open():
            row = json.loads(line)
            out.append(Trace(problem_id=f"{name}-{row['idx']}", id=f"{name}-{row['idx']}", sample_index=0,
                             problem=row["question"], answer=str(row.get("answer") or row["gt"]),
                             completion=row["code"][0], source={"score": row["score"][0]}))
    return out


def test_real_traces_are_never_rejected_by_language(shared_data):
    config = FilterConfig(input="x.jsonl", output="y.jsonl", delimiters="sky-t1")
    for trace in real_traces(shared_data):
        parts = split_completion(trace.completion, DELIMITER_PRESETS["sky-t1"])
        result = check_language(trace, parts, config)
        assert result.passed, (trace.id, result.reason)


@pytest.mark.slow
def test_agreement_with_the_grader_on_real_traces(shared_data, tmp_path):
    source = tmp_path / "real.jsonl"
    traces = real_traces(shared_data)
    write_records(source, traces)
    config = FilterConfig(input=str(source), output=str(tmp_path / "k.jsonl"), rejected=str(tmp_path / "r.jsonl"),
                          rules=["format", "correctness"], delimiters="sky-t1", workers=2, all_verdicts=True)
    run(config)
    graded = records(config.output) + records(config.rejected)
    agreement = lambda traces: sum(t.verdicts["correctness"].passed == t.source["score"] for t in traces) / len(traces)  # noqa: E731
    checked = [t for t in graded if t.verdicts["format"].passed]
    assert len(checked) > 250 and agreement(checked) >= 0.95, agreement(checked)  # measured 0.955 (257/269)
    # every record, the answer fallbacks included (no tags: closing remarks after the answer)
    assert len(graded) == 772 and agreement(graded) >= 0.94, agreement(graded)  # measured 0.947 (731/772)
