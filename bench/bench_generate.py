"""Throughput of `distill generate` against the peers it replaces, side by side.

  (a) --backend vllm    vs a bare `vllm.LLM.generate` loop on the same engine: tokens/s ratio >= 0.95
  (b) --backend openai  vs a bare asyncio client in the shape of open-r1's scripts/generate_reasoning.py
                        (aiohttp on uvloop, one POST per sample, `concurrency` in flight, each result appended
                        to a JSONL file), both against the same local vLLM server (python -m
                        vllm.entrypoints.openai.api_server): same prompts, sampling and concurrency, runs
                        alternated: tokens/s ratio >= 0.90
Engine loads and server start-up are not timed. Run:  .venv/bin/python bench/bench_generate.py
(--model PATH to use a real model; default: the tiny random Qwen2 model, built on the spot).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distill.core import processes  # noqa: E402


def write_prompts(path: Path, count: int) -> Path:
    source = ROOT.parent / "shared" / "data" / "benchmarks" / "math500.jsonl"
    if source.exists():  # real MATH-500 problems where the shared data is present
        rows = [json.loads(line) for line in source.read_text().splitlines()][:count]
        rows = [{"id": row["unique_id"], "problem": row["problem"], "answer": row["answer"]} for row in rows]
    else:
        rows = []
    rows += [{"id": f"s{i}", "problem": f"What is {i} times {i + 3}?", "answer": str(i * (i + 3))} for i in range(count - len(rows))]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def bare_loop(llm, prompt_ids: list[list[int]], args) -> tuple[int, float]:
    """The baseline: one generate call over pre-tokenized prompts (tokenizing is not even timed)."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    params = SamplingParams(n=args.n, temperature=0.6, top_p=0.95, max_tokens=args.max_tokens)
    prompts = [TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids]
    start = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    elapsed = time.perf_counter() - start
    return sum(len(c.token_ids) for o in outputs for c in o.outputs), elapsed


def bare_client(url: str, requests: list[dict], out: Path, concurrency: int) -> tuple[int, float, int]:
    """The peer: open-r1's client loop, reduced to what it does per sample (aiohttp on uvloop, a
    connector sized to the concurrency, a POST per sample, the JSON appended to a file); its retry
    loop (sleep 10 s, up to 10 times) is kept. Returns (completion tokens, seconds, failed attempts)."""
    import aiohttp
    import uvloop

    async def main() -> tuple[int, float, int]:
        tokens = failures = 0
        gate = asyncio.Semaphore(concurrency)
        connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=3600)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600), connector=connector) as session:
            with open(out, "a") as sink:

                async def one(body: dict) -> None:
                    nonlocal tokens, failures
                    async with gate:
                        for _ in range(10):
                            try:
                                async with session.post(f"{url}/chat/completions", json=body) as response:
                                    data = await response.json(content_type=None)
                                break
                            except Exception:
                                failures += 1
                                await asyncio.sleep(10)
                    tokens += data["usage"]["completion_tokens"]
                    sink.write(json.dumps(data) + "\n")

                start = time.perf_counter()
                await asyncio.gather(*(one(body) for body in requests))
                return tokens, time.perf_counter() - start, failures

    return uvloop.run(main())


def start_server(model: str, args, scheduler):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # The server drops torch to 1 thread unless told; give it the threads the offline engine had.
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(os.cpu_count()))}
    command = ["vllm.entrypoints.openai.api_server", "--model", model, "--served-model-name", "teacher",
               "--host", "127.0.0.1", "--port", str(port), "--kv-cache-memory-bytes", str(args.kv_bytes),
               "--max-model-len", str(args.max_model_len), "--seed", "0",
               # vLLM gives its server half the offline engine's batch on CPU (128 vs 256 sequences):
               # same scheduler limits as the bare loop, or the comparison measures a config default.
               "--max-num-seqs", str(scheduler.max_num_seqs), "--max-num-batched-tokens", str(scheduler.max_num_batched_tokens)]
    log = open(Path(tempfile.gettempdir()) / f"bench_generate_server_{port}.log", "wb")
    # Its own process group, dying with this script (and its engine processes with it).
    process = processes.start(processes.python_command(*command), stdout=log, stderr=subprocess.STDOUT, env=env)
    import httpx

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process, f"http://127.0.0.1:{port}/v1"
        except httpx.TransportError:
            pass
        time.sleep(1)
    processes.stop(process)
    raise SystemExit(f"server did not start; see {log.name}")


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="Model path (default: build the tiny random Qwen2 model).")
    parser.add_argument("--hidden-size", type=int, default=128, help="Size of the built model (default: the tests' tiny model).")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--kv-bytes", type=int, default=1024**3)
    parser.add_argument("--concurrency", type=int, default=512, help="Endpoint clients: requests in flight (>= the server's max-num-seqs).")
    parser.add_argument("--repeats", type=int, default=2, help="Rounds, each running every contender once, alternated: the load drifts.")
    parser.add_argument("--skip-vllm", action="store_true", help="Only the endpoint comparison (b).")
    parser.add_argument("--skip-openai", action="store_true", help="Only the engine comparison (a).")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from teacher.backends.vllm import load_engine, release
    from teacher.config import GenerateConfig
    from teacher.generate import load_problems, run
    from teacher.prompts import messages_for, render

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench_generate_"))
    if args.model is None:
        from distill.quickstart.tiny import build_model

        heads = max(2, args.hidden_size // 64)  # head_dim 64: vLLM's CPU attention needs it
        args.model = str(build_model(work / "tiny-qwen", family="qwen", hidden_size=args.hidden_size, layers=args.layers,
                                     heads=heads, kv_heads=1, intermediate_size=2 * args.hidden_size))
    prompts = write_prompts(work / "prompts.jsonl", args.prompts)
    common = dict(prompts=str(prompts), teacher=args.model, n=args.n, max_tokens=args.max_tokens, fields={"id": "id"})
    vllm_config = GenerateConfig(**common, output=work / "vllm.jsonl", kv_cache_memory_bytes=args.kv_bytes, max_model_len=args.max_model_len)

    llm = load_engine(vllm_config.sampling)  # one engine, shared by the bare loop and distill generate
    tokenizer = llm.get_tokenizer()
    problems, _ = load_problems(vllm_config)
    prompt_ids = [tokenizer.encode(render(p, vllm_config, tokenizer), add_special_tokens=False) for p in problems]
    bare_loop(llm, prompt_ids[:16], args)  # warm-up
    scheduler = llm.llm_engine.vllm_config.scheduler_config
    if args.skip_vllm:
        release()  # the server gets the machine to itself
    process, url = (None, None) if args.skip_openai else start_server(args.model, args, scheduler)
    endpoint = dict(common, teacher="teacher", backend="openai", base_url=url, concurrency=args.concurrency)
    # The peer sends exactly what the endpoint backend sends: the same messages and sampling, one request per sample.
    bodies = [{"model": "teacher", "messages": messages_for(p, vllm_config), "max_tokens": args.max_tokens,
               "temperature": vllm_config.sampling.temperature, "top_p": vllm_config.sampling.top_p} for p in problems for _ in range(args.n)]
    quiet = Console(file=open(os.devnull, "w"))
    results: dict[str, list[tuple[int, float]]] = {"bare": [], "vllm": [], "peer": [], "openai": []}
    retries = {"openai": 0, "peer": 0}

    def engine_round(round_: int) -> None:
        results["bare"].append(bare_loop(llm, prompt_ids, args))
        summary = run(vllm_config.model_copy(update={"output": work / f"vllm-{round_}.jsonl"}), console=quiet, keep_engine=True)
        results["vllm"].append((summary["completion_tokens"], summary["elapsed_s"]))

    def endpoint_round(round_: int) -> None:
        contenders = ["peer", "openai"] if round_ % 2 == 0 else ["openai", "peer"]  # neither always goes first
        for name in contenders:
            if name == "peer":
                tokens, seconds, failed = bare_client(url, bodies, work / f"peer-{round_}.jsonl", args.concurrency)
                retries["peer"] += failed
            else:
                summary = run(GenerateConfig(**endpoint, output=work / f"openai-{round_}.jsonl"), console=quiet)
                tokens, seconds = summary["completion_tokens"], summary["elapsed_s"]
                retries["openai"] += summary["retries"]
            results[name].append((tokens, seconds))

    try:
        if url:
            run(GenerateConfig(**endpoint, output=work / "warm.jsonl", limit=8), console=quiet)  # the server's first requests are slow
        for round_ in range(args.repeats):
            if not args.skip_vllm:
                engine_round(round_)
            if url:
                endpoint_round(round_)
    finally:
        if process is not None:
            processes.stop(process, grace=30)
        release()

    rows = [("vllm", "bare", "distill generate --backend vllm", "bare vllm.LLM.generate loop", 0.95),
            ("openai", "peer", f"distill generate --backend openai (concurrency {args.concurrency})",
             f"open-r1-shaped asyncio client (concurrency {args.concurrency})", 0.90)]
    table = Table(title=f"bench_generate: {args.prompts} prompts x n={args.n}, max_tokens {args.max_tokens}, "
                        f"{Path(args.model).name} ({args.hidden_size}x{args.layers}), {args.repeats} alternated rounds")
    # Each round's run is compared with the same round's peer run: the machine's load drifts between rounds.
    for column in ("run", "tokens/s per round", "median tokens/s", "ratio vs peer (median of rounds)", "target", "failed requests"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for mine, peer, mine_name, peer_name, target in rows:
        if not results[mine]:
            continue
        mine_rates = [tokens / seconds for tokens, seconds in results[mine]]
        peer_rates = [tokens / seconds for tokens, seconds in results[peer]]
        ratio = median([a / b for a, b in zip(mine_rates, peer_rates, strict=True)])
        verdict = f">= {target} " + ("ok" if ratio >= target else "BELOW")
        table.add_row(peer_name, ", ".join(f"{r:,.0f}" for r in peer_rates), f"{median(peer_rates):,.0f}", "", "",
                      str(retries.get(peer, "")))
        table.add_row(mine_name, ", ".join(f"{r:,.0f}" for r in mine_rates), f"{median(mine_rates):,.0f}", f"{ratio:.3f}", verdict,
                      str(retries.get(mine, "")))
    Console(width=200).print(table)  # full names and figures, also when piped
    load_after = os.getloadavg()
    print(f"load average (1, 5, 15 min) before: {', '.join(f'{x:.1f}' for x in load_before)}; "
          f"after: {', '.join(f'{x:.1f}' for x in load_after)}; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
