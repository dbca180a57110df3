"""Reading log-probabilities out of OpenAI-compatible answers (the shapes vLLM's server sends, as in
tests/teacher/test_openai_backend.py against the real server), and the one-line failures."""

from __future__ import annotations

import math

import pytest

from distill.core.errors import StageError
from teacher.backends.openai import token_logprobs
from teacher.sampling import SamplingConfig


def config(api: str, k: int = 2) -> SamplingConfig:
    return SamplingConfig(model="t", backend="openai", base_url="http://x/v1", api=api, logprobs=k)


def test_chat_content_with_token_ids():
    choice = {"logprobs": {"content": [
        {"token": "token_id:5", "logprob": -0.1, "top_logprobs": [{"token": "token_id:5", "logprob": -0.1}, {"token": "token_id:9", "logprob": -2.5}]},
        {"token": "token_id:7", "logprob": -3.0, "top_logprobs": [{"token": "token_id:2", "logprob": -0.2}, {"token": "token_id:3", "logprob": -2.0}]},
    ]}}
    lp = token_logprobs(choice, config("chat"))
    assert lp.ids.tolist() == [5, 7] and lp.top_ids.tolist() == [[5, 9], [2, 3]]
    assert [round(float(x), 2) for x in lp.logprob] == [-0.1, -3.0]


def test_completions_top_dict_may_hold_the_sampled_token_too():
    choice = {"logprobs": {"tokens": ["token_id:7"], "token_logprobs": [-3.0],
                           "top_logprobs": [{"token_id:7": -3.0, "token_id:2": -0.2, "token_id:3": -2.0}]}}
    lp = token_logprobs(choice, config("completions"))
    assert lp.top_ids.tolist() == [[2, 3]] and math.isclose(float(lp.top_logprobs[0, 0]), -0.2, abs_tol=1e-3)


@pytest.mark.parametrize(("choice", "message"), [
    ({"message": {"content": "hi"}}, "returned no log-probabilities"),
    ({"logprobs": {"content": [{"token": "hi", "logprob": -0.1, "top_logprobs": []}]}}, "returns tokens as text, not ids"),
])
def test_answers_kd_cannot_use_stop_the_run_in_one_line(choice, message):
    with pytest.raises(StageError, match=message):
        token_logprobs(choice, config("chat"))


def test_nothing_is_read_without_logprobs():
    assert token_logprobs({"logprobs": None}, config("chat", k=0)) is None
