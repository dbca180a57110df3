"""The filter's worker layout: chunks, a hung verification inside a chunk, byte-identical output,
the majority vote for records without a reference, and the one-line error format."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distill.core.data import read_records, write_records
from distill.core.errors import InputError
from distill.core.records import Trace
from distill.core.verify import VerifyOptions
from distill.filters.config import FilterConfig
from distill.filters.majority import vote
from distill.filters.stage import run

ROOT = Path(__file__).resolve().parents[3]
REASONING = "Let me add seven and seven carefully, then check the sum once more to be sure it is right."


def make(answer_text: str, index: int, problem_id: str = "p1", answer: str | None = "14") -> Trace:
    completion = f"<think>\n{REASONING}\n</think>\n\nSo \\boxed{{{answer_text}}}."
    return Trace(problem_id=problem_id, id=f"{problem_id}#{index}", sample_index=index, problem="What is 7 plus 7?",
                 answer=answer, completion=completion)


def filter_file(tmp_path: Path, traces: list[Trace], **options) -> tuple[dict, list[Trace], list[Trace]]:
    source = tmp_path / "in.jsonl"
    write_records(source, traces)
    config = FilterConfig(input=str(source), output=str(tmp_path / "kept.jsonl"), rejected=str(tmp_path / "rej.jsonl"), **options)
    report = run(config)
    read = lambda path: list(read_records(path)) if Path(path).stat().st_size else []  # noqa: E731
    return report, read(config.output), read(config.rejected)


def test_a_killed_verification_costs_one_record_not_its_chunk(tmp_path):
    # A 1 ms hard deadline kills every verification that reaches math-verify (exact matches
    # such as "14" never do): two kills inside one chunk, and every record is still judged.
    traces = [make(text, 0, problem_id=f"p{i}") for i, text in enumerate(["14", "\\frac{28}{2}", "14", "13", "14"])]
    start = time.monotonic()
    report, kept, rejected = filter_file(tmp_path, traces, rules=["format", "correctness"], correctness={"timeout": 0.001})
    assert time.monotonic() - start < 60
    assert [t.id for t in kept] == ["p0#0", "p2#0", "p4#0"]  # the records after each killed one were judged
    assert [t.reason for t in rejected] == ["verifier timed out (killed after 0.001s)"] * 2
    assert [t.verdicts["format"].passed for t in rejected] == [True, True]  # the other rules still ran
    assert report["rejected_by"]["correctness"] == 2


def test_output_is_what_the_record_writer_writes_whatever_the_worker_count(tmp_path):
    traces = [make(str(12 + i % 4), i, problem_id=f"p{i % 7}") for i in range(60)]
    traces += [traces[2].model_copy(update={"id": "p2#99", "sample_index": 99})]  # one more duplicate
    outputs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        out.mkdir()
        report, kept, rejected = filter_file(out, traces, workers=workers)
        assert report["kept"] == 7 and report["rejected_by"]["dedup"] == 9
        outputs.append(((out / "kept.jsonl").read_bytes(), (out / "rej.jsonl").read_bytes()))
        # the parent splices the workers' JSON: it must be exactly what RecordWriter writes
        write_records(out / "again.jsonl", kept)
        assert (out / "again.jsonl").read_bytes() == (out / "kept.jsonl").read_bytes()
        write_records(out / "again.jsonl", rejected)
        assert (out / "again.jsonl").read_bytes() == (out / "rej.jsonl").read_bytes()
    assert outputs[0] == outputs[1]


def test_parquet_output(tmp_path):
    report, kept, rejected = filter_file(tmp_path, [make("14", 0), make("13", 1)], rules=["correctness"])
    config = FilterConfig(input=str(tmp_path / "in.jsonl"), output=str(tmp_path / "kept.parquet"), rules=["correctness"])
    run(config)
    (again,) = read_records(config.output)
    assert again == kept[0] and again.messages[1]["content"].startswith("<think>\n")


def test_vote_rules():
    options = VerifyOptions()
    result = vote(["14", "\\frac{28}{2}", None, "13", "14.0"], options)
    assert result["answer"] == "14" and result["votes"] == 3 and result["voters"] == 4 and result["samples"] == 5
    tie = vote(["12", "13", "13", "12"], options)
    assert tie["answer"] is None and tie["reason"] == "tie between 12 and 13, 2 votes each"
    assert vote(["12"], options)["answer"] is None  # one sample agreeing with itself is no evidence
    assert vote(["12"], options, min_votes=1)["answer"] == "12"
    assert vote([None, None], options)["reason"] == "no sample gave a final answer"


def test_majority_vote_for_records_without_a_reference(tmp_path):
    # samples of a problem are spread over the file; p3 has a reference and is checked against it
    rows = [("p1", "14"), ("p2", "12"), ("p1", "\\frac{28}{2}"), ("p3", "14"), ("p2", "13"), ("p1", "13"), ("p1", "14"), ("p4", "5")]
    traces = [make(text, i, problem_id=pid, answer="14" if pid == "p3" else None) for i, (pid, text) in enumerate(rows)]
    outputs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        out.mkdir()
        _, kept, rejected = filter_file(out, traces, rules=["format", "correctness"], workers=workers,
                                        correctness={"no_reference": "majority"})
        outputs.append((out / "kept.jsonl").read_bytes() + (out / "rej.jsonl").read_bytes())
    assert outputs[0] == outputs[1]
    assert [t.id for t in kept] == ["p1#0", "p1#2", "p3#3", "p1#6"]
    assert kept[1].verdicts["correctness"].reason == "answer \\frac{28}{2} = majority answer 14 (3 of 4 samples)"
    reasons = {t.id: t.reason for t in rejected}
    assert reasons["p1#5"] == "answer 13 != majority answer 14 (3 of 4 samples)"
    assert reasons["p2#1"] == reasons["p2#4"] == "no majority answer (tie between 12 and 13, 1 vote each)"
    assert reasons["p4#7"] == "no majority answer (5 has 1 vote(s) < 2)"


def test_majority_vote_on_one_sample_per_problem_says_it_cannot_apply(tmp_path, capfd):
    traces = [make("14", i, problem_id=f"q{i}", answer=None) for i in range(3)]  # OpenThoughts' shape: one sample each
    capfd.readouterr()
    _, kept, rejected = filter_file(tmp_path, traces, rules=["format", "correctness"], correctness={"no_reference": "majority"})
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("warning:")]  # the paths hold "majority" too
    assert lines == [f"warning: --no-reference majority cannot apply to {tmp_path / 'in.jsonl'}: no problem without a reference "
                     "has 2 samples to vote (3 records, at most 1 per problem), so they will all be rejected; give reference "
                     "answers, a judge (--judge-model) or --no-reference keep"]
    assert not kept and len(rejected) == 3


def test_majority_vote_reads_every_part_of_an_answer(tmp_path):
    # Two boxes are one answer: "\\boxed{3} and \\boxed{5}" must not vote with "\\boxed{2} and \\boxed{5}" as "5".
    finals = ["\\boxed{2} and \\boxed{5}", "\\boxed{3} and \\boxed{5}", "$\\boxed{5}$, $\\boxed{2}$", "\\boxed{2, 5}"]
    traces = [make("", i, problem_id="q", answer=None).model_copy(update={"completion": f"<think>\n{REASONING}\n</think>\n\nSo {text}."})
              for i, text in enumerate(finals)]
    _, kept, rejected = filter_file(tmp_path, traces, rules=["format", "correctness"], correctness={"no_reference": "majority"})
    assert [t.id for t in kept] == ["q#0", "q#2", "q#3"]
    assert [t.reason for t in rejected] == ["answer 3, 5 != majority answer 2, 5 (3 of 4 samples)"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_error_lines_have_no_stray_quotes(tmp_path):
    source = tmp_path / "in.jsonl"
    write_records(source, [make("14", 0)])
    bad_option = cli("filter", str(source), "-o", str(tmp_path / "k.jsonl"), "--length-unit", "lines")
    assert bad_option.returncode == 2
    assert bad_option.stderr == "error: command line: field 'length.unit': input should be 'tokens' or 'chars'\n"
    # a rule's own bad-input error is located once, by file and line
    no_tokens = cli("filter", str(source), "-o", str(tmp_path / "k.jsonl"), "--rules", "length", "--max-length", "5")
    assert no_tokens.returncode == 2
    assert no_tokens.stderr.endswith(f"error: {source}:1: field 'completion_tokens': missing: needed to measure length in "
                                     "tokens (give length.tokenizer or unit=chars)\n")
    assert json.loads(source.read_text())["id"] == "p1#0" and not (tmp_path / "k.jsonl").exists()


def test_a_sigkilled_filter_leaves_no_worker_behind_and_the_rerun_judges_every_record_once(tmp_path, process_tree):
    # Distinct fractions equal to 14 (or not): each record is new to dedup and goes through math-verify.
    traces = [make(f"\\frac{{{14 * (i + 2) + i % 3}}}{{{i + 2}}}", 0, problem_id=f"p{i}") for i in range(3000)]
    source = tmp_path / "in.jsonl"
    write_records(source, traces)
    kept, rejected = tmp_path / "kept.jsonl", tmp_path / "rej.jsonl"
    command = [sys.executable, "-m", "cli", "filter", str(source), "-o", str(kept), "--rejected", str(rejected), "--workers", "2"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(process_tree.descendants(process.pid)) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # until the forkserver and both workers run
    time.sleep(1.0)  # and are busy with chunks
    assert process.poll() is None, "the filter ended before it could be killed mid-run"
    recorded, survivors = process_tree.survivors_of_sigkill(process, wait_s=5.0)
    assert len(recorded) >= 3 and not survivors, f"{len(survivors)} of {len(recorded)} filter processes outlived it by 5 s"
    assert not kept.exists() and not rejected.exists()  # outputs appear whole or not at all

    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ids = [json.loads(line)["id"] for path in (kept, rejected) for line in path.read_text().split("\n") if line]
    assert sorted(ids) == sorted(t.id for t in traces)


def test_per_prompt_statistics_beside_the_kept_data(tmp_path):
    traces = [make("14", 0, "easy"), make("14", 1, "easy"), make("14", 0, "half"), make("13", 1, "half"),
              make("12", 0, "hard"), make("11", 1, "hard")]
    for trace, tokens in zip(traces, (30, 20, 50, 10, 40, 40), strict=True):
        trace.completion_tokens, trace.prompt_tokens = tokens, 7
    report, kept, _ = filter_file(tmp_path, traces, rules=["format", "correctness"], prompt_stats=str(tmp_path / "prompts.jsonl"))
    rows = {r["problem_id"]: r for r in map(json.loads, (tmp_path / "prompts.jsonl").read_text().split("\n")[:-1])}
    assert (rows["easy"]["drawn"], rows["easy"]["kept"], rows["easy"]["pass_rate"], rows["easy"]["always_solved"]) == (2, 2, 1.0, True)
    assert (rows["easy"]["shortest_correct_tokens"], rows["easy"]["shortest_correct_id"]) == (20, "easy#1")
    assert (rows["half"]["correct"], rows["half"]["pass_rate"], rows["half"]["shortest_correct_id"]) == (1, 0.5, "half#0")
    assert rows["hard"]["never_solved"] and rows["hard"]["shortest_correct_tokens"] is None
    assert (rows["half"]["prompt_tokens"], rows["half"]["completion_tokens"]) == (14, 60)
    assert report["prompt_stats"] == {"file": str(tmp_path / "prompts.jsonl"), "prompts": 3, "always_solved": 1, "never_solved": 1}
    # an output that is an input, or not JSONL, is refused before anything is read
    with pytest.raises(InputError):
        filter_file(tmp_path, traces, prompt_stats=str(tmp_path / "in.jsonl"))
    with pytest.raises(InputError, match="must end in .jsonl"):
        filter_file(tmp_path, traces, prompt_stats=str(tmp_path / "prompts.parquet"))
    # traces that do not count tokens (a public dump): the shortest by characters, token figures unknown
    bare = [make("14", 0, "easy"), make("14", 1, "easy")]
    bare[1].completion = bare[1].completion.replace("carefully, then check the sum once more to be sure it is right", "")
    filter_file(tmp_path, bare, rules=["format", "correctness"], prompt_stats=str(tmp_path / "bare.jsonl"))
    row = json.loads((tmp_path / "bare.jsonl").read_text())
    assert (row["shortest_correct_id"], row["shortest_correct_tokens"], row["prompt_tokens"]) == ("easy#1", None, None)
    assert row["shortest_correct_chars"] == len(bare[1].completion)
