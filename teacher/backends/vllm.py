"""The in-process vLLM engine backend.

Requests go straight to the engine (`LLM.llm_engine.add_request` / `step`), a few thousand
prompts ahead of the results, so the scheduler always has a full batch, and each prompt's
samples are written the moment they finish instead of when a whole `generate` call returns.
`sample(config, jobs, sink, keep_engine=True)` keeps the engine for the next run with the same engine options
(the evaluator samples several benchmarks in a row; it calls `release()` when done).
By default it is shut down after the run, so a training stage in the same process gets the GPU.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
from typing import Any

from distill.core import processes
from distill.core.errors import StageError
from distill.core.logprobs import TokenLogprobs
from distill.core.r1_format import restore_prefill
from teacher.backends import _vllm_memory
from teacher.sampler import Job, render
from teacher.sampling import SamplingConfig

remote = False  # the teacher is a local path or a hub id the engine loads
_ENGINES: dict[str, Any] = {}
# Prompts rendered and added between two engine steps: the first step starts after a few
# milliseconds of tokenizing instead of after the whole shard, and the backlog still grows
# far past what the scheduler can run at once.
_PROMPTS_PER_STEP = 64

ENGINE_FIELDS = (
    "tokenizer", "tensor_parallel_size", "pipeline_parallel_size", "distributed_executor_backend", "max_model_len",
    "gpu_memory_utilization", "kv_cache_memory_bytes", "dtype", "quantization", "enable_prefix_caching",
    "enforce_eager", "max_num_seqs", "trust_remote_code", "seed",
)


def engine_options(config: SamplingConfig) -> dict[str, Any]:
    """vllm.LLM keyword arguments: the options that were set, then engine_kwargs on top."""
    options = {name: getattr(config, name) for name in ENGINE_FIELDS if getattr(config, name) is not None}
    options["seed"] = config.seed if config.seed is not None else 0
    if config.logprobs > 20:  # vLLM's engine refuses requests for more than max_logprobs (default 20)
        options["max_logprobs"] = config.logprobs
    options.update(config.engine_kwargs)
    return options


def load_engine(config: SamplingConfig):
    """The vllm.LLM for this teacher and these engine options (cached for the process).

    Its engine core and workers die with this process, SIGKILL included (`processes.guard`);
    on CPU its KV cache is sized to the run (`_vllm_memory`); a start-up failure is one line.
    """
    options = engine_options(config)
    key = json.dumps([config.model, options, config.reproducible], sort_keys=True, default=str)
    if key not in _ENGINES:
        import vllm

        release()  # one engine at a time: two would compete for the same GPU memory
        processes.guard()
        options, chosen = _vllm_memory.plan(config.model, options)
        if chosen:
            print(chosen, file=sys.stderr, flush=True)
        try:
            with _engine_core_in_process(config.reproducible):
                _ENGINES[key] = vllm.LLM(config.model, **options)
        except Exception as exc:  # vLLM's start-up errors: a traceback here, the cause in its engine process's log
            raise StageError(_vllm_memory.startup_failure(exc)) from None
    return _ENGINES[key]


@contextlib.contextmanager
def _engine_core_in_process(enabled: bool):
    """With a separate engine-core process, which requests share a batch depends on timing, and
    the seeded sampler's draws with it; in-process scheduling is deterministic. vLLM reads the
    switch when the engine is built, so it is restored right after."""
    if not enabled:
        yield
        return
    saved = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)
        else:
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = saved


def release() -> None:
    """Shut cached engines down: their processes exit and give their (GPU) memory back."""
    import gc

    for llm in _ENGINES.values():
        client = getattr(llm.llm_engine, "engine_core", None)
        with contextlib.suppress(Exception):  # already gone: nothing to free
            client.shutdown()
    _ENGINES.clear()
    gc.collect()


def check(config: SamplingConfig) -> None:
    """Nothing to check before loading: vLLM validates its own options when the engine starts."""


def prepare(config: SamplingConfig) -> None:
    load_engine(config)


def token_logprobs(choice, k: int) -> TokenLogprobs | None:
    """A choice's FlatLogprobs as arrays: per position vLLM puts the sampled token first, then the top-k."""
    if not k:
        return None
    flat = choice.logprobs
    starts, ends = flat.start_indices, flat.end_indices
    return TokenLogprobs.build(
        list(choice.token_ids), [flat.logprobs[s] for s in starts],
        [flat.token_ids[s + 1:e] for s, e in zip(starts, ends, strict=True)],
        [flat.logprobs[s + 1:e] for s, e in zip(starts, ends, strict=True)], k,
    )


def generate(config: SamplingConfig, jobs: list[Job], sink: Any) -> None:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.sampling_params import RequestOutputKind

    llm = load_engine(config)
    engine = llm.llm_engine
    tokenizer = llm.get_tokenizer()
    context = llm.model_config.max_model_len
    params_cache: dict[tuple[int, int], Any] = {}
    pending: dict[str, Job] = {}
    queue = iter(jobs)
    ids = itertools.count()

    def params_for(n: int, max_tokens: int):
        key = (n, max_tokens)
        if key not in params_cache:
            params_cache[key] = SamplingParams(
                n=n, temperature=config.temperature, top_p=config.top_p, max_tokens=max_tokens,
                output_kind=RequestOutputKind.FINAL_ONLY,  # one output per request, when all its samples are done
                # the teacher's own distribution (vLLM's default logprobs_mode: raw, before temperature and top_p)
                logprobs=config.logprobs or None, flat_logprobs=True, stop=config.stop,
            )
        return params_cache[key]

    def top_up(limit: int) -> None:
        added = 0
        for job in queue:
            prompt_ids = tokenizer.encode(render(job, tokenizer), add_special_tokens=False)
            room = context - len(prompt_ids)
            if room <= 0:
                sink.skip(job, f"prompt longer than the context ({context} tokens)", len(job.indices))
                continue
            request_id = str(next(ids))
            try:
                # Past the context, vLLM would refuse the request: cap max_tokens at the room left.
                engine.add_request(request_id, TokensPrompt(prompt_token_ids=prompt_ids), params_for(len(job.indices), min(config.max_tokens, room)))
            except ValueError as exc:  # vLLM's validation errors: this prompt only
                sink.skip(job, f"rejected by vLLM: {str(exc).splitlines()[0][:120]}", len(job.indices))
                continue
            pending[request_id] = job
            added += 1
            if len(pending) >= config.max_pending or added >= limit:
                return

    try:
        top_up(_PROMPTS_PER_STEP)
        while pending and not sink.stopped:  # at the budget: what is in flight is aborted below
            for output in engine.step():
                job = pending.pop(output.request_id, None) if output.finished else None
                if job is None:
                    continue
                sink.emit_many(
                    job,
                    [
                        (job.indices[choice.index], restore_prefill(choice.text, job.prefill), choice.finish_reason,
                         len(choice.token_ids), token_logprobs(choice, config.logprobs))
                        for choice in output.outputs
                    ],
                    prompt_tokens=len(output.prompt_token_ids or ()),
                )
            if len(pending) < config.max_pending:
                top_up(_PROMPTS_PER_STEP)
    finally:
        if pending:  # interrupted: the cached engine must not carry these into the next run
            engine.abort_request(list(pending))
