"""The judge rule against a real vLLM server on 127.0.0.1 serving a tiny random model: its verdicts
are noise, so this tests the plumbing (requests, replies parsed, every judged record charged) and
the undecided path (a reply without a verdict line is undecided, counted, and rejected), and that a
re-run asks nothing."""

from __future__ import annotations

import pytest

from distill.core.data import read_records, write_records
from distill.core.records import Trace
from distill.filters.config import FilterConfig
from distill.filters.stage import run

pytestmark = pytest.mark.slow


@pytest.fixture
def judge_url(tiny_server):
    """The session's vLLM server (tests/conftest.py), which also answers to the name `judge`."""
    return tiny_server


def test_a_served_model_judges_what_the_rules_cannot(judge_url, tmp_path):
    traces = [Trace(problem_id=f"p{i}", id=f"p{i}#0", sample_index=0, problem=f"Why is the sky blue? ({i})", domain="science",
                    answer="Rayleigh scattering of sunlight" if i % 2 else None,
                    completion="<think>\nLight scatters.\n</think>\n\nBecause air molecules scatter blue light more strongly.")
              for i in range(4)]
    source = tmp_path / "in.jsonl"
    write_records(source, traces)
    config = FilterConfig(input=str(source), output=str(tmp_path / "kept.jsonl"), rejected=str(tmp_path / "rej.jsonl"),
                          rules=["format", "correctness", "judge"],
                          judge={"model": "judge", "base_url": judge_url, "cache": str(tmp_path / "cache.jsonl"), "max_tokens": 16,
                                 "temperature": 0.0, "settings": {"max_retries": 1}})
    report = run(config)
    judge = report["judge"]
    assert judge["records_judged"] == 4 and judge["asked"] == 4
    assert judge["correct"] + judge["incorrect"] + judge["undecided"] == 4
    assert judge["undecided"] >= 1  # 16 tokens of a random model end in no verdict line
    rejected = list(read_records(config.rejected)) if (tmp_path / "rej.jsonl").stat().st_size else []
    assert all(t.rejected_by == "judge" for t in rejected)
    assert sum(t.reason.startswith("undecided: ") for t in rejected) == judge["undecided"]
    cached = (tmp_path / "cache.jsonl").read_text().split("\n")[:-1]
    assert len(cached) == 4
    assert run(config)["judge"]["asked"] == 0  # a re-run asks nothing


def test_the_judge_can_be_the_in_process_vllm_engine(tiny_qwen, tmp_path):
    trace = Trace(problem_id="p0", id="p0#0", sample_index=0, problem="Why is the sky blue?", domain="science", answer="Rayleigh scattering",
                  completion="<think>\nLight scatters.\n</think>\n\nBecause air scatters blue light more.")
    source = tmp_path / "in.jsonl"
    write_records(source, [trace])
    config = FilterConfig(input=str(source), output=str(tmp_path / "kept.jsonl"), rules=["format", "correctness", "judge"], judge={
        "model": str(tiny_qwen), "backend": "vllm", "cache": str(tmp_path / "cache.jsonl"), "max_tokens": 8,
        "settings": {"kv_cache_memory_bytes": 256 * 1024**2, "enforce_eager": True, "max_model_len": 2048}})
    judge = run(config)["judge"]
    assert judge["asked"] == 1 and judge["correct"] + judge["incorrect"] + judge["undecided"] == 1
