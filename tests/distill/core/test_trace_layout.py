"""Public trace layouts read as they are: one fixture per preset (hand-written from each dataset's
card), their columns carried, collisions renamed and recorded, ids derived and stable, bad input
named by file, line and column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.core.data import FieldMap, iter_rows, read_problems, read_records, write_records
from distill.core.errors import InputError
from distill.core.r1_format import DELIMITER_PRESETS, split_completion
from distill.core.records import to_row
from distill.core.trace_layout import PRESETS, TraceLayout, read_traces

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "layouts"


def rows(preset: str) -> list[dict]:
    return [row for _, row in iter_rows(FIXTURES / f"{preset}.jsonl")]


def traces(preset: str, source: Path | None = None, **layout):
    return list(read_traces(str(source or FIXTURES / f"{preset}.jsonl"), TraceLayout(preset=preset, **layout)))


def write_jsonl(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return path


# (records, problems of the first two, answers, carried columns every record has)
EXPECTED = {
    "openr1": (5, ["What is 7 plus 7?", "What is 7 plus 7?"], ["14", "14", "14", "36", "36"],
               {"solution", "problem_type", "question_type", "orig_source", "correctness_math_verify", "orig_messages"}),
    "sharegpt": (4, ["Return your final response within \\boxed{}. What is 7 plus 7?",
                     "Return your final response within \\boxed{}. Compute 12 times 3."], [None] * 4, set()),
    "s1k": (3, ["What is 7 plus 7?", "Compute 12 times 3."], ["14", "36", "81"],
            {"solution", "cot_type", "source_type", "metadata", "cot"}),
    "messages": (3, ["What is 7 plus 7?", "Compute 12 times 3."], ["14", "36", "81"], {"model"}),
    "distill": (3, ["What is 7 plus 7?", "What is 7 plus 7?"], ["14", "14", "36"], {"difficulty"}),
}


@pytest.mark.parametrize("preset", list(EXPECTED))
def test_every_preset_reads_its_layout(preset):
    count, problems, answers, carried = EXPECTED[preset]
    read = traces(preset)
    assert len(read) == count
    assert [t.problem for t in read[:2]] == problems
    assert [t.answer for t in read] == answers
    for trace in read:
        assert carried <= set(trace.model_extra), (trace.id, set(trace.model_extra))
        parts = split_completion(trace.completion, DELIMITER_PRESETS[PRESETS[preset].delimiters])
        assert parts.reasoning.split()[0] in ("Seven", "Twelve", "Nine"), trace.completion[:80]
    assert len({t.id for t in read}) == count  # unique ids, derived where the set has none
    assert [t.id for t in traces(preset)] == [t.id for t in read]  # and the same on every read


def test_openr1_one_record_per_generation_with_its_own_per_generation_values():
    read = traces("openr1")
    uuid = rows("openr1")[0]["uuid"]
    assert [(t.problem_id, t.id, t.sample_index) for t in read[:3]] == [(uuid, f"{uuid}#{i}", i) for i in range(3)]
    assert [t.completion for t in read[:3]] == rows("openr1")[0]["generations"]
    assert [t.model_extra["correctness_math_verify"] for t in read] == [True, False, False, True, True]  # prior verdicts: provenance
    assert [t.model_extra["is_reasoning_complete"] for t in read] == [True, True, False, True, True]
    assert [t.finish_reason for t in read] == ["stop", "stop", "length", None, None]
    assert [t.model_extra["finish_reasons"] for t in read] == ["stop", "stop", "length", None, None]
    assert [t.model_extra["correctness_llama"] for t in read] == [None, None, None, True, True]  # null stays null
    assert all(t.verdicts is None for t in read)  # theirs never become ours
    assert all("generations" not in t.model_extra for t in read)  # consumed: each record holds its own


def test_collisions_keep_theirs_under_a_prefixed_name_recorded_in_the_record():
    first = traces("openr1")[0]
    assert first.model_extra["orig_source"] == "olympiads"
    assert first.model_extra["orig_messages"] == rows("openr1")[0]["messages"]
    assert first.source["renamed"] == {"source": "orig_source", "messages": "orig_messages"}
    assert first.source["row"] == "1" and first.messages is None  # ours stay ours
    s1k = traces("s1k")[2]
    assert s1k.model_extra["orig_messages"][1] == {"role": "assistant", "content": "81"} and s1k.messages is None
    own = traces("distill")
    assert own[0].model_extra["orig_source"] == "amc" and own[0].source == {"renamed": {"source": "orig_source"}}
    assert own[2].model_extra["tags"] == ["arithmetic", "multiplication"] and own[2].source is None


def test_chats_are_consumed_only_when_the_record_holds_all_of_them():
    share = traces("sharegpt")
    assert "conversations" not in share[0].model_extra and share[0].model_extra["system"].startswith("Your role")
    assert share[2].model_extra["conversations"] == rows("sharegpt")[2]["conversations"]  # a system turn: kept whole
    assert share[3].completion.startswith("<|begin_of_thought|>") and "<|end_of_thought|>" not in share[3].completion
    chat = traces("messages")
    assert chat[0].completion == f"<think>\n{rows('messages')[0]['messages'][1]['reasoning_content']}\n</think>\n\nThe sum is $\\boxed{{14}}$."
    assert "messages" not in chat[0].model_extra and "orig_messages" not in chat[0].model_extra
    assert chat[1].model_extra["orig_messages"][0] == {"role": "system", "content": "You are a careful math tutor."}
    assert chat[1].completion.startswith("<think>\nTwelve")
    assert chat[2].problem == "What is 9 squared?"  # OpenAI content parts


def test_s1k_composes_reasoning_and_attempt_in_the_chosen_delimiters():
    first = traces("s1k")[0]
    assert first.completion == f"<think>\n{rows('s1k')[0]['thinking_trajectories'][0]}\n</think>\n\nThe sum is $\\boxed{{14}}$."
    sky = traces("s1k", delimiters="sky-t1")[0]
    parts = split_completion(sky.completion, DELIMITER_PRESETS["sky-t1"])
    assert sky.completion.startswith("<|begin_of_thought|>") and parts.answer == "The sum is $\\boxed{14}$." and parts.closes == 1
    assert traces("s1k")[1].answer == "36"  # a bare solution is the answer itself


def test_columns_named_by_flags(tmp_path):
    # s1K-1.1 style: the DeepSeek trajectory and attempt under other names, an id column
    items = [{"question": r["question"], "solution": r["solution"], "qid": f"q{i}", "deepseek_thinking_trajectory": r["thinking_trajectories"][0],
              "deepseek_attempt": r["attempt"], "gemini_attempt": "n/a"} for i, r in enumerate(rows("s1k"))]
    source = write_jsonl(tmp_path / "s1k11.jsonl", items)
    read = traces("s1k", source, fields={"reasoning": "deepseek_thinking_trajectory", "completion": "deepseek_attempt", "id": "qid"})
    assert [t.problem_id for t in read] == ["q0", "q1", "q2"] and [t.model_extra for t in read][0] == {"solution": items[0]["solution"], "gemini_attempt": "n/a"}
    assert read[0].completion == traces("s1k")[0].completion
    # any list of completions with per-sample lists: the openr1 layout under other names (SkyThought's eval output)
    sky = [{"question": "What is 7 plus 7?", "gt": "14", "code": ["<|begin_of_thought|>\nadd\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\\boxed{14}\n<|end_of_solution|>"],
            "pred": ["14"], "score": [True]}]
    (trace,) = traces("openr1", write_jsonl(tmp_path / "sky.jsonl", sky), delimiters="sky-t1",
                      fields={"problem": "question", "answer": "gt", "completion": "code", "per_sample": ["pred", "score"]})
    assert (trace.answer, trace.model_extra) == ("14", {"pred": "14", "score": True})
    assert trace.sample_index == 0 and trace.id.endswith("#0")


@pytest.mark.parametrize(("preset", "row", "expected"), [
    ("openr1", {"problem": "x", "answer": "1", "generation": ["<think>a</think>1"]}, "bad.jsonl:1: field 'generations': missing; columns are"),
    ("openr1", {"problem": "x", "generations": ["<think>a</think>1", None]}, "bad.jsonl:1: field 'generations.1': expected text"),
    ("sharegpt", {"system": "s", "conversation": []}, "bad.jsonl:1: field 'conversations': missing"),
    ("sharegpt", {"conversations": [{"from": "user", "value": "hi"}]}, "bad.jsonl:1: field 'conversations': no assistant turn"),
    ("messages", {"messages": [{"role": "user", "content": "q"}, "answer"]}, "bad.jsonl:1: field 'messages.1': expected a turn"),
    ("s1k", {"question": "q", "thinking_trajectories": ["a", "b"], "attempt": ["x", "y", "z"]}, "field 'thinking_trajectories': 2 items for 3"),
    ("distill", {"problem": "q", "completon": "<think>a</think>1"}, "bad.jsonl:1: field 'completion': missing"),
    ("distill", {"problem": "q", "completion": "c", "finish_reason": "lenght"}, "bad.jsonl:1: field 'finish_reason'"),
])
def test_a_typo_in_a_required_column_is_still_an_error(tmp_path, preset, row, expected):
    source = write_jsonl(tmp_path / "bad.jsonl", [row])
    with pytest.raises(InputError) as err:
        traces(preset, source)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_carried_columns_survive_parquet_with_their_types(tmp_path):
    read = traces("openr1") + traces("distill")
    write_records(tmp_path / "t.parquet", read)
    back = list(read_records(tmp_path / "t.parquet"))
    assert [to_row(t) | {k: v for k, v in to_row(t).items() if v is None} for t in back] == [
        to_row(t) | {k: None for k in set().union(*(b.model_extra for b in back)) - set(to_row(t))} for t in read]
    import pyarrow.parquet as pq

    schema = pq.read_schema(tmp_path / "t.parquet")
    assert str(schema.field("correctness_math_verify").type) == "bool" and str(schema.field("difficulty").type) == "int64"
    assert str(schema.field("orig_source").type) == "string" and str(schema.field("finish_reasons").type) == "string"


def test_prompts_read_through_the_same_mapping():
    # generate's prompts and eval's benchmarks use FieldMap too: a chat's last user turn is the prompt
    problems = list(read_problems(FIXTURES / "messages.jsonl", FieldMap(conversation="messages")))
    assert [p.problem for p in problems] == ["What is 7 plus 7?", "Compute 12 times 3.", "What is 9 squared?"]
    assert [p.answer for p in problems] == ["14", "36", "81"]
    assert [p.problem_id for p in problems] == [t.problem_id for t in traces("messages")]  # same prompt, same id


def test_a_finish_reason_we_do_not_know_is_carried_not_lost(tmp_path):
    chat = [{"role": "user", "content": "What is 7 plus 7?"}, {"role": "assistant", "content": "<think>\nadd\n</think>\n\n14"}]
    items = [{"messages": chat, "stop_reason": "eos"}, {"messages": chat, "stop_reason": "length"}]
    first, second = traces("messages", write_jsonl(tmp_path / "m.jsonl", items), fields={"finish_reason": "stop_reason"})
    assert (first.finish_reason, first.model_extra) == (None, {"stop_reason": "eos"})
    assert (second.finish_reason, second.model_extra) == ("length", {})


def test_code_tests_in_a_public_format_are_read_by_the_same_mapping(tmp_path):
    # MBPP-style columns on a trace of ours become the canonical tests, as they do for prompts
    row = {"problem": "Write add(a, b).", "completion": "<think>\nsum\n</think>\n\n```python\ndef add(a, b):\n    return a + b\n```",
           "test_list": ["assert add(1, 2) == 3"], "difficulty": 1}
    (trace,) = traces("distill", write_jsonl(tmp_path / "c.jsonl", [row]))
    (problem,) = read_problems(tmp_path / "c.jsonl")
    assert trace.tests == problem.tests == {"type": "assert", "code": "assert add(1, 2) == 3\n", "entry_point": "add"}
    assert trace.domain == problem.domain == "code" and trace.model_extra == {"difficulty": 1}  # test_list consumed, not repeated
