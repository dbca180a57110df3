"""The llama.cpp backend: a GGUF file served by llama.cpp's OpenAI-compatible server.

`prepare` starts `python -m llama_cpp.server` (the `server` extra of llama-cpp-python) on
127.0.0.1 as a child that dies with us (`distill.core.processes`), `generate` samples through the
`openai` backend, `release` stops the server. The prompt is rendered by the server with the chat
template the GGUF carries, exactly as a user of llama.cpp gets it, so an evaluation scores the
file people download. `distill eval model.gguf` picks this backend by itself.

llama-cpp-python's server answers one request at a time; requests beyond the one running only
wait in its queue (against their timeout), so at most two are in flight, each with its own seed
(seed + sample index), so the samples are the same on every run. `engine_kwargs` become
server flags (`{"n_threads": 2}` -> `--n_threads 2`); `max_model_len` is the context window
(default: max_tokens plus room for the prompt).
"""

from __future__ import annotations

import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from distill.core.errors import InputError, StageError
from teacher.sampler import Job
from teacher.sampling import SamplingConfig

remote = False  # the teacher is a local .gguf file
PROMPT_ROOM = 2048  # context left for the prompt when max_model_len is not set
IN_FLIGHT = 2  # one generating, one queued: the server never waits for the client
STARTUP_S = 300.0  # model load; a big GGUF on a slow disk takes a while
# llama-cpp-python's server samples with top_k 40, min_p 0.05 and repeat_penalty 1.1 unless a request
# says otherwise: the protocol is temperature and top_p alone, as vLLM and the other backends sample.
NEUTRAL_SAMPLING = {"top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0}
_SERVER: dict[str, Any] = {}


def check(config: SamplingConfig) -> None:
    from importlib.util import find_spec

    path = Path(config.model)
    if path.suffix.lower() != ".gguf":
        raise InputError("the llamacpp backend serves a .gguf file", where=config.model, field="model")
    if find_spec("llama_cpp") is None or find_spec("uvicorn") is None:
        raise InputError("serving GGUF needs llama.cpp's server: pip install 'distill[gguf]'", field="backend")


def prepare(config: SamplingConfig) -> None:
    """Start the server for this file and wait until it answers (bad files fail here)."""
    if not Path(config.model).is_file():
        raise InputError("no such file", where=config.model, field="model")
    key = (config.model, _flags(config))
    if _SERVER.get("key") == key and _SERVER["process"].poll() is None:
        return
    release()
    _SERVER.update(_start(config), key=key)


def generate(config: SamplingConfig, jobs: list[Job], sink: Any) -> None:
    from teacher.backends import openai

    openai.generate(served(config, _SERVER["url"]), jobs, sink)


def served(config: SamplingConfig, url: str) -> SamplingConfig:
    """The settings the openai backend samples the server with."""
    # Seeded per request (seed + sample index): the samples do not depend on the order requests reach the server.
    return config.model_copy(update={"base_url": url, "concurrency": min(config.concurrency, IN_FLIGHT), "api": "chat",
                                     "request_seed": config.seed is not None, "extra_body": {**NEUTRAL_SAMPLING, **config.extra_body}})


def release() -> None:
    """Stop the server (its whole process group); safe to call twice."""
    from distill.core import processes

    process, log = _SERVER.pop("process", None), _SERVER.pop("log", None)
    _SERVER.clear()
    if process is not None:
        processes.stop(process)
    if log is not None:
        log.close()


def _flags(config: SamplingConfig) -> tuple[str, ...]:
    options: dict[str, Any] = {"n_ctx": config.max_model_len or config.max_tokens + PROMPT_ROOM, "verbose": False}
    if config.seed is not None:
        options["seed"] = config.seed
    options.update(config.engine_kwargs)
    return tuple(part for name, value in options.items() for part in (f"--{name}", str(value)))


def _start(config: SamplingConfig) -> dict[str, Any]:
    import httpx

    from distill.core import processes

    with socket.socket() as probe:  # a free port on the loopback interface
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tempfile.TemporaryFile(mode="w+", prefix="llama-server-")  # its request log would flood ours
    command = [sys.executable, "-m", "llama_cpp.server", "--model", config.model, "--model_alias", config.model,
               "--host", "127.0.0.1", "--port", str(port), *_flags(config)]
    process = processes.start(command, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            tail = " | ".join(line.strip() for line in log.read().strip().splitlines()[-3:])
            log.close()
            raise StageError(f"llama.cpp's server stopped while loading {config.model}: {tail or 'no output'}")
        try:
            if httpx.get(f"{url}/models", timeout=2.0).status_code == 200:
                return {"process": process, "log": log, "url": url}
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    processes.stop(process)
    log.close()
    raise StageError(f"llama.cpp's server did not answer within {STARTUP_S:.0f} s")
