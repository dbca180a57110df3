"""`reproducible: true` gives the same samples on every run (vLLM's engine core in-process)."""

from __future__ import annotations

import json

import pytest

from teacher.config import GenerateConfig
from teacher.generate import run


@pytest.mark.slow
def test_two_runs_give_identical_samples(tiny_qwen, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"problem": f"What is {i} + {i * 7}?", "answer": str(8 * i)}) + "\n" for i in range(24)))
    outputs = []
    for attempt in range(2):
        out = tmp_path / f"run{attempt}.jsonl"
        run(GenerateConfig(prompts=str(prompts), output=str(out), teacher=str(tiny_qwen), n=3, temperature=1.0, top_p=1.0,
                           max_tokens=32, max_model_len=256, kv_cache_memory_bytes=256 * 1024**2, enforce_eager=True,
                           reproducible=True, seed=7))
        outputs.append({row["id"]: row["completion"] for row in map(json.loads, out.read_text().split("\n")[:-1])})
    assert len(outputs[0]) == 72
    assert outputs[0] == outputs[1]
    assert len(set(outputs[0].values())) > 36  # sampled at T=1: the samples really differ from each other
