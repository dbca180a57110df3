"""Prompt rendering, completion stitching, retry timing and the resumable output file (no engine)."""

from __future__ import annotations

import json

import pytest

from distill.core.errors import InputError
from distill.core.r1_format import restore_prefill
from distill.core.records import Problem
from teacher.backends.openai import backoff, endpoint_root, parse_retry_after
from teacher.config import GenerateConfig
from teacher.prompts import render, stitch, user_turn
from teacher.store import AppendWriter, mend, merge_shards, scan_output


def config(**overrides) -> GenerateConfig:
    return GenerateConfig(**{"prompts": "p.jsonl", "output": "o.jsonl", "teacher": "t", **overrides})


MATH = Problem(problem_id="a", problem="What is 1+1?")
CODE = Problem(problem_id="b", problem="Write a sort.", domain="code")


def test_general_prompts_get_a_chain_of_thought_instruction_only_when_asked():
    hello = Problem(problem_id="g", problem="Write a haiku about rain.", domain="general")
    assert user_turn(hello, config()) == "Write a haiku about rain."  # R1: simple queries get no chain of thought
    asked = user_turn(hello, config(general_cot=True))
    assert asked.startswith("Write a haiku about rain.\nBefore answering, think") and "</think>" in asked
    assert user_turn(MATH, config(general_cot=True)).endswith("\\boxed{}.")  # math keeps its own instruction only
    assert config(general_cot=True).teacher_info()["general_cot_instruction"].startswith("Before answering")
    assert "general_cot_instruction" not in config().teacher_info()


def test_user_turn_follows_r1_usage_notes():
    assert user_turn(MATH, config()) == "What is 1+1?\nPlease reason step by step, and put your final answer within \\boxed{}."
    assert user_turn(CODE, config()) == "Write a sort."  # the boxed instruction is for math only
    assert user_turn(MATH, config(math_instruction=None, prompt_template="Q: {problem}")) == "Q: What is 1+1?"
    with pytest.raises(ValueError, match="problem"):
        config(prompt_template="no placeholder")


@pytest.mark.parametrize("family", ["qwen", "llama"])
def test_render_opens_thinking_once_and_keeps_one_bos(family, tiny_qwen, tiny_llama):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen if family == "qwen" else tiny_llama)
    text = render(MATH, config(), tokenizer)
    assert text.endswith("<｜Assistant｜><think>\n") and text.count("<think>") == 1  # the template already prefills
    ids = tokenizer.encode(text, add_special_tokens=False)
    bos = tokenizer.bos_token_id
    assert (ids.count(bos) if bos is not None else 0) == (1 if family == "llama" else 0)

    tokenizer.chat_template = "{% for m in messages %}<｜User｜>{{ m['content'] }}{% endfor %}<｜Assistant｜>"
    assert render(MATH, config(), tokenizer).endswith("<｜Assistant｜><think>\n")  # prefilled here instead
    assert render(MATH, config(think_prefill=""), tokenizer).endswith("<｜Assistant｜>")


def test_completions_come_back_in_r1_form():
    assert restore_prefill("step 1\n</think>\n\n42", "<think>\n") == "<think>\nstep 1\n</think>\n\n42"
    assert restore_prefill("<think>\nx</think>y", "<think>\n") == "<think>\nx</think>y"  # never twice
    assert stitch({"reasoning_content": " think \n", "content": "\n42"}, "<think>\n") == "<think>\nthink\n</think>\n\n42"
    assert stitch({"reasoning": "think", "content": "42"}, "<think>\n") == "<think>\nthink\n</think>\n\n42"
    assert stitch({"reasoning": "cut off", "content": None}, "<think>\n") == "<think>\ncut off"  # unfinished stays open
    assert stitch({"content": "plain</think>\n\nans"}, "<think>\n") == "<think>\nplain</think>\n\nans"
    assert stitch({"text": "t"}, "") == "t"


def test_retry_timing():
    cfg = config(retry_base_delay=1.0, retry_max_delay=8.0).sampling  # the backends read the sampling layer's settings
    assert parse_retry_after("3") == 3.0 and parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 1  # a date in the past: now
    assert all(0.5 <= backoff(0, cfg, None) <= 1.0 for _ in range(50))
    assert all(4.0 <= backoff(10, cfg, None) <= 8.0 for _ in range(50))  # capped
    assert backoff(0, cfg, 30.0) == 30.0 and backoff(0, cfg, 10_000.0) == 300.0  # Retry-After is a floor, bounded
    assert endpoint_root("http://h:8000") == "http://h:8000/v1" and endpoint_root("https://api.x.com/v1/") == "https://api.x.com/v1"


def test_shard_spec_is_validated():
    assert config(shard="2/4").shard_index() == (2, 4) and config().shard_index() == (0, 1)
    for bad in ("4/4", "1-4", "a/b"):
        with pytest.raises(ValueError, match="shard"):
            config(shard=bad)


def _line(record_id: str) -> str:
    return json.dumps({"id": record_id, "problem_id": "a", "completion": "x", "teacher": {"model": "t"}}) + "\n"


def _scan_and_mend(out):
    state = scan_output(out)
    mend(out, state)
    return state


def test_scan_drops_only_a_torn_last_line(tmp_path):
    out = tmp_path / "o.jsonl"
    assert scan_output(out).done == set() and scan_output(out).teacher is None
    out.write_text(_line("a#0") + _line("a#1") + '{"id": "a#2", "comp')
    state = scan_output(out)
    assert state.done == {"a#0", "a#1"} and state.teacher == {"model": "t"} and state.torn > 0
    assert out.read_text().endswith('"comp')  # scanning changes nothing: a refused run leaves OUT as it was
    mend(out, state)
    assert out.read_text() == _line("a#0") + _line("a#1")

    out.write_text(_line("a#0") + "{broken}\n" + _line("a#1"))
    with pytest.raises(InputError, match=r"o\.jsonl:2"):
        scan_output(out)
    assert out.read_text() == _line("a#0") + "{broken}\n" + _line("a#1")  # not ours to repair

    # A crash cannot leave a whole line (records are written whole, newline last): a complete
    # last line that is not a record is not ours, and is never cut off.
    out.write_text(_line("a#0") + "{broken\n")
    with pytest.raises(InputError, match=r"o\.jsonl:2: not a trace file"):
        scan_output(out)
    assert out.read_text() == _line("a#0") + "{broken\n"
    out.write_text(_line("a#0") + "hello")  # nor is a last line that does not even start like a record
    with pytest.raises(InputError, match=r"o\.jsonl:2: not a trace file"):
        scan_output(out)

    # A whole last record that only lacks its newline is a record: kept, and given its newline.
    out.write_text(_line("a#0") + _line("a#1").rstrip("\n"))
    assert _scan_and_mend(out).done == {"a#0", "a#1"} and out.read_text() == _line("a#0") + _line("a#1")


def test_append_writer_and_merge(tmp_path):
    from distill.core.records import Trace

    def trace(pid: str, i: int) -> Trace:
        return Trace(problem_id=pid, problem="p", id=f"{pid}#{i}", sample_index=i, completion="<think>\nx\n</think>\n\ny")

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    with AppendWriter(a) as writer:
        writer.write([trace("x", 0), trace("x", 1)])
    with AppendWriter(b) as writer:
        writer.write([trace("y", 0), trace("x", 1)])
    with open(b, "a") as handle:
        handle.write('{"id": "y#1", "probl')  # a shard killed mid-write
    summary = merge_shards([a, b], tmp_path / "all.jsonl")
    assert summary["records"] == 3 and summary["duplicates_dropped"] == 1 and summary["torn_lines_dropped"] == 1
    with pytest.raises(InputError, match="is also an input"):
        merge_shards([a], a)
    with open(a, "a") as handle:  # one id twice within one shard: a mistake, named with both lines
        handle.write(a.read_text().splitlines()[0] + "\n")
    with pytest.raises(InputError, match=r"a\.jsonl:3: field 'id': duplicate id 'x#0' \(also at .*a\.jsonl:1\)"):
        merge_shards([a, b], tmp_path / "all2.jsonl")
