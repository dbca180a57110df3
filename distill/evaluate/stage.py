"""`distill eval`: score a model on reasoning benchmarks with the DeepSeek-R1 protocol.

k samples per problem at temperature 0.6 / top_p 0.95 (greedy decoding makes long-CoT models
loop, and one sample per problem is too noisy on 30-problem sets), graded by the same checker
as the filter (`distill.core.verify.grade`), sampled through the sampling layer like the teacher
(`teacher.sampler.sample`: vLLM engine, OpenAI-compatible endpoint or llama.cpp, so the teacher
can be evaluated too). Estimators are in `distill.evaluate.metrics`.

Writes into OUTPUT_DIR: NAME.samples.jsonl (every sample with its verdict), NAME.jsonl (one
row per problem), summary.json and eval_table.md (the table `distill publish` puts in the
model card).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill.core.config import folded_dump
from distill.core.data import FieldMap, atomic_path, read_problems, read_records
from distill.core.errors import InputError, Interrupted
from distill.core.hub import check_model
from distill.core.ids import UniqueIds
from distill.core.paths import Out, check_io, named_paths
from distill.core.records import Problem, Trace, sample_id
from distill.core.stage import Stage
from distill.core.verify.options import CodeOptions
from distill.evaluate.config import KNOWN_BENCHMARKS, EvalConfig
from distill.evaluate.report import markdown_table, print_summary
from teacher import backends
from teacher.prompts import PromptSettings, job_for
from teacher.sampler import sample
from teacher.sink import TraceSink

# ---------------------------------------------------------------------------- benchmarks


def benchmark_name(spec: str) -> str:
    path = Path(spec)
    return path.stem if path.suffix else spec.removeprefix("hf:").rstrip("/").rsplit("/", 1)[-1]


def load_benchmark(spec: str, fields: FieldMap, limit: int | None = None) -> list[Problem]:
    """Problems of a benchmark file, or of a known benchmark's hub dataset (where the hub is reachable)."""
    source, split = spec, "train"
    if not Path(spec).exists() and spec in KNOWN_BENCHMARKS:
        source, split, fields = KNOWN_BENCHMARKS[spec]
        source = f"hf:{source}"
    problems: list[Problem] = []
    ids = UniqueIds(fields.id or "id")
    for problem in read_problems(source, fields, split=split):
        where = f"{spec} row {problem.source.get('row') if problem.source else '?'}"
        if not problem.answer and not problem.tests:
            raise InputError("no reference answer or code tests", where=where, field=fields.answer or "answer")
        if fields.id:  # an id column: one id, one problem (derived ids are unique by construction)
            ids.see(problem.problem_id, where)
        problems.append(problem)
        if limit and len(problems) >= limit:
            break
    return problems


# ---------------------------------------------------------------------------- scoring


def score_problem(samples: list[Trace], k: int, delimiters: str = "r1") -> dict[str, Any]:
    """One problem's row: its samples' answers and verdicts, pass@1, cons@k, pass@k."""
    from distill.core.r1_format import DELIMITER_PRESETS
    from distill.core.verify import extract_answer
    from distill.evaluate.metrics import Sample, majority_vote, pass_at_1, pass_at_k

    tags = DELIMITER_PRESETS[delimiters]
    # the answer as the checker read it (every part of it when the reference has several): the vote groups by it
    graded = [Sample(extract_answer(t.completion, tags, reference=t.answer), bool(t.verdicts and t.verdicts["correctness"].passed))
              for t in samples]
    vote = majority_vote(graded)
    first = samples[0]
    tokens = [t.completion_tokens for t in samples if t.completion_tokens is not None]
    return {
        "problem_id": first.problem_id,
        "problem": first.problem,
        "answer": first.answer,
        "samples": len(samples),
        "correct": sum(s.correct for s in graded),
        "pass@1": pass_at_1(graded),
        f"cons@{k}": float(vote.correct),
        f"pass@{k}": pass_at_k(graded, min(k, len(graded))),
        "vote": vote.answer,
        "votes": vote.votes,
        "answers": [s.answer for s in graded],
        "truncated": sum(t.finish_reason == "length" for t in samples),
        "mean_tokens": sum(tokens) / len(tokens) if tokens else None,
    }


def summarise(rows: list[dict[str, Any]], k: int) -> dict[str, Any]:
    """Benchmark figures: means over problems (and the standard error of pass@1)."""
    from distill.evaluate.metrics import mean

    n = len(rows)
    p1 = [r["pass@1"] for r in rows]
    spread = (sum((x - mean(p1)) ** 2 for x in p1) / (n - 1)) ** 0.5 / n**0.5 if n > 1 else 0.0
    samples = sum(r["samples"] for r in rows)
    tokens = [r["mean_tokens"] for r in rows if r["mean_tokens"] is not None]
    return {
        "problems": n,
        "samples": samples,
        "pass@1": mean(p1),
        "pass@1_stderr": spread,
        f"cons@{k}": mean([r[f"cons@{k}"] for r in rows]),
        f"pass@{k}": mean([r[f"pass@{k}"] for r in rows]),
        "no_answer": sum(a is None for r in rows for a in r["answers"]) / samples if samples else 0.0,
        "truncated": sum(r["truncated"] for r in rows) / samples if samples else 0.0,
        "mean_tokens": mean(tokens) if tokens else None,
    }


# ---------------------------------------------------------------------------- run


def run(config: EvalConfig, keep_engine: bool = False) -> dict[str, Any]:
    """Sample, grade, score; writes the result files and returns the summary.

    keep_engine: leave the vLLM engine loaded afterwards (see `teacher.sampler.sample`).
    """

    names = [benchmark_name(spec) for spec in config.benchmarks]
    if len(set(names)) < len(names):
        raise InputError("two benchmarks share a name; rename one file", field="benchmarks")
    out = config.output_dir
    files = [out / f"{name}{suffix}" for name in names for suffix in (".jsonl", ".samples.jsonl")]
    check_io([Out(out, "output_dir", kind="dir"), *(Out(path, "output_dir") for path in [*files, out / "summary.json", out / "eval_table.md"])],
             named_paths(config, skip=("output_dir",)))
    if not backends.load(config.sampling.backend).remote:
        check_model(config.model, "model")
    benches = {name: load_benchmark(spec, config.fields, config.limit) for name, spec in zip(names, config.benchmarks, strict=True)}
    out.mkdir(parents=True, exist_ok=True)

    # One sampling call over all benchmarks: one engine load, one large batch. The samples go to a
    # file named after the sampling settings, kept until the end: the record sink resumes from it,
    # so an interrupted eval picks up where it stopped.
    prompt = PromptSettings(math_instruction=config.instruction or None)
    jobs = [job_for(p.model_copy(update={"problem_id": f"{name}/{p.problem_id}"}), list(range(config.k)), prompt)
            for name, problems in benches.items() for p in problems]
    raw = out / f".samples-{_settings_hash(config)}.jsonl"
    sink = TraceSink(raw, config.sampling.info(prompt.think_prefill), side=bool(config.sampling.logprobs))
    try:
        sample(config.sampling, jobs, sink, keep_engine=keep_engine)
    except KeyboardInterrupt:
        raise Interrupted(f"{sink.written} samples written to {raw}; re-run the same command to resume") from None
    traces = list(read_records(raw, Trace))
    elapsed = sink.elapsed()
    speed = {"tokens_per_s": sink.tokens / elapsed if elapsed > 0 else 0.0} if sink.samples else {}
    summary = score_and_write(traces, list(benches), config, speed)
    raw.unlink(missing_ok=True)
    print_summary(summary)
    return summary


def score_and_write(traces: list[Trace], names: list[str], config: EvalConfig, speed: dict[str, Any] | None = None) -> dict[str, Any]:
    """Grade samples whose problem ids are 'BENCHMARK/ID', write the result files, return the summary.

    `speed`: sampling figures of this run (tokens_per_s), kept in the summary as they are.
    """
    from distill.core.data import write_records
    from distill.core.verify import VerifyOptions, grade

    options = VerifyOptions(timeout=config.timeout, **config.model_dump(include=set(CodeOptions.model_fields)))
    graded: dict[str, list[Trace]] = {name: [] for name in names}
    for trace, verdict in _progress(grade(traces, workers=config.workers, delimiters=config.delimiters, options=options), len(traces), "grading"):
        name, problem_id = trace.problem_id.split("/", 1)
        graded[name].append(trace.model_copy(update={"problem_id": problem_id, "id": sample_id(problem_id, trace.sample_index), "verdicts": {"correctness": verdict}}))

    summary: dict[str, Any] = {
        "model": config.model,
        "backend": config.sampling.backend,
        "k": config.k,
        "temperature": config.sampling.temperature,
        "top_p": config.sampling.top_p,
        "max_tokens": config.sampling.max_tokens,
        "seed": config.sampling.seed,
        **(speed or {}),
        "benchmarks": {},
    }
    out = config.output_dir
    for name, samples in graded.items():
        by_problem: dict[str, list[Trace]] = {}
        for trace in samples:
            by_problem.setdefault(trace.problem_id, []).append(trace)
        problem_rows = [score_problem(sorted(s, key=lambda t: t.sample_index), config.k, config.delimiters) for s in by_problem.values()]
        write_records(out / f"{name}.samples.jsonl", samples)
        with atomic_path(out / f"{name}.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in problem_rows), encoding="utf-8")
        summary["benchmarks"][name] = summarise(problem_rows, config.k) | {"results": f"{name}.jsonl"}
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    with atomic_path(out / "eval_table.md") as tmp:
        tmp.write_text(markdown_table([summary]) + "\n", encoding="utf-8")
    return summary


def _settings_hash(config: EvalConfig) -> str:
    import hashlib

    keys = ("model", "benchmarks", "k", "temperature", "top_p", "max_tokens", "backend", "base_url", "instruction", "limit", "seed",
            "max_model_len", "generate")
    data = folded_dump(config)  # the keys as they were before the sampling section: an interrupted eval resumes across the change
    text = json.dumps({key: data[key] for key in keys if key in data}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _progress(items, total: int, label: str):
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task(label, total=total)
        for item in items:
            yield item
            progress.advance(task)


def _named(field: str, value: str, config: EvalConfig) -> bool:
    """A served model's name, or a known benchmark's (loaded from the hub when no such file exists)."""
    return (field == "model" and backends.load(config.sampling.backend).remote) or (field == "benchmarks" and value in KNOWN_BENCHMARKS)


STAGES = (
    Stage(
        name="eval", section="eval", default_run=True, config=EvalConfig, run=run, reads={"model": "model", "benchmarks": "heldout"},
        writes={"output_dir": ""}, produces={"eval": ""}, remote=_named,
        operational=("workers", "gpu_memory_utilization", "kv_cache_memory_bytes", "max_num_seqs"),  # keys of its folded dump
    ),
)
