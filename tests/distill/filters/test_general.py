"""Non-reasoning records: a `general` record may have an empty reasoning block or none at all (R1's
"no chain of thought for simple queries"); only such records; their SFT messages and training
examples are in R1's form for simple queries, `<think>\\n\\n</think>\\n\\nanswer`."""

from __future__ import annotations

from pathlib import Path

from distill.core.data import read_records, write_records
from distill.core.records import Trace
from distill.filters.config import FilterConfig
from distill.filters.stage import run
from students.dataset import conversation_of

R1_SIMPLE = "<think>\n\n</think>\n\nHello! How can I help you today?"


def record(index: int, completion: str, domain: str) -> Trace:
    return Trace(problem_id=f"g{index}", id=f"g{index}#0", sample_index=0, problem="hello", domain=domain, completion=completion)


def test_general_records_without_reasoning_pass_the_filter_in_r1_form(tmp_path: Path):
    traces = [
        record(0, R1_SIMPLE, "general"),  # an empty reasoning block
        record(1, "Hello! How can I help you today?", "general"),  # no block at all (a non-reasoning source)
        record(2, "Hello! How can I help you today?", "math"),  # reasoning domains must reason
        record(3, "<think>\n\n</think>\n\nHello!", "science"),
        record(4, "<think>\nThe user greets me, so I greet back.", "general"),  # an unfinished block is not an answer
    ]
    source = tmp_path / "in.jsonl"
    write_records(source, traces)
    config = FilterConfig(input=str(source), output=str(tmp_path / "kept.jsonl"), rejected=str(tmp_path / "rej.jsonl"),
                          rules=["format", "repetition", "language", "correctness"], correctness={"no_reference": "keep"})
    report = run(config)
    kept = {t.id: t for t in read_records(config.output)}
    rejected = {t.id: t for t in read_records(config.rejected)}
    assert sorted(kept) == ["g0#0", "g1#0"] and report["rejected_by"]["format"] == 3
    for trace in kept.values():
        assert trace.messages[-1]["content"] == R1_SIMPLE
    assert rejected["g2#0"].reason.startswith("no closing reasoning tag")
    assert rejected["g3#0"].reason == "empty reasoning"
    assert rejected["g4#0"].reason.startswith("no closing reasoning tag")


def test_training_examples_of_general_records_get_the_empty_reasoning_block():
    row = record(0, "Hello! How can I help you today?", "general").model_dump(exclude_none=True)
    assert conversation_of(row, "x.jsonl:1")[-1]["content"] == R1_SIMPLE
    math = record(1, "Some reasoning.\n</think>\n\nThe answer is 2.", "math").model_dump(exclude_none=True)
    assert conversation_of(math, "x.jsonl:2")[-1]["content"] == "<think>\nSome reasoning.\n</think>\n\nThe answer is 2."


def test_general_records_without_a_reference_survive_the_default_rules_and_math_ones_do_not(tmp_path: Path):
    traces = [record(i, f"<think>\n\n</think>\n\nHello {i}! How can I help you today?", "general") for i in range(3)]
    traces.append(Trace(problem_id="m0", id="m0#0", sample_index=0, problem="What is 2 + 2?", domain="math",
                        completion="<think>\nTwo and two make four.\n</think>\n\nThe answer is \\boxed{4}."))
    source = tmp_path / "in.jsonl"
    write_records(source, traces)
    config = FilterConfig(input=str(source), output=str(tmp_path / "kept.jsonl"), rejected=str(tmp_path / "rej.jsonl"))
    report = run(config)  # the default rules and options
    kept = {t.id: t for t in read_records(config.output)}
    rejected = {t.id: t for t in read_records(config.rejected)}
    assert sorted(kept) == ["g0#0", "g1#0", "g2#0"] and list(rejected) == ["m0#0"]
    assert kept["g0#0"].verdicts["correctness"].reason.startswith("not checkable: a general record without a reference")
    assert rejected["m0#0"].rejected_by == "correctness" and rejected["m0#0"].reason == "no reference answer or tests"
    assert report["not_checkable"] == {"kept": 3, "domains": {"general": 3}}
    # the majority vote is for checkable domains: general records stay not checkable under it
    config = FilterConfig(input=str(source), output=str(tmp_path / "kept2.jsonl"), correctness={"no_reference": "majority"})
    assert run(config)["not_checkable"]["kept"] == 3
