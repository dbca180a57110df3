"""The sampling layer (issue 25): one SamplingConfig nested in every config that samples, today's recipe
keys and flags still valid, fingerprints of unchanged recipes unchanged, and one call that samples jobs
into a sink: in memory, and continuing a given completion (budget forcing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.core.config import validate
from distill.core.errors import InputError
from distill.evaluate.config import EvalConfig
from distill.filters.config import FilterConfig
from distill.pipeline.run import fingerprint
from distill.pipeline.stages import Context, registry
from teacher.config import GenerateConfig
from teacher.sampler import Job, MemorySink, render, sample
from teacher.sampling import SamplingConfig

RUN = Path("/nonexistent-run")
# Written with the recipe keys from before the nesting; the fingerprints are what the code before issue 25
# computed for them (main at 5aaccda), so a finished stage of an existing run directory stays done.
OLD_KEYS = {
    "generate": {"prompts": "/nonexistent/p.jsonl", "output": str(RUN / "generate" / "traces.jsonl"), "teacher": "deepseek-ai/DeepSeek-R1",
                 "backend": "openai", "base_url": "https://api.deepseek.com/v1", "n": 4, "temperature": 0.6, "max_tokens": 32768,
                 "concurrency": 128, "think_prefill": "<think>\n", "price_in": 0.55, "price_out": 2.19},
    "eval": {"model": str(RUN / "publish" / "model"), "benchmarks": ["aime24", "math500"], "k": 16, "temperature": 0.6, "top_p": 0.95,
             "max_tokens": 32768, "generate": {"tensor_parallel_size": 1, "max_model_len": 34816}, "output_dir": str(RUN / "eval")},
    "filter": {"input": str(RUN / "generate" / "traces.jsonl"), "output": str(RUN / "filter" / "kept.jsonl"),
               "rules": ["format", "correctness", "judge"],
               "judge": {"model": "j", "base_url": "http://127.0.0.1:9/v1", "temperature": 0.0, "max_tokens": 2048, "settings": {"max_retries": 3}}},
    "onpolicy": {"student": "qwen-1.5b", "teacher": "/nonexistent/teacher", "prompts": "/nonexistent/p.jsonl", "output_dir": str(RUN / "onpolicy"),
                 "temperature": 0.7, "max_new_tokens": 64},
}
BEFORE = {"generate": "4be29cbe326ac88e", "eval": "dd212e340099e834", "filter": "7a614c2f8f15ab85", "onpolicy": "dbfdb1a273203654"}


@pytest.mark.parametrize("name", sorted(OLD_KEYS))
def test_an_unchanged_recipe_keeps_its_fingerprint(name):
    config = registry()[name].config.model_validate(OLD_KEYS[name])
    assert fingerprint(name, config, Context(run_dir=RUN, stages=[name], doc={}), {}) == BEFORE[name]


def test_old_keys_land_in_the_nested_section():
    generate = GenerateConfig.model_validate(OLD_KEYS["generate"])
    assert generate.sampling.model == "deepseek-ai/DeepSeek-R1" and generate.sampling.concurrency == 128 and generate.teacher == generate.sampling.model
    nested = {k: v for k, v in OLD_KEYS["generate"].items() if k in ("prompts", "output", "think_prefill", "price_in", "price_out")}
    nested["sampling"] = {"model": "deepseek-ai/DeepSeek-R1", "backend": "openai", "base_url": "https://api.deepseek.com/v1", "n": 4,
                          "temperature": 0.6, "max_tokens": 32768, "concurrency": 128}
    assert GenerateConfig.model_validate(nested) == generate  # the new spelling is the same configuration
    evaluation = EvalConfig.model_validate(OLD_KEYS["eval"])
    assert (evaluation.k, evaluation.sampling.max_model_len, evaluation.sampling.tensor_parallel_size) == (16, 34816, 1)  # k stays eval's (per benchmark)
    judge = FilterConfig.model_validate(OLD_KEYS["filter"]).judge
    assert (judge.sampling.model, judge.sampling.max_tokens, judge.sampling.max_retries, judge.sampling.n) == ("j", 2048, 3, 1)
    assert judge.sampling.backend == "openai" and judge.sampling.temperature == 0.0  # the judge's own defaults
    student = registry()["onpolicy"].config.model_validate(OLD_KEYS["onpolicy"]).sampling
    assert (student.temperature, student.max_tokens, student.top_p) == (0.7, 64, 1.0)


def test_a_bad_old_key_is_reported_under_its_old_name(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("generate:\n  prompts: p.jsonl\n  output: o.jsonl\n  teacher: t\n  n: 0\n")
    with pytest.raises(InputError) as error:
        validate(GenerateConfig, {"prompts": "p.jsonl", "output": "o.jsonl", "teacher": "t", "n": 0}, where=str(recipe),
                 yaml_path=recipe, prefix=("generate",))
    assert error.value.field == "generate.n" and f"{recipe}:5" in str(error.value)


@pytest.fixture(scope="module")
def engine_config(tiny_qwen):
    config = SamplingConfig(model=str(tiny_qwen), n=2, max_tokens=6, temperature=1.0, top_p=1.0, seed=0, max_model_len=256,
                            kv_cache_memory_bytes=128 * 1024**2, enforce_eager=True)
    yield config
    from teacher.sampler import release

    release(config)


def test_jobs_sample_into_memory_and_continue_a_given_completion(engine_config):
    """Budget forcing's second step: the reasoning closed by hand, the model continues after it."""
    from transformers import AutoTokenizer

    question = [{"role": "user", "content": "What is 2 plus 3?"}]
    forced = "<think>\nadd them\n</think>\n\n"
    jobs = [Job("open", question, [0, 1], prefill="<think>\n"), Job("forced", question, [0, 1], prefill=forced, continuation=True)]
    sink = MemorySink()
    sample(engine_config, jobs, sink, keep_engine=True)
    tokenizer = AutoTokenizer.from_pretrained(engine_config.model)
    assert set(sink.samples) == {"open", "forced"} and not sink.skipped
    for job in jobs:
        samples = sink.samples[job.key]
        assert sorted(s.index for s in samples) == [0, 1]
        prompt = tokenizer.encode(render(job, tokenizer), add_special_tokens=False)
        for one in samples:
            assert one.completion.startswith(job.prefill)  # the completion carries what it continued from
            assert one.prompt_tokens == len(prompt) and one.tokens is not None and 0 < one.tokens <= engine_config.max_tokens
    assert render(jobs[1], tokenizer).endswith(forced)  # the model was asked to go on after the closed reasoning


def test_a_chat_endpoint_refuses_to_continue_a_completion():
    from distill.core.errors import StageError
    from teacher.backends.openai import _body

    config = SamplingConfig(model="m", backend="openai", base_url="http://127.0.0.1:9/v1")
    job = Job("k", [{"role": "user", "content": "q"}], [0], prefill="<think>\nabc\n</think>\n\n", continuation=True)
    with pytest.raises(StageError, match="cannot continue"):
        _body(job, 0, config, None)
    assert "prompt" not in _body(Job("k", job.messages, [0], prefill="<think>\n"), 0, config, None)
