"""Throughput of `distill generate` against a bare `vllm.LLM.generate` loop (issue 3 targets).

Same model, same prompts (rendered the same way), same sampling parameters:
  (a) --backend vllm    vs the bare loop: tokens/s ratio >= 0.95
  (b) --backend openai  driving a local vLLM server (python -m vllm.entrypoints.openai.api_server)
                        vs the bare loop: tokens/s ratio >= 0.85
Engine loads and server start-up are not timed. Run:  .venv/bin/python bench/bench_generate.py
(--model PATH to use a real model; default: the tiny random Qwen2 model, built on the spot).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
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


def start_server(model: str, args, scheduler) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # The server drops torch to 1 thread unless told; give it the threads the offline engine had.
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(os.cpu_count()))}
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--served-model-name", "teacher",
               "--host", "127.0.0.1", "--port", str(port), "--kv-cache-memory-bytes", str(args.kv_bytes),
               "--max-model-len", str(args.max_model_len), "--seed", "0",
               # vLLM gives its server half the offline engine's batch on CPU (128 vs 256 sequences):
               # same scheduler limits as the bare loop, or the comparison measures a config default.
               "--max-num-seqs", str(scheduler.max_num_seqs), "--max-num-batched-tokens", str(scheduler.max_num_batched_tokens)]
    log = open(Path(tempfile.gettempdir()) / f"bench_generate_server_{port}.log", "wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    import httpx

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process, f"http://127.0.0.1:{port}/v1"
        except httpx.TransportError:
            pass
        time.sleep(1)
    stop_server(process)
    raise SystemExit(f"server did not start; see {log.name}")


def stop_server(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


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
    parser.add_argument("--concurrency", type=int, default=512, help="openai: requests in flight (>= the server's max-num-seqs).")
    parser.add_argument("--repeats", type=int, default=2, help="Rounds of (bare, vllm, openai), interleaved: the load drifts.")
    parser.add_argument("--skip-openai", action="store_true")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from teacher.backends.vllm import load_engine, release
    from teacher.config import GenerateConfig
    from teacher.generate import load_problems, run
    from teacher.prompts import render

    work = Path(tempfile.mkdtemp(prefix="bench_generate_"))
    if args.model is None:
        from distill.quickstart.tiny import build_model

        heads = max(2, args.hidden_size // 64)  # head_dim 64: vLLM's CPU attention needs it
        args.model = str(build_model(work / "tiny-qwen", family="qwen", hidden_size=args.hidden_size, layers=args.layers,
                                     heads=heads, kv_heads=1, intermediate_size=2 * args.hidden_size))
    prompts = write_prompts(work / "prompts.jsonl", args.prompts)
    common = dict(prompts=str(prompts), teacher=args.model, n=args.n, max_tokens=args.max_tokens, fields={"id": "id"})
    vllm_config = GenerateConfig(**common, output=work / "vllm.jsonl", kv_cache_memory_bytes=args.kv_bytes, max_model_len=args.max_model_len)

    llm = load_engine(vllm_config)  # one engine, shared by the bare loop and distill generate
    tokenizer = llm.get_tokenizer()
    problems, _ = load_problems(vllm_config)
    prompt_ids = [tokenizer.encode(render(p, vllm_config, tokenizer), add_special_tokens=False) for p in problems]
    bare_loop(llm, prompt_ids[:16], args)  # warm-up
    scheduler = llm.llm_engine.vllm_config.scheduler_config
    process, url = (None, None) if args.skip_openai else start_server(args.model, args, scheduler)
    quiet = Console(file=open(os.devnull, "w"))
    results: dict[str, list[tuple[int, float]]] = {"bare": [], "vllm": [], "openai": []}
    try:
        if url:
            warm = GenerateConfig(**{**common, "teacher": "teacher"}, output=work / "warm.jsonl", backend="openai", base_url=url, limit=8)
            run(warm, console=quiet)
        for round_ in range(args.repeats):
            results["bare"].append(bare_loop(llm, prompt_ids, args))
            summary = run(vllm_config.model_copy(update={"output": work / f"vllm-{round_}.jsonl"}), console=quiet, keep_engine=True)
            results["vllm"].append((summary["completion_tokens"], summary["elapsed_s"]))
            if url:
                config = GenerateConfig(**{**common, "teacher": "teacher"}, output=work / f"openai-{round_}.jsonl",
                                        backend="openai", base_url=url, concurrency=args.concurrency)
                summary = run(config, console=quiet)
                results["openai"].append((summary["completion_tokens"], summary["elapsed_s"]))
    finally:
        if process is not None:
            stop_server(process)
        release()

    names = {"bare": "bare vllm.LLM.generate loop", "vllm": "distill generate --backend vllm",
             "openai": f"distill generate --backend openai (server, concurrency {args.concurrency})"}
    targets = {"vllm": 0.95, "openai": 0.85}
    bare_rates = [tokens / seconds for tokens, seconds in results["bare"]]
    table = Table(title=f"bench_generate: {args.prompts} prompts x n={args.n}, max_tokens {args.max_tokens}, "
                        f"{Path(args.model).name} ({args.hidden_size}x{args.layers}), {args.repeats} interleaved rounds")
    # Each round's run is compared with the same round's bare loop: the machine's load drifts between rounds.
    for column in ("run", "tokens/s per round", "median tokens/s", "ratio vs bare (median of rounds)", "target"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for key, runs in results.items():
        if not runs:
            continue
        rates = [tokens / seconds for tokens, seconds in runs]
        rate = median(rates)
        ratio = median([mine / bare for mine, bare in zip(rates, bare_rates, strict=True)])
        target = targets.get(key)
        verdict = "" if target is None else f">= {target} " + ("ok" if ratio >= target else "BELOW")
        table.add_row(names[key], ", ".join(f"{r:,.0f}" for r in rates), f"{rate:,.0f}", f"{ratio:.3f}", verdict)
    Console().print(table)


if __name__ == "__main__":
    main()
