"""`distill generate`: sample traces from the teacher, resumable and sharded.

A thin stage over the sampling layer: read the prompts (through the field map), keep this
shard's, and hand them to `teacher.sampler.sample` with a record sink on OUT, which drops what
OUT already holds and writes every sample as soon as it is done. The budget is the sink's limit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.core import cost, lock, logprobs
from distill.core.data import count_rows, read_problems
from distill.core.errors import BudgetReached, InputError, Interrupted
from distill.core.hub import check_model
from distill.core.ids import UniqueIds
from distill.core.paths import Out, check_io, named_paths
from distill.core.records import Problem
from distill.core.stage import Command, Samples, Stage
from teacher import backends
from teacher.config import GenerateConfig
from teacher.prompts import job_for
from teacher.sampler import sample
from teacher.sink import TraceSink, summary_table
from teacher.store import check_side


def load_problems(config: GenerateConfig) -> tuple[list[Problem], int]:
    """This shard's prompts, each problem id once; (problems, duplicate rows dropped)."""
    shard, shards = config.shard_index()
    problems: list[Problem] = []
    seen: set[str] = set()
    explicit = UniqueIds(config.fields.id) if config.fields.id else None
    duplicates = 0
    wanted = _wanted_ids(config.problem_ids)
    for row_index, problem in enumerate(read_problems(config.prompts, config.fields, config.split)):
        if explicit is not None:  # an id column: two rows with one id are a mistake, not a repeat
            explicit.see(problem.problem_id, _where(config.prompts, problem))
        # Round-robin on the row index: balanced shards, and long prompts spread evenly.
        if row_index % shards != shard:
            continue
        if wanted is not None and problem.problem_id not in wanted:
            continue
        if problem.problem_id in seen:
            duplicates += 1  # same id twice would give two different samples the same id
            continue
        seen.add(problem.problem_id)
        problems.append(problem)
        if config.limit is not None and len(problems) >= config.limit:
            break
    return problems, duplicates


def _wanted_ids(path: str | None) -> set[str] | None:
    if path is None:
        return None
    try:
        return {line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()}
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the problem ids ({type(exc).__name__})", where=path, field="problem_ids") from None


def _where(source: str, problem: Problem) -> str:
    row = (problem.source or {}).get("row")
    return f"{source}:{row}" if str(source).endswith((".jsonl", ".ndjson")) else f"{source} row {row}"


def check(config: GenerateConfig) -> None:
    """Cheap checks of the configuration, before anything is loaded or written."""
    if config.output.suffix.lower() != ".jsonl":
        raise InputError("generate appends to its output, so it must be .jsonl (merge can write Parquet)", where=str(config.output), field="output")
    outputs = [Out(config.output, "output")] + ([Out(logprobs.side_path(config.output), "logprobs")] if config.sampling.logprobs else [])
    check_io(outputs, named_paths(config, skip=("output",)))
    backends.load(config.sampling.backend).check(config.sampling)


def run(config: GenerateConfig, console: Any = None, keep_engine: bool = False) -> dict[str, Any]:
    """Sample `n` completions per prompt into `config.output`; returns the summary.

    keep_engine: leave the vLLM engine loaded for the next run with the same engine options
    (call `teacher.backends.vllm.release()` when done); by default it is shut down.
    """
    check(config)
    with lock.hold(config.output, field="output"):  # one writer: a second would sample everything again
        return _sample(config, console, keep_engine)


def _sample(config: GenerateConfig, console: Any, keep_engine: bool) -> dict[str, Any]:
    sampling = config.sampling
    problems, duplicates = load_problems(config)  # bad input fails here, before OUT is touched
    sink = TraceSink(config.output, config.teacher_info(), side=bool(sampling.logprobs), **({"console": console} if console else {}))
    existing = sink.state
    if existing.teacher and existing.teacher.get("model") != sampling.model:
        raise InputError(
            f"holds samples of teacher '{existing.teacher.get('model')}', not '{sampling.model}'; write to a new file",
            where=str(config.output),
        )
    check_side(config.output, existing, sampling.logprobs)
    if not backends.load(sampling.backend).remote:  # a local engine loads the teacher by path or hub id: fail fast, in one line
        check_model(sampling.model, "teacher")
        if sampling.tokenizer:
            check_model(sampling.tokenizer, "tokenizer")
    jobs = sink.missing([job_for(problem, list(range(sampling.n)), config) for problem in problems])
    wanted = len(problems) * sampling.n
    summary: dict[str, Any] = {
        "output": str(config.output),
        "teacher": sampling.model,
        "backend": sampling.backend,
        "shard": config.shard,
        "prompts": len(problems),
        "duplicate_prompts_dropped": duplicates,
        "prompts_with_work": len(jobs),
        "samples_wanted": wanted,
        "samples_existing": wanted - sum(len(job.indices) for job in jobs),
        "torn_bytes_dropped": existing.torn,
    }
    before = existing.spent  # the budget covers the whole output: a re-run does not spend it again
    already = cost.over_budget(before, config) if jobs else None
    if already:
        raise BudgetReached(f"{already} by the samples in {config.output}; nothing sampled, raise the budget to continue",
                            {**summary, **cost.figures(before, config, "spent_")})
    sink.limit = lambda prompt, completion: cost.over_budget(before + cost.Spend(prompt, completion), config)
    try:
        sample(sampling, jobs, sink, keep_engine=keep_engine)
    except KeyboardInterrupt:
        raise Interrupted(f"{sink.written} samples written to {config.output}; re-run the same command to resume") from None
    elapsed = sink.elapsed()
    spent = before + cost.Spend(sink.prompt_tokens, sink.tokens)
    summary.update(
        samples_written=sink.samples,
        samples_skipped=sink.skipped_samples,
        skipped_prompts=dict(sink.skipped),
        **cost.figures(cost.Spend(sink.prompt_tokens, sink.tokens), config),
        **cost.figures(spent, config, "spent_"),
        tokens_per_s=sink.tokens / elapsed if elapsed > 0 else 0.0,
        finish_reasons=dict(sink.finish),
        retries=sink.retries,
        errors=sink.errors,
        elapsed_s=elapsed,
        # Said with the final spend: the samples that finished with the one that reached the budget are written too.
        stopped=sink.stopped and (cost.over_budget(spent, config) or sink.stopped),
    )
    if sampling.logprobs:
        side = logprobs.side_path(config.output)
        summary["logprobs_file"] = str(side)
        summary["logprobs_bytes_per_token"] = round(sink.logprob_bytes / sink.tokens, 1) if sink.tokens else None
    if sink.stopped:
        raise BudgetReached(f"{summary['stopped']}: {sink.written} samples written to {config.output}; "
                            "raise the budget and re-run the same command to continue", summary)
    return summary


def _redraw(config: GenerateConfig, n: int, problem_ids: str | None) -> GenerateConfig:
    """The config that brings the prompts named in `problem_ids` (all: None) to n samples each."""
    update: dict[str, Any] = {"sampling": config.sampling.model_copy(update={"n": n})}
    if problem_ids is not None:
        update["problem_ids"] = problem_ids
    return config.model_copy(update=update)


def _run_prompts(config: GenerateConfig) -> int:
    """How many prompts the full run samples (its limit and shard applied)."""
    total = count_rows(config.prompts, config.split)
    index, shards = config.shard_index()
    total = len(range(index, total, shards))
    return min(total, config.limit) if config.limit else total


ROLE = Samples(per_prompt=lambda config: config.sampling.n, redraw=_redraw, prompts=_run_prompts,
               first=lambda config, count: config.model_copy(update={"limit": min(count, config.limit or count)}))


def _served_name(field: str, value: str, config: GenerateConfig) -> bool:
    return field == "teacher" and backends.load(config.sampling.backend).remote


def present(summary: dict[str, Any], config: GenerateConfig) -> None:
    """The summary table on stderr; a budget that stopped the run before it sampled has none."""
    from rich.console import Console

    if "samples_written" in summary:
        Console(stderr=True).print(summary_table(summary))


STAGES = (
    Stage(
        name="generate", section="generate", default_run=True, config=GenerateConfig, run=run, check=check, resumable=True,
        reads={"prompts": "prompts", "teacher": "teacher_model"}, writes={"output": "traces.jsonl"},
        produces={"traces": "traces.jsonl"}, remote=_served_name, samples=ROLE,
        command=Command("Sample chain-of-thought traces from the teacher (R1 defaults), resumable and sharded.", ("prompts",), present),
        # Memory settings only decide how many sequences share the machine, like max_pending: a run
        # that failed to start resumes with new ones instead of starting over. A budget or a price does
        # not change the samples either: raising it resumes.
        operational=("concurrency", "request_timeout", "max_retries", "retry_base_delay", "retry_max_delay", "max_pending", "api_key_env",
                     "gpu_memory_utilization", "kv_cache_memory_bytes", "max_num_seqs", *cost.COST_FIELDS),
    ),
)
