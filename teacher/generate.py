"""`distill generate`: sample traces from the teacher, resumable and sharded.

The plan is made here, the sampling is the backend's: read the prompts (through the field
map), keep this shard's, drop what OUT already holds, hand the rest to the backend, which
writes every sample through the sink as soon as it is done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.core import cost, lock, logprobs
from distill.core.data import read_problems
from distill.core.errors import BudgetReached, InputError, Interrupted
from distill.core.hub import check_model
from distill.core.ids import UniqueIds
from distill.core.paths import Out, check_io, named_paths
from distill.core.records import Problem, sample_id
from distill.core.stage import Command, Stage
from teacher import backends
from teacher.config import GenerateConfig
from teacher.progress import Job, Sink, summary_table
from teacher.store import AppendWriter, check_side, mend, scan_output


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


def plan(problems: list[Problem], n: int, done: set[str]) -> list[Job]:
    """The samples still missing, per problem."""
    jobs = []
    for problem in problems:
        missing = [i for i in range(n) if sample_id(problem.problem_id, i) not in done]
        if missing:
            jobs.append(Job(problem, missing))
    return jobs


def check(config: GenerateConfig) -> None:
    """Cheap checks of the configuration, before anything is loaded or written."""
    if config.output.suffix.lower() != ".jsonl":
        raise InputError("generate appends to its output, so it must be .jsonl (merge can write Parquet)", where=str(config.output), field="output")
    outputs = [Out(config.output, "output")] + ([Out(logprobs.side_path(config.output), "logprobs")] if config.logprobs else [])
    check_io(outputs, named_paths(config, skip=("output",)))
    backends.load(config.backend).check(config)


def run(config: GenerateConfig, console: Any = None, keep_engine: bool = False) -> dict[str, Any]:
    """Sample `config.n` completions per prompt into `config.output`; returns the summary.

    keep_engine: leave the vLLM engine loaded for the next run with the same engine options
    (call `teacher.backends.vllm.release()` when done); by default it is shut down.
    """
    check(config)
    with lock.hold(config.output, field="output"):  # one writer: a second would sample everything again
        return _sample(config, console, keep_engine)


def _sample(config: GenerateConfig, console: Any, keep_engine: bool) -> dict[str, Any]:
    problems, duplicates = load_problems(config)  # bad input fails here, before OUT is touched
    existing = scan_output(config.output)
    done = existing.done
    if existing.teacher and existing.teacher.get("model") != config.teacher:
        raise InputError(
            f"holds samples of teacher '{existing.teacher.get('model')}', not '{config.teacher}'; write to a new file",
            where=str(config.output),
        )
    check_side(config.output, existing, config.logprobs)
    backend = backends.load(config.backend)
    if not backend.remote:  # a local engine loads the teacher by path or hub id: fail fast, in one line
        check_model(config.teacher, "teacher")
        if config.tokenizer:
            check_model(config.tokenizer, "tokenizer")
    jobs = plan(problems, config.n, done)
    wanted = len(problems) * config.n
    summary: dict[str, Any] = {
        "output": str(config.output),
        "teacher": config.teacher,
        "backend": config.backend,
        "shard": config.shard,
        "prompts": len(problems),
        "duplicate_prompts_dropped": duplicates,
        "prompts_with_work": len(jobs),
        "samples_wanted": wanted,
        "samples_existing": sum(config.n - len(job.indices) for job in jobs) + (len(problems) - len(jobs)) * config.n,
        "torn_bytes_dropped": existing.torn,
    }
    before = existing.spent  # the budget covers the whole output: a re-run does not spend it again
    already = cost.over_budget(before, config) if jobs else None
    if already:
        raise BudgetReached(f"{already} by the samples in {config.output}; nothing sampled, raise the budget to continue",
                            {**summary, **cost.figures(before, config, "spent_")})
    if jobs:
        backend.prepare(config)  # engine load stays out of the tokens/s figure
    mend(config.output, existing)  # only now: a refused run leaves OUT exactly as it was
    if config.logprobs:
        logprobs.mend(logprobs.side_path(config.output), existing.done)
    sink_kwargs = {"console": console} if console is not None else {}
    with AppendWriter(Path(config.output), side=bool(config.logprobs)) as writer:
        sink = Sink(writer, config.teacher_info(), len(jobs), sum(len(job.indices) for job in jobs), **sink_kwargs)
        sink.limit = lambda prompt, completion: cost.over_budget(before + cost.Spend(prompt, completion), config)
        sink.start(jobs)
        try:
            if jobs:
                backend.generate(config, jobs, sink)
        except KeyboardInterrupt:
            raise Interrupted(f"{writer.count} samples written to {config.output}; re-run the same command to resume") from None
        finally:
            sink.stop()
            if not keep_engine:
                backend.release()
    elapsed = sink.elapsed()
    summary.update(
        samples_written=sink.samples,
        samples_skipped=sink.skipped_samples,
        skipped_prompts=dict(sink.skipped),
        **cost.figures(cost.Spend(sink.prompt_tokens, sink.tokens), config),
        **cost.figures(before + cost.Spend(sink.prompt_tokens, sink.tokens), config, "spent_"),
        tokens_per_s=sink.tokens / elapsed if elapsed > 0 else 0.0,
        finish_reasons=dict(sink.finish),
        retries=sink.retries,
        errors=sink.errors,
        elapsed_s=elapsed,
        # Said with the final spend: the samples that finished with the one that reached the budget are written too.
        stopped=sink.stopped and (cost.over_budget(before + cost.Spend(sink.prompt_tokens, sink.tokens), config) or sink.stopped),
    )
    if config.logprobs:
        side = logprobs.side_path(config.output)
        summary["logprobs_file"] = str(side)
        summary["logprobs_bytes_per_token"] = round(sink.logprob_bytes / sink.tokens, 1) if sink.tokens else None
    if sink.stopped:
        raise BudgetReached(f"{summary['stopped']}: {writer.count} samples written to {config.output}; "
                            "raise the budget and re-run the same command to continue", summary)
    return summary


def _served_name(field: str, value: str, config: GenerateConfig) -> bool:
    return field == "teacher" and backends.load(config.backend).remote


def present(summary: dict[str, Any], config: GenerateConfig) -> None:
    """The summary table on stderr; a budget that stopped the run before it sampled has none."""
    from rich.console import Console

    if "samples_written" in summary:
        Console(stderr=True).print(summary_table(summary))


STAGES = (
    Stage(
        name="generate", section="generate", default_run=True, config=GenerateConfig, run=run, check=check, resumable=True,
        reads={"prompts": "prompts", "teacher": "teacher_model"}, writes={"output": "traces.jsonl"},
        produces={"traces": "traces.jsonl"}, remote=_served_name,
        command=Command("Sample chain-of-thought traces from the teacher (R1 defaults), resumable and sharded.", ("prompts",), present),
        # Memory settings only decide how many sequences share the machine, like max_pending: a run
        # that failed to start resumes with new ones instead of starting over. A budget or a price does
        # not change the samples either: raising it resumes.
        operational=("concurrency", "request_timeout", "max_retries", "retry_base_delay", "retry_max_delay", "max_pending", "api_key_env",
                     "gpu_memory_utilization", "kv_cache_memory_bytes", "max_num_seqs", *cost.COST_FIELDS),
    ),
)
