"""Pushing to the hub: an unreachable hub is the environment (exit 1, one line saying so), a hub's refusal
shows its reason (a real huggingface_hub client against local stand-ins, no hub reachable)."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer

import pytest

from distill.core.errors import StageError
from distill.core.publishing import push

from ...conftest import JsonHandler, free_port


@pytest.fixture
def online(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # the tests' offline guard, lifted for 127.0.0.1


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "README.md").write_text("card")
    return tmp_path / "model"


def test_an_unreachable_hub_is_said_in_one_line(folder, online):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=f"http://127.0.0.1:{free_port()}", token="hf_not_a_real_token_123")  # nothing listens there
    with pytest.raises(StageError) as error:
        push(folder, "me/model", private=False, api=api)
    assert str(error.value).startswith("cannot reach the hub (http://127.0.0.1:"), str(error.value)
    assert "\n" not in str(error.value) and str(folder) in str(error.value)


def test_a_hub_refusal_shows_its_reason(folder, online):
    from huggingface_hub import HfApi

    class Refuse(JsonHandler):
        def do_POST(self):
            self._send(400, {"error": "Invalid repo name: names must be 96 characters or fewer"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = HfApi(endpoint=f"http://127.0.0.1:{server.server_address[1]}", token="hf_not_a_real_token_123")
        with pytest.raises(StageError) as error:
            push(folder, "me/model", private=False, api=api)
    finally:
        server.shutdown()
    message = str(error.value)
    assert message.startswith("upload to me/model failed: HTTP 400 Bad Request: Invalid repo name: names must be 96"), message
    assert "\n" not in message
