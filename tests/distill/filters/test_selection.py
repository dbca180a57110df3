"""Selection after the rules: K samples per prompt (first, shortest, random), the pass-rate band,
the report's tokens saved, `--max-per-problem` as an alias, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from distill.core.data import read_records, write_records
from distill.core.records import Trace
from distill.filters.config import FilterConfig
from distill.filters.stage import run

ROOT = Path(__file__).resolve().parents[3]
STEP = "Let me add seven and seven, then check the sum. "


def make(problem_id: str, index: int, answer_text: str, steps: int, tokens: int | None = None) -> Trace:
    completion = f"<think>\n{STEP * steps}\n</think>\n\nSo \\boxed{{{answer_text}}}."
    return Trace(problem_id=problem_id, id=f"{problem_id}#{index}", sample_index=index, problem=f"What is 7 plus 7? ({problem_id})",
                 answer="14", completion=completion, completion_tokens=tokens if tokens is not None else 10 * steps)


def filter_file(tmp_path: Path, traces: list[Trace], **options) -> tuple[dict, list[Trace], list[Trace]]:
    source = tmp_path / "in.jsonl"
    write_records(source, traces)
    config = FilterConfig(input=str(source), output=str(tmp_path / "kept.jsonl"), rejected=str(tmp_path / "rej.jsonl"),
                          report=str(tmp_path / "report.json"), **options)
    report = run(config)
    read = lambda path: list(read_records(path)) if Path(path).stat().st_size else []  # noqa: E731
    return report, read(config.output), read(config.rejected)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


# Per prompt: a wrong answer that is the shortest of all, and correct samples of several lengths.
MIXED = [
    make("a", 0, "14", 5), make("a", 1, "13", 1), make("a", 2, "14", 3), make("a", 3, "14", 4),
    make("b", 0, "14", 2), make("b", 1, "14", 2), make("b", 2, "12", 1),
    make("c", 0, "11", 2), make("c", 1, "13", 3),
]


def test_per_prompt_1_select_shortest_keeps_the_shortest_correct_sample_of_each_prompt(tmp_path):
    source = tmp_path / "in.jsonl"
    write_records(source, MIXED)
    done = cli("filter", str(source), "-o", str(tmp_path / "kept.jsonl"), "--rules", "format,correctness",
               "--per-prompt", "1", "--select", "shortest", "--report", str(tmp_path / "report.json"), "--rejected", str(tmp_path / "rej.jsonl"))
    assert done.returncode == 0, done.stderr
    kept = list(read_records(tmp_path / "kept.jsonl"))
    assert [t.id for t in kept] == ["a#2", "b#0"]  # the shortest correct (a tie: the first); c has no correct sample
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["kept"] == 2 and report["rejected_by"]["selection"] == 3 and report["rejected_by"]["correctness"] == 4
    rejected = {t.id: t for t in read_records(tmp_path / "rej.jsonl")}
    assert rejected["a#0"].rejected_by == "selection" and rejected["a#0"].reason == "not among the 1 kept by --select shortest"
    assert rejected["a#0"].messages is None and rejected["a#0"].verdicts["correctness"].passed
    assert "selection" in done.stderr  # the summary table's row


def test_tokens_saved_is_the_input_token_sum_minus_the_kept_files(tmp_path):
    every_correct = [make(p, i, "14", steps) for p in ("x", "y") for i, steps in enumerate((4, 2, 7))]
    report, kept, _ = filter_file(tmp_path, every_correct, rules=["format", "correctness"], per_prompt=2, select="shortest")
    assert [t.id for t in kept] == ["x#0", "x#1", "y#0", "y#1"]
    input_tokens = sum(t.completion_tokens for t in every_correct)
    kept_tokens = sum(t.completion_tokens for t in read_records(tmp_path / "kept.jsonl"))
    selection = json.loads((tmp_path / "report.json").read_text())["selection"]
    assert selection["tokens_saved"] == input_tokens - kept_tokens == 140
    assert (selection["mean_tokens_before"], selection["mean_tokens_after"]) == (round(input_tokens / 6, 1), kept_tokens / 4)
    assert (selection["before"], selection["after"], selection["dropped_by_selection"]) == (6, 4, 2)
    assert report["kept"] == 4 and report["length_after"]["tokens"]["max"] == 40


def test_first_is_the_old_max_per_problem_and_random_is_seeded_whatever_the_worker_count(tmp_path):
    traces = [make(p, i, "14", i + 1) for p in ("x", "y", "z") for i in range(5)]
    for name in ("first", "alias", "r1", "r2"):
        (tmp_path / name).mkdir()
    _, first, _ = filter_file(tmp_path / "first", traces, rules=["format", "correctness"], per_prompt=2, select="first")
    assert [t.id for t in first] == ["x#0", "x#1", "y#0", "y#1", "z#0", "z#1"]
    _, alias, _ = filter_file(tmp_path / "alias", traces, rules=["format", "correctness"], dedup={"max_per_problem": 2})
    assert [t.id for t in alias] == [t.id for t in first]  # one mechanism: the dedup rule need not even be listed
    outputs = []
    for name, workers in (("r1", 1), ("r2", 2)):
        _, kept, _ = filter_file(tmp_path / name, traces, rules=["format", "correctness"], per_prompt=2, select="random",
                                 select_seed=3, workers=workers)
        assert sorted({t.problem_id for t in kept}) == ["x", "y", "z"] and len(kept) == 6
        outputs.append((tmp_path / name / "kept.jsonl").read_bytes())
    assert outputs[0] == outputs[1]


def test_pass_rate_band_keeps_the_prompts_inside_it(tmp_path):
    traces = [make("easy", i, "14", 2 + i) for i in range(4)]  # 4/4
    traces += [make("mid", i, "14" if i < 2 else "13", 2 + i) for i in range(4)]  # 2/4
    traces += [make("hard", i, "14" if i < 1 else "13", 2 + i) for i in range(4)]  # 1/4
    report, kept, rejected = filter_file(tmp_path, traces, rules=["format", "correctness"], pass_rate_min=0.5, pass_rate_max=0.75)
    assert {t.problem_id for t in kept} == {"mid"} and len(kept) == 2
    banded = [t for t in rejected if t.rejected_by == "pass_rate"]
    assert sorted(t.id for t in banded) == ["easy#0", "easy#1", "easy#2", "easy#3", "hard#0"]
    assert banded[0].reason == "pass rate 1 outside [0.5, 0.75]"
    assert report["selection"]["prompts_outside_band"] == 2 and report["kept"] == 2


def test_the_band_reads_pass_rates_from_a_file_when_given(tmp_path):
    """`--pass-rates FILE` (the student's own rates, `distill difficulty`): the band reads them, not the teacher's."""
    from distill.core.errors import InputError
    from distill.core.prompt_stats import PromptStats, write_rows

    traces = [make("easy", i, "14", 2 + i) for i in range(4)]  # the teacher: 4/4
    traces += [make("mid", i, "14" if i < 2 else "13", 2 + i) for i in range(4)]  # 2/4
    student = {"easy": (0, 4), "mid": (4, 4)}  # the student never solves easy, always mid
    stats = []
    for problem_id, (correct, drawn) in student.items():
        stats.append(PromptStats(problem_id))
        for i in range(drawn):
            stats[-1].add(f"{problem_id}#{i}", i < correct, i < correct, None, None)
    write_rows(str(tmp_path / "rates.jsonl"), stats)
    report, kept, rejected = filter_file(tmp_path, traces, rules=["format", "correctness"], pass_rate_max=0.5,
                                         pass_rates=str(tmp_path / "rates.jsonl"))
    assert [t.id for t in kept] == ["easy#0", "easy#1", "easy#2", "easy#3"]
    assert sorted(t.id for t in rejected if t.rejected_by == "pass_rate") == ["mid#0", "mid#1"]
    assert report["selection"]["prompts_outside_band"] == 1 and report["selection"]["pass_rates"] == str(tmp_path / "rates.jsonl")
    (tmp_path / "rates.jsonl").write_text(json.dumps({"problem_id": "easy", "correct": 0, "drawn": 4}) + "\n")
    with pytest.raises(InputError, match="prompt 'mid' has no pass rate in"):
        filter_file(tmp_path / "x", traces, rules=["format", "correctness"], pass_rate_max=0.5, pass_rates=str(tmp_path / "rates.jsonl"))
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["in.jsonl"]  # nothing written


def test_shortest_by_characters_when_the_records_count_no_tokens(tmp_path):
    traces = [make("a", 0, "14", 3), make("a", 1, "14", 2)]
    for trace in traces:
        trace.completion_tokens = None
    report, kept, _ = filter_file(tmp_path, traces, rules=["format", "correctness"], select="shortest", select_by="chars")
    assert [t.id for t in kept] == ["a#1"] and report["selection"]["tokens_saved"] is None
    assert report["selection"]["chars_saved"] == len(traces[0].completion)  # the dropped sample's


@pytest.mark.parametrize(("flags", "message"), [
    (["--per-prompt", "0", "--select", "first"], "error: command line: field 'per_prompt': input should be greater than or equal to 1\n"),
    (["--pass-rate-min", "0.8", "--pass-rate-max", "0.2"], "error: command line: value error, pass_rate_min 0.8 > pass_rate_max 0.2: the band is empty\n"),
    (["--pass-rates", "rates.jsonl", "--pass-rate-min", "0.8", "--pass-rate-max", "0.2"], "pass_rate_min 0.8 > pass_rate_max 0.2: the band is empty\n"),
    (["--pass-rates", "no-such-rates.jsonl", "--pass-rate-max", "0.5"], "field 'pass_rates': no such file (per-prompt statistics: "
     "`distill filter --prompt-stats FILE` or `distill difficulty`)\n"),
    (["--select", "shortest"], "field 'completion_tokens': missing: --select shortest measures tokens (give --tokenizer, or --select-by chars)\n"),
    (["--per-prompt", "2"], "--per-prompt 2 keeps 2 of each prompt's samples: say which with --select first|shortest|random\n"),
    (["--max-per-problem", "2", "--per-prompt", "3", "--select", "first"], "--max-per-problem n is --per-prompt n --select first: give one or the other\n"),
])
def test_bad_selection_is_one_line_and_writes_nothing(tmp_path, flags, message):
    source = tmp_path / "in.jsonl"
    write_records(source, [make("a", 0, "14", 2, tokens=None).model_copy(update={"completion_tokens": None})])
    done = cli("filter", str(source), "-o", str(tmp_path / "k.jsonl"), "--report", str(tmp_path / "r.json"), *flags)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and done.stderr.endswith(message), done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_the_teachers_log_probabilities_follow_the_records_selection_drops(tmp_path):
    from tests.distill.filters.test_logprobs_follow import frames_of, traces_with_logprobs

    frames = traces_with_logprobs(tmp_path / "in.jsonl", ["14", "13", "14", "12"])  # one sample per prompt: rates 1, 0, 1, 0
    config = FilterConfig(input=str(tmp_path / "in.jsonl"), output=str(tmp_path / "kept.jsonl"), rejected=str(tmp_path / "rej.jsonl"),
                          rules=["format", "correctness"], pass_rate_min=0.5, per_prompt=1, select="first")
    report = run(config)
    assert frames_of(tmp_path / "kept.jsonl") == {k: frames[k] for k in ("p0#0", "p2#0")}
    assert report["selection"]["dropped_by_band"] == 0 and report["kept"] == 2
    (tmp_path / "b").mkdir()
    run(config.model_copy(update={"pass_rate_min": 0.0, "pass_rate_max": 0.5, "output": str(tmp_path / "b" / "kept.jsonl"),
                                  "rejected": str(tmp_path / "b" / "rej.jsonl")}))  # now the band drops the solved ones
    assert not (tmp_path / "b" / "kept.logprobs").exists() and frames_of(tmp_path / "b" / "rej.jsonl") == frames
