"""Shared fixtures: tiny offline models (built once per session) and the real data in ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Nothing may reach a hub from tests; vLLM must not phone home.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data next to the checkout; DISTILL_SHARED_DATA points elsewhere (a git worktree's parent differs)
SHARED_DATA = Path(os.environ.get("DISTILL_SHARED_DATA") or ROOT.parent / "shared" / "data")


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory) -> Path:
    """A random-weight Qwen2-architecture model with a freshly trained tokenizer."""
    from distill.quickstart.tiny import build_model

    return build_model(tmp_path_factory.mktemp("models") / "tiny-qwen", family="qwen")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A random-weight Llama-architecture model with a freshly trained tokenizer."""
    from distill.quickstart.tiny import build_model

    return build_model(tmp_path_factory.mktemp("models") / "tiny-llama", family="llama")


@pytest.fixture(scope="session")
def released_qwen(tmp_path_factory) -> Path:
    """A random-weight Qwen2 model with Qwen2.5's real tokenizer (which llama.cpp's GGUF converter accepts)."""
    return _released("qwen", tmp_path_factory)


@pytest.fixture(scope="session")
def released_llama(tmp_path_factory) -> Path:
    """A random-weight Llama model with Llama-3.1's real tokenizer."""
    return _released("llama", tmp_path_factory)


def _released(family: str, tmp_path_factory) -> Path:
    from distill.quickstart.tiny import build_model

    return build_model(tmp_path_factory.mktemp("models") / f"released-{family}", family=family, tokenizer="released",
                       hidden_size=64, heads=1, kv_heads=1, intermediate_size=128)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real traces and benchmarks); tests that need it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available ({SHARED_DATA} is absent)")
    return SHARED_DATA


@pytest.fixture
def distill_cli(capfd, monkeypatch):
    """Run `distill ARGS...` in this process through cli.main: (exit code, stdout, stderr)."""
    import sys

    import cli

    def run(*args: str) -> tuple[int, str, str]:
        capfd.readouterr()
        monkeypatch.setattr(sys, "argv", ["distill", *map(str, args)])
        try:
            cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capfd.readouterr()
        return code, out, err

    return run
