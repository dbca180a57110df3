"""Secrets never shown: one redaction for messages, logs and files (distill.core.secrets)."""

from __future__ import annotations

import sys

from distill.core.secrets import redact, redact_values, register_env, scrubber


def test_known_values_and_token_shapes_are_redacted(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnopqrstuvwxyz")
    monkeypatch.setenv("MY_PROVIDER_KEY", "plainsecretvalue42")
    register_env("MY_PROVIDER_KEY")  # named by api_key_env: its value is a secret whatever it looks like
    text = ("headers: Authorization=Bearer zz9-top-secret; key plainsecretvalue42; token hf_abcdefghijklmnopqrstuvwxyz; "
            "other sk-proj-0123456789abcdef")
    shown = redact(text)
    for secret in ("zz9-top-secret", "plainsecretvalue42", "hf_abcdefghijklmnopqrstuvwxyz", "sk-proj-0123456789abcdef"):
        assert secret not in shown
    assert "Bearer <redacted>" in shown and "eos_token" in redact("eos_token tokens_seen")
    # records get the known values only: a trace that talks about "sk-" strings is data
    assert redact_values("the key plainsecretvalue42 and sk-example-string-123") == "the key <redacted> and sk-example-string-123"
    assert scrubber()("x plainsecretvalue42 y") == "x <redacted> y"


def test_stage_logs_are_redacted(tmp_path, monkeypatch):
    from distill.pipeline.log import stage_log

    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-deepseek-0123456789")
    with stage_log(tmp_path / "log.txt"):
        print("request failed: Authorization: Bearer sk-deepseek-0123456789", file=sys.stderr)
    text = (tmp_path / "log.txt").read_text()
    assert "sk-deepseek" not in text and "Authorization: Bearer <redacted>" in text
