"""The R1 paper's table: which published row goes beside a student, the cells, and several eval folders combined."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.core.errors import InputError
from distill.core.records import Trace, sample_id
from distill.evaluate import benchmarks, paper_table
from distill.evaluate.config import EvalConfig
from distill.evaluate.stage import score_and_write

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "eval"


@pytest.mark.parametrize(("model", "student", "published"), [
    ("runs/a/final", "qwen-7b", "DeepSeek-R1-Distill-Qwen-7B"),
    ("runs/a/final", "Qwen/Qwen2.5-14B", "DeepSeek-R1-Distill-Qwen-14B"),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", None, "DeepSeek-R1-Distill-Qwen-1.5B"),
    ("/models/deepseek-r1-distill-llama-70b/", None, "DeepSeek-R1-Distill-Llama-70B"),
    ("runs/a/final", None, None),
    ("runs/a/final", "qwen-0.5b-of-my-own", None),
])
def test_the_published_row_follows_the_student(model, student, published):
    assert paper_table.published_model(model, student) == published


def test_the_published_row_is_read_from_train_json(tmp_path):
    (tmp_path / "run" / "final").mkdir(parents=True)
    (tmp_path / "run" / "train.json").write_text(json.dumps({"student": "llama-8b", "base_model": "meta-llama/Llama-3.1-8B"}))
    assert paper_table.published_model(str(tmp_path / "run" / "final")) == "DeepSeek-R1-Distill-Llama-8B"
    (tmp_path / "published").mkdir()
    (tmp_path / "published" / "README.md").write_text("---\nbase_model: Qwen/Qwen2.5-32B\nlicense: apache-2.0\n---\n\n# a student\n")
    assert paper_table.published_model(str(tmp_path / "published")) == "DeepSeek-R1-Distill-Qwen-32B"


def _summary(model: str, published: str | None, k_aime: int = 64) -> dict:
    def bench(p1, kind="answer", k=4, **more):
        return {"kind": kind, "k": k, "problems": 30, "samples": 30 * k, "pass@1": p1, "pass@1_stderr": 0.02, f"cons@{k}": p1 + 0.1,
                f"cons@{k}_stderr": 0.05, "no_answer": 0.1, "truncated": 0.05, "unclosed": 0.04, "mean_tokens": 900.0, "p90_tokens": 2000.0, **more}
    return {"model": model, "k": 4, "published": published, "benchmarks": {
        "aime24": bench(0.3, k=k_aime), "math500": bench(0.8), "gpqa_diamond": bench(0.35, "choice", shuffle_seed=0),
        "test6": bench(0.15, "code", since="2024-08", until="2025-01")}}


def test_markdown_has_the_papers_columns_our_errors_and_the_published_row():
    text = paper_table.markdown([_summary("runs/s1/final", "DeepSeek-R1-Distill-Qwen-1.5B")])
    lines = text.splitlines()
    assert lines[0] == ("| model | AIME 2024 pass@1 | AIME 2024 cons@64 | MATH-500 pass@1 | GPQA Diamond pass@1 | LiveCodeBench pass@1 |")
    assert lines[2] == "| final | 30.0 ± 2.0 | 40.0 ± 5.0 | 80.0 ± 2.0 | 35.0 ± 2.0 | 15.0 ± 2.0 |"
    assert lines[3] == "| DeepSeek-R1-Distill-Qwen-1.5B (published) | 28.9 | 52.7 | 83.9 | 33.8 | 16.9 |"
    assert "| final | test6 | 900 | 2000 | 5.0% | 4.0% | 10.0% |" in text
    assert "gpqa_diamond: options shuffled with seed 0" in text and "test6: contests 2024-08 to 2025-01" in text
    assert "Codeforces is not reproduced" in text
    # cons@k with fewer samples than the paper's 64 says so in its cell
    assert "| 40.0 ± 5.0 (k=4) |" in paper_table.markdown([_summary("m", None, k_aime=4)])


def test_eval_writes_the_table_and_records_the_published_model(tmp_path):
    """One eval over AIME and GPQA: summary.json keeps its shape and names the published row; paper_table.md is written."""
    settings = EvalConfig(model="runs/x/final", benchmarks=["aime24", str(FIXTURES / "gpqa_diamond.csv")], output_dir=tmp_path,
                          workers=1, k=2, student="qwen-1.5b")
    gpqa = benchmarks.load(str(FIXTURES / "gpqa_diamond.csv"), settings)
    aime = benchmarks.Benchmark("aime24", "answer", [])
    done = "<think>\nwork\n</think>\n\n"
    traces = [Trace(problem_id=f"aime24/p{j}", problem="2+2?", answer="4", id=sample_id(f"aime24/p{j}", i), sample_index=i,
                    completion=done + ("\\boxed{4}" if i == 0 else "\\boxed{5}"), finish_reason="stop", completion_tokens=10 * (i + 1))
              for j in range(2) for i in range(2)]
    traces += [Trace(**p.model_dump(exclude={"problem_id"}), problem_id=f"gpqa_diamond/{p.problem_id}", id=sample_id(p.problem_id, i),
                     sample_index=i, completion=f"{done}Answer: {p.answer}" if i == 0 else "<think>\nnever closed", finish_reason="stop" if i == 0 else "length",
                     completion_tokens=30) for p in gpqa.problems for i in range(2)]
    summary = score_and_write(traces, ["aime24", "gpqa_diamond"], settings, loaded={"aime24": aime, "gpqa_diamond": gpqa})
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written == summary and summary["published"] == "DeepSeek-R1-Distill-Qwen-1.5B"
    aime_figures, gpqa_figures = summary["benchmarks"]["aime24"], summary["benchmarks"]["gpqa_diamond"]
    assert aime_figures["pass@1"] == 0.5 and aime_figures["cons@2"] == 1.0 and aime_figures["p90_tokens"] == pytest.approx(20.0)
    assert gpqa_figures["pass@1"] == 0.5 and gpqa_figures["unclosed"] == 0.5 and gpqa_figures["truncated"] == 0.5 and gpqa_figures["no_answer"] == 0.5
    table = (tmp_path / "paper_table.md").read_text()
    assert "| final | 50.0 ± 0.0 | 100.0 ± 0.0 (k=2) | - | 50.0 ± 0.0 | - |" in table
    assert "DeepSeek-R1-Distill-Qwen-1.5B (published) | 28.9 | 52.7 | 83.9 | 33.8 | 16.9 |" in table


def test_several_eval_folders_make_one_table_and_one_chart(tmp_path, distill_cli):
    folders = []
    for name, published in (("student-a", "DeepSeek-R1-Distill-Qwen-7B"), ("student-b", None)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps(_summary(f"runs/{name}", published)))
        folders.append(folder)
    code, out, err = distill_cli("eval-table", *folders, "-o", tmp_path / "table")
    assert code == 0, err
    text = (tmp_path / "table.md").read_text()
    assert "| student-a |" in text and "| student-b |" in text and text.count("(published)") == 1
    assert (tmp_path / "table.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = distill_cli("eval-table", tmp_path / "nowhere", "-o", tmp_path / "other")
    assert code == 2 and "no summary.json" in err and not (tmp_path / "other.md").exists()


def test_a_folder_without_a_summary_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no summary.json"):
        paper_table.read_summary(tmp_path)
