"""Fixtures of the teacher tests: a small HTTP proxy on 127.0.0.1 that fails some requests on purpose, in front of a real server.

POST requests follow a fixed cycle of faults so that a test knows exactly how many it caused:
HTTP 500, HTTP 429 with Retry-After, a connection dropped without an answer, a stall (no
answer until the client gives up). Everything else is forwarded to the upstream server.
Every answer closes its connection, unless `keep_alive`: then a connection that has served a
request is dropped when the next request arrives on it ("stale"), as a server does when its
keep-alive timeout closes an idle connection just as the client reuses it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from ..conftest import JsonHandler

# One entry per POST request, repeating; None passes the request through.
DEFAULT_CYCLE = (None, "500", None, "429", None, "drop", None, None, "stall", None)


class FaultProxy:
    def __init__(self, upstream: str, cycle: tuple[str | None, ...] = DEFAULT_CYCLE, stall_s: float = 30.0, retry_after: str = "1",
                 keep_alive: bool = False):
        self.upstream = upstream.rstrip("/")
        self.keep_alive = keep_alive
        self.cycle = cycle
        self.stall_s = stall_s
        self.retry_after = retry_after
        self.faults: Counter = Counter()
        self.posts = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _shutdown(self) -> None:
        """End stalled handlers and the upstream client, so nothing is left pending."""
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.aclose()

    def _serve(self) -> None:
        import httpx

        asyncio.set_event_loop(self._loop)
        self._client = httpx.AsyncClient(timeout=120)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers = dict(line.split(": ", 1) for line in header_lines if ": " in line)
                length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0"))
                body = await reader.readexactly(length) if length else b""
                if served:  # keep-alive: the idle connection was closed as this request came in
                    self.faults["stale"] += 1
                    writer.transport.abort()
                    return
                fault = None
                if method == "POST":
                    fault = self.cycle[self.posts % len(self.cycle)]
                    self.posts += 1
                if fault:
                    self.faults[fault] += 1
                if fault == "500":
                    await self._reply(writer, 500, b'{"error": "injected"}')
                elif fault == "429":
                    await self._reply(writer, 429, b'{"error": "slow down"}', {"Retry-After": self.retry_after})
                elif fault == "drop":
                    writer.transport.abort()  # reset, no answer
                elif fault == "stall":
                    await asyncio.sleep(self.stall_s)
                else:
                    forward = {k: v for k, v in headers.items() if k.lower() in ("content-type", "authorization")}
                    response = await self._client.request(method, self.upstream + path, content=body, headers=forward)
                    await self._reply(writer, response.status_code, response.content)
                served += 1
                if not self.keep_alive or fault in ("drop", "stall"):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _reply(self, writer: asyncio.StreamWriter, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        lines = [f"HTTP/1.1 {status} X", "Content-Type: application/json", f"Content-Length: {len(body)}",
                 "Connection: keep-alive" if self.keep_alive else "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()


@pytest.fixture
def fault_proxy():
    """The FaultProxy class (a context manager): `with fault_proxy(upstream) as proxy: proxy.url`."""
    return FaultProxy


class FakeEndpoint:
    """An OpenAI-compatible endpoint on 127.0.0.1 (stdlib http.server in a thread), no model behind it.

    mode "ok": every chat request gets a completion of `size` characters after `delay` seconds, boxing the
    answers in turn;
    mode "echo": every request is refused with HTTP `status` and an error body that echoes the
    request's headers, Authorization included (as some proxies and debug servers do).
    """

    def __init__(self, mode: str = "ok", status: int = 400, delay: float = 0.0, size: int = 40, answers: tuple[str, ...] = ("2",)):
        import http.server

        endpoint = self
        self.requests = 0

        class Handler(JsonHandler):
            def do_GET(self):
                self._send(200, {"data": [{"id": "m"}]})

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                endpoint.requests += 1
                if mode == "echo":
                    headers = ", ".join(f"{k}={v}" for k, v in self.headers.items())
                    self._send(status, {"error": {"message": f"bad request; headers were: {headers}"}})
                    return
                time.sleep(delay)
                answer = answers[(endpoint.requests - 1) % len(answers)]  # the k-th request answers answers[k % len]
                text = "<think>\n" + "x" * size + "\n</think>\n\n\\boxed{" + answer + "}"
                self._send(200, {"choices": [{"message": {"content": text}, "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": 7, "completion_tokens": 5}})

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that hung up (Ctrl-C tests): not news
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_endpoint():
    """The FakeEndpoint class (a context manager): `with fake_endpoint("echo") as server: server.url`."""
    return FakeEndpoint


@pytest.fixture
def prompts(tmp_path) -> Path:
    """Six prompts with answers, for the generate command-line tests against a stand-in endpoint."""
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"What is {i}+1?", "answer": str(i + 1)}) + "\n" for i in range(6)))
    return path


def generate_args(prompts: Path, out: Path, url: str, *extra: str) -> list[str]:
    """`distill generate` against an OpenAI-compatible endpoint: 2 samples a prompt, no retries."""
    return ["generate", str(prompts), "-o", str(out), "--teacher", "m", "--backend", "openai", "--base-url", url,
            "--field-id", "id", "--max-retries", "0", "--n", "2", *extra]
