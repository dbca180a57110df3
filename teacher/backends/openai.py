"""The OpenAI-compatible endpoint backend (`vllm serve`, SGLang, the DeepSeek API).

One request per sample (several APIs ignore `n`), `concurrency` workers in flight, each
request retried with exponential backoff and jitter on 429, 5xx, timeouts and dropped
connections, honouring Retry-After; a refused connection (nothing listens there) stops at once. A request that still fails after `max_retries` stops the
run (StageError): everything written so far stays, and a re-run resumes. The API key is read
from the environment variable named in the config and only ever put in a request header.

A request lost on a reused keep-alive connection before any answer came back is no fault:
the server closed that idle connection (vLLM's keep-alive timeout is 5 s) just as the request
went out on it, so the server never saw it. It is resent at once, without backoff, and not
counted as a retry (`_Client.post`).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from distill.core.errors import InputError, StageError
from distill.core.logprobs import TokenLogprobs
from distill.core.secrets import redact, register_env
from teacher.config import GenerateConfig
from teacher.progress import Job, Sink
from teacher.prompts import messages_for, render, stitch

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}
RETRY_AFTER_CEILING = 300.0  # a server asking for longer is treated as down
_STALE_RESENDS = 4  # in a row, for one request: more would mean the server drops requests, not idle connections
_CONTEXT_HINTS = ("context length", "context_length", "maximum context", "too long", "max_model_len", "input tokens")


class _Rejected(Exception):
    """The endpoint refused this one prompt (it is skipped, the run goes on)."""


def endpoint_root(base_url: str) -> str:
    """The API root; a bare host gets '/v1', as every OpenAI-compatible server serves it there."""
    url = base_url.rstrip("/")
    return url + "/v1" if urlsplit(url).path in ("", "/") else url


def backoff(attempt: int, config: GenerateConfig, retry_after: float | None) -> float:
    """Exponential backoff with jitter; a server's Retry-After is a floor."""
    delay = min(config.retry_max_delay, config.retry_base_delay * 2**attempt) * random.uniform(0.5, 1.0)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CEILING))
    return delay


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


remote = True  # the teacher is a served model's name
MAX_SERVED_LOGPROBS = 20  # the OpenAI API's top_logprobs limit, and vLLM's default --max-logprobs
_TOKEN_ID = "token_id:"  # how vLLM writes a token when asked for ids (return_tokens_as_token_ids)
_TOKENIZERS: dict[str, Any] = {}


def prepare(config: GenerateConfig) -> None:
    """Load what the run needs before anything is shown or written (bad names fail here)."""
    if config.api == "completions":
        _local_tokenizer(config)


def check(config: GenerateConfig) -> None:
    if not config.base_url:
        raise InputError("the openai backend needs --base-url (e.g. http://127.0.0.1:8000/v1)", field="base_url")
    if config.logprobs and "api.deepseek.com" in config.base_url:
        raise InputError("the DeepSeek API's reasoner returns no log-probabilities; drop --logprobs (serve the teacher with vLLM for KD)",
                         field="logprobs")
    if config.logprobs > MAX_SERVED_LOGPROBS:
        raise InputError(f"OpenAI-compatible servers return at most {MAX_SERVED_LOGPROBS} log-probabilities per token "
                         "(vLLM's default --max-logprobs); use --logprobs 20 or the vllm backend", field="logprobs")


def release() -> None:
    """Nothing is held between runs (connections close with each run)."""


def generate(config: GenerateConfig, jobs: list[Job], sink: Sink) -> None:
    asyncio.run(_generate(config, jobs, sink))


async def _generate(config: GenerateConfig, jobs: list[Job], sink: Sink) -> None:
    import aiohttp

    key = os.environ.get(config.api_key_env)
    register_env(config.api_key_env)  # whatever the variable is called, its value is never shown
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    tokenizer = _local_tokenizer(config) if config.api == "completions" else None
    # aiohttp, not httpx: at a few hundred requests in flight httpx's pure-Python client took
    # ~2.5x aiohttp's CPU per request (C parser), CPU the server on the same machine needs.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(30.0, config.request_timeout), sock_read=config.request_timeout)
    traces = aiohttp.TraceConfig()
    traces.on_connection_reuseconn.append(_on_reuse)
    connector = aiohttp.TCPConnector(limit=config.concurrency, limit_per_host=config.concurrency)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout, connector=connector, trace_configs=[traces]) as session:
        client = _Client(session, endpoint_root(config.base_url))
        await _preflight(client, config, sink)
        queue: asyncio.Queue = asyncio.Queue()
        for job in jobs:
            for index in job.indices:
                queue.put_nowait((job, index))
        workers = [asyncio.create_task(_worker(client, queue, config, sink, tokenizer)) for _ in range(min(config.concurrency, queue.qsize()))]
        try:
            done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # re-raise the first failure
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)


async def _worker(client, queue: asyncio.Queue, config: GenerateConfig, sink: Sink, tokenizer: Any) -> None:
    while not sink.stopped:  # at the budget no request starts; those in flight finish and are written
        try:
            job, index = queue.get_nowait()
        except asyncio.QueueEmpty:
            return
        try:
            data = await _request(client, _body(job, index, config, tokenizer), config, sink)
        except _Rejected as exc:
            sink.failed()
            sink.skip(job.problem, str(exc), 1)
            continue
        choice = (data.get("choices") or [{}])[0]
        finish = choice.get("finish_reason")
        message = choice.get("message") if config.api == "chat" else choice
        completion = stitch(message or {}, config.think_prefill)
        usage = data.get("usage") or {}
        sink.emit(job.problem, index, completion, finish, usage.get("completion_tokens"), prompt_tokens=usage.get("prompt_tokens"),
                  token_logprobs=token_logprobs(choice, config))


def _body(job: Job, index: int, config: GenerateConfig, tokenizer: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": config.teacher,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "max_tokens": config.max_tokens,
    }
    if config.api == "chat":
        body["messages"] = messages_for(job.problem, config)
    else:
        body["prompt"] = render(job.problem, config, tokenizer)
    if config.request_seed and config.seed is not None:
        body["seed"] = config.seed + index
    if config.logprobs:  # token ids, not their text: KD trains on the teacher's own tokens
        body.update({"logprobs": True, "top_logprobs": config.logprobs} if config.api == "chat" else {"logprobs": config.logprobs})
        body["return_tokens_as_token_ids"] = True
    body.update(config.extra_body)
    return body


def token_logprobs(choice: dict[str, Any], config: GenerateConfig) -> TokenLogprobs | None:
    """A choice's log-probabilities as arrays (chat: logprobs.content; completions: tokens and top_logprobs)."""
    if not config.logprobs:
        return None
    data = choice.get("logprobs")
    if not data:
        raise StageError("the endpoint returned no log-probabilities (the DeepSeek API's reasoner returns none); run without --logprobs")
    if config.api == "chat":
        steps = [(c["token"], c.get("logprob"), [(t["token"], t["logprob"]) for t in c.get("top_logprobs") or []])
                 for c in data.get("content") or []]
    else:  # the top dict may hold the sampled token as well: the k best by log-probability
        steps = [(token, logprob, sorted((top or {}).items(), key=lambda item: -item[1])[: config.logprobs])
                 for token, logprob, top in zip(data.get("tokens") or [], data.get("token_logprobs") or [], data.get("top_logprobs") or [], strict=False)]
    return TokenLogprobs.build(
        [_token_id(token) for token, _, _ in steps], [lp if lp is not None else float("-inf") for _, lp, _ in steps],
        [[_token_id(t) for t, _ in top] for _, _, top in steps], [[lp for _, lp in top] for _, _, top in steps], config.logprobs,
    )


def _token_id(token: str) -> int:
    if not token.startswith(_TOKEN_ID):
        raise StageError("the endpoint returns tokens as text, not ids (vLLM's return_tokens_as_token_ids); "
                         "KD needs the teacher's token ids: serve the teacher with vLLM")
    return int(token[len(_TOKEN_ID):])


async def _request(client, body: dict[str, Any], config: GenerateConfig, sink: Sink) -> dict[str, Any]:
    import aiohttp

    path = "/chat/completions" if config.api == "chat" else "/completions"
    for attempt in range(config.max_retries + 1):
        retry_after = None
        try:
            response = await client.post(path, body)
            if response.status_code == 200:
                data = response.json()
                if data.get("choices"):
                    return data
                problem = "200 without choices"
            elif response.status_code in RETRY_STATUS:
                problem = f"HTTP {response.status_code}"
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            else:
                _raise_for(response)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            # ValueError: a body cut short by a dropped connection is not JSON.
            _raise_if_refused(exc, config)
            problem = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        if attempt == config.max_retries:
            break
        sink.retried()
        await asyncio.sleep(backoff(attempt, config, retry_after))
    raise StageError(f"{endpoint_root(config.base_url)}{path} still failing after {config.max_retries} retries ({problem}); what was done is saved, re-run to resume")


@dataclass
class _Response:
    status_code: int
    headers: Any
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)  # ValueError when it is not JSON (a body cut short)


@dataclass
class _Client:
    """The run's session and the API root; a whole answer (status, headers, body) per request."""

    session: Any
    root: str

    async def get(self, path: str, timeout: float) -> _Response:
        import aiohttp

        async with self.session.get(self.root + path, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            return _Response(response.status, response.headers, await response.read())

    async def post(self, path: str, body: dict[str, Any]) -> _Response:
        """POST, resending at once a request that a reused connection lost before any answer came back
        (the server had closed it while idle). Each such loss closes that connection, so this ends:
        after `_STALE_RESENDS` the request goes out once more and its failure counts as usual."""
        import aiohttp

        for resend in range(_STALE_RESENDS + 1):
            reused: list[bool] = []  # set by _on_reuse when the request goes out on a pooled connection
            try:
                response = await self.session.post(self.root + path, json=body, trace_request_ctx=reused)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                if not reused or resend == _STALE_RESENDS:
                    raise  # a fresh connection failed: a real fault
                continue
            async with response:  # the answer had begun: whatever fails from here is a real fault
                return _Response(response.status, response.headers, await response.read())
        raise AssertionError("unreachable")


async def _on_reuse(session, context, params) -> None:
    context.trace_request_ctx.append(True)


def _raise_for(response) -> None:
    """4xx that retrying cannot fix: this prompt is skipped, or the run stops if no request can work."""
    code = response.status_code
    try:
        detail = response.json()
        detail = detail.get("error", detail) if isinstance(detail, dict) else detail
        detail = detail.get("message", detail) if isinstance(detail, dict) else detail
    except ValueError:
        detail = response.text
    detail = redact(" ".join(str(detail).split()))[:200]  # servers echo requests, Authorization included
    if code in (401, 403):
        raise StageError(f"the endpoint refused the API key (HTTP {code}); is it set in the environment variable named by api_key_env?")
    if code == 404:
        raise StageError(f"not found (HTTP 404: {detail}); check --base-url and the model name --teacher")
    if code in (400, 413, 422) and any(hint in detail.lower() for hint in _CONTEXT_HINTS):
        raise _Rejected("prompt longer than the context (endpoint)")
    if code in (400, 422):
        raise StageError(f"the endpoint rejected the request (HTTP {code}: {detail})")
    raise _Rejected(f"endpoint answered HTTP {code}")


async def _preflight(client, config: GenerateConfig, sink: Sink) -> None:
    """Fail fast, with a clear message, when the server cannot be reached at all."""
    import aiohttp

    for attempt in range(config.max_retries + 1):
        try:
            response = await client.get("/models", timeout=min(30.0, config.request_timeout))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            _raise_if_refused(exc, config)
            problem = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        else:
            if response.status_code in (401, 403):
                _raise_for(response)
            if response.status_code not in RETRY_STATUS:
                return  # reachable (a server without /models answers 404, which is fine here)
            problem = f"HTTP {response.status_code}"
        if attempt < config.max_retries:
            sink.retried()
            await asyncio.sleep(backoff(attempt, config, None))
    raise StageError(f"cannot reach {endpoint_root(config.base_url)} after {config.max_retries} retries ({problem})")


def _raise_if_refused(exc: BaseException, config: GenerateConfig) -> None:
    """A refused connection is no transient fault (nothing listens at that address): stop at once,
    where timeouts, dropped connections, 429 and 5xx are retried."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, ConnectionRefusedError):
        raise StageError(f"cannot reach {endpoint_root(config.base_url)}: connection refused (is the server running "
                         "at that address? check --base-url)") from None


def _local_tokenizer(config: GenerateConfig):
    from transformers import AutoTokenizer

    name = config.tokenizer or config.teacher
    if name in _TOKENIZERS:
        return _TOKENIZERS[name]
    try:
        _TOKENIZERS[name] = AutoTokenizer.from_pretrained(name, trust_remote_code=config.trust_remote_code)
        return _TOKENIZERS[name]
    except (OSError, ValueError) as exc:
        raise InputError(f"--api completions renders prompts here and cannot load tokenizer '{name}' ({type(exc).__name__}); set --tokenizer", field="tokenizer") from None
