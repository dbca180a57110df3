"""`distill eval`: score a model on reasoning benchmarks with the DeepSeek-R1 protocol.

k samples per problem at temperature 0.6 / top_p 0.95 (greedy decoding makes long-CoT models
loop, and one sample per problem is too noisy on 30-problem sets), graded by the same checker
as the filter (`distill.core.verify.grade`), sampled through the sampling layer like the teacher
(`teacher.sampler.sample`: vLLM engine, OpenAI-compatible endpoint or llama.cpp, so the teacher
can be evaluated too). Estimators are in `distill.evaluate.metrics`.

Writes into OUTPUT_DIR: NAME.samples.jsonl (every sample with its verdict), NAME.jsonl (one
row per problem), summary.json and eval_table.md (the table `distill publish` puts in the
model card). With `--think-budget`, budget forcing adds per budget NAME.think-N.jsonl and
NAME.think-N.samples.jsonl, think_budgets.md and think_budgets.png (`distill.evaluate.think_budget`).
"""

from __future__ import annotations

import json
from typing import Any

from distill.core.config import folded_dump
from distill.core.data import atomic_path, read_records
from distill.core.errors import InputError, Interrupted
from distill.core.hub import check_model
from distill.core.paths import Out, check_io, named_paths
from distill.core.records import Trace, sample_id
from distill.core.stage import Command, Stage
from distill.core.verify.options import CodeOptions
from distill.evaluate import benchmarks, paper_table, think_budget
from distill.evaluate.benchmarks import KNOWN, benchmark_name, k_for
from distill.evaluate.config import EvalConfig, EvalSettings
from distill.evaluate.report import markdown_table, print_summary
from teacher import backends
from teacher.prompts import PromptSettings, job_for
from teacher.sampler import release, sample
from teacher.sink import TraceSink

# ---------------------------------------------------------------------------- scoring


def score_problem(samples: list[Trace], k: int, delimiters: str = "r1", kind: str = "answer") -> dict[str, Any]:
    """One problem's row: its samples' answers and verdicts, pass@1, cons@k, pass@k."""
    from distill.core.r1_format import DELIMITER_PRESETS
    from distill.evaluate.metrics import Sample, majority_vote, pass_at_1, pass_at_k

    tags = DELIMITER_PRESETS[delimiters]
    # the answer as the checker read it (every part of it when the reference has several; the letter; the program): the vote groups by it
    graded = [Sample(benchmarks.sample_answer(kind, t, tags), bool(t.verdicts and t.verdicts["correctness"].passed)) for t in samples]
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
        "unclosed": sum(tags.think_close not in t.completion for t in samples),  # the reasoning never ended
        "mean_tokens": sum(tokens) / len(tokens) if tokens else None,
        "tokens": tokens,
    }


def summarise(rows: list[dict[str, Any]], k: int) -> dict[str, Any]:
    """Benchmark figures: means over problems (and the standard error of pass@1)."""
    from distill.evaluate.metrics import mean, percentile, stderr

    n = len(rows)
    p1 = [r["pass@1"] for r in rows]
    samples = sum(r["samples"] for r in rows)
    tokens = [r["mean_tokens"] for r in rows if r["mean_tokens"] is not None]
    every = [t for r in rows for t in r.get("tokens", [])]
    return {
        "problems": n,
        "samples": samples,
        "k": k,
        "pass@1": mean(p1),
        "pass@1_stderr": stderr(p1),
        f"cons@{k}": mean([r[f"cons@{k}"] for r in rows]),
        f"cons@{k}_stderr": stderr([r[f"cons@{k}"] for r in rows]),
        f"pass@{k}": mean([r[f"pass@{k}"] for r in rows]),
        "no_answer": sum(a is None for r in rows for a in r["answers"]) / samples if samples else 0.0,
        "truncated": sum(r["truncated"] for r in rows) / samples if samples else 0.0,
        "unclosed": sum(r.get("unclosed", 0) for r in rows) / samples if samples else 0.0,
        "mean_tokens": mean(tokens) if tokens else None,
        "p90_tokens": percentile(every, 0.9) if every else None,
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
    files = [out / f"{name}{suffix}" for name in names for suffix in (".jsonl", ".samples.jsonl")] + think_budget.outputs(config, names)
    check_io([Out(out, "output_dir", kind="dir"), *(Out(path, "output_dir") for path in [*files, out / "summary.json", out / "eval_table.md", out / paper_table.FILE])],
             named_paths(config, skip=("output_dir",)))
    if not backends.load(config.sampling.backend).remote:
        check_model(config.model, "model")
    benches = {name: benchmarks.load(spec, config) for name, spec in zip(names, config.benchmarks, strict=True)}
    out.mkdir(parents=True, exist_ok=True)

    # One sampling call over all benchmarks (each with its k): one engine load, one large batch. The samples go to a
    # file named after the sampling settings, kept until the end: the record sink resumes from it,
    # so an interrupted eval picks up where it stopped.
    prompt = PromptSettings(math_instruction=config.instruction or None)
    jobs = [job_for(p.model_copy(update={"problem_id": f"{name}/{p.problem_id}"}), list(range(k_for(config.k, name))), prompt)
            for name, bench in benches.items() for p in bench.problems]
    raw = out / f".samples-{_settings_hash(config)}.jsonl"
    sink = TraceSink(raw, config.sampling.info(prompt.think_prefill), side=bool(config.sampling.logprobs))
    try:
        sample(config.sampling, jobs, sink, keep_engine=keep_engine or bool(config.think_budget))
    except KeyboardInterrupt:
        raise Interrupted(f"{sink.written} samples written to {raw}; re-run the same command to resume") from None
    traces = list(read_records(raw, Trace))
    elapsed = sink.elapsed()
    speed = {"tokens_per_s": sink.tokens / elapsed if elapsed > 0 else 0.0} if sink.samples else {}
    budgets, more, sampled = [], {}, [raw]
    if config.think_budget:  # budget forcing: the same problems again, the reasoning cut at each budget
        try:
            forced, budget_files = think_budget.sample_budgets(config, jobs, _settings_hash(config))
        finally:
            if not keep_engine:
                release(config.sampling)
        sampled += budget_files
        kinds = {name: bench.kind for name, bench in benches.items()}
        budgets = think_budget.score({budget: grade_samples(samples, kinds, config) for budget, samples in forced.items()}, config, kinds)
        more = {"think_budgets": {"answer_tokens": config.answer_tokens, "answer_prefix": config.answer_prefix, "rows": budgets}}
    summary = score_and_write(traces, list(benches), config, speed, benches, more)
    if budgets:
        think_budget.write(budgets, summary, out)
    for path in sampled:  # the sampling files, kept until every result is written (a re-run resumes from them)
        path.unlink(missing_ok=True)
    print_summary(summary)
    if budgets:
        think_budget.show(budgets, summary)
    return summary


def score_and_write(traces: list[Trace], names: list[str], config: EvalConfig, speed: dict[str, Any] | None = None,
                    loaded: dict[str, benchmarks.Benchmark] | None = None, more: dict[str, Any] | None = None) -> dict[str, Any]:
    """Grade samples whose problem ids are 'BENCHMARK/ID', write the result files, return the summary.

    `speed`: sampling figures of this run (tokens_per_s), kept in the summary as they are.
    `loaded`: the benchmarks as loaded (their kind and what the summary records of them); without it, answer benchmarks.
    `more`: further sections of summary.json (the think budgets' figures).
    """
    from distill.core.data import write_records

    kinds = {name: loaded[name].kind if loaded else "answer" for name in names}
    graded = grade_samples(traces, kinds, config)
    summary: dict[str, Any] = {
        "model": config.model,
        "backend": config.sampling.backend,
        "k": k_for(config.k, ""),
        "temperature": config.sampling.temperature,
        "top_p": config.sampling.top_p,
        "max_tokens": config.sampling.max_tokens,
        "seed": config.sampling.seed,
        **(speed or {}),
        "benchmarks": {},
    }
    out = config.output_dir
    for name, samples in graded.items():
        k = k_for(config.k, name)
        problem_rows = score_problems(samples, k, config.delimiters, kinds[name])
        write_records(out / f"{name}.samples.jsonl", samples)
        with atomic_path(out / f"{name}.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in problem_rows), encoding="utf-8")
        info = loaded[name].info if loaded else {}
        summary["benchmarks"][name] = summarise(problem_rows, k) | {"kind": kinds[name], **info, "results": f"{name}.jsonl"}
    summary.update(more or {})
    paper_table.write_for_run(summary, config.model, getattr(config, "student", None), out)
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    with atomic_path(out / "eval_table.md") as tmp:
        tmp.write_text(markdown_table([summary]) + "\n", encoding="utf-8")
    return summary


def grade_samples(traces: list[Trace], kinds: dict[str, str], config: EvalSettings) -> dict[str, list[Trace]]:
    """Samples whose problem ids are 'BENCHMARK/ID' with their verdicts, per benchmark (of `kinds`: name -> kind),
    their ids without the benchmark's name."""
    from distill.core.r1_format import DELIMITER_PRESETS
    from distill.core.verify import VerifyOptions, grade

    options = VerifyOptions(timeout=config.timeout, **config.model_dump(include=set(CodeOptions.model_fields)))
    graded: dict[str, list[Trace]] = {name: [] for name in kinds}

    def keep(trace: Trace, verdict) -> None:
        name, problem_id = trace.problem_id.split("/", 1)
        graded[name].append(trace.model_copy(update={"problem_id": problem_id, "id": sample_id(problem_id, trace.sample_index), "verdicts": {"correctness": verdict}}))

    tags = DELIMITER_PRESETS[config.delimiters]
    by_verifier = []
    for trace in traces:  # a benchmark kind that decides its own verdicts (multiple choice) is graded here, the rest by the verifier
        verdict = benchmarks.grade(kinds[trace.problem_id.split("/", 1)[0]], trace, tags)
        if verdict is None:
            by_verifier.append(trace)
        else:
            keep(trace, verdict)
    for trace, verdict in _progress(grade(by_verifier, workers=config.workers, delimiters=config.delimiters, options=options), len(by_verifier), "grading"):
        keep(trace, verdict)
    return graded


def score_problems(samples: list[Trace], k: int, delimiters: str, kind: str) -> list[dict[str, Any]]:
    """One row per problem (`score_problem`) of one benchmark's graded samples, in the order the problems first appear."""
    by_problem: dict[str, list[Trace]] = {}
    for trace in samples:
        by_problem.setdefault(trace.problem_id, []).append(trace)
    return [score_problem(sorted(s, key=lambda t: t.sample_index), k, delimiters, kind) for s in by_problem.values()]


def _settings_hash(config: EvalConfig) -> str:
    import hashlib

    keys = ("model", "benchmarks", "k", "temperature", "since", "until", "shuffle_seed", "top_p", "max_tokens", "backend", "base_url", "instruction", "limit", "seed",
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
    return (field == "model" and backends.load(config.sampling.backend).remote) or (field == "benchmarks" and value in KNOWN)


def present(summary: dict[str, Any], config: EvalConfig) -> None:
    budgets = f", {think_budget.TABLE} and {think_budget.CHART}" if summary.get("think_budgets") else ""
    print(f"results in {config.output_dir} (summary.json, eval_table.md, per-problem JSONL{budgets}); "
          + ", ".join(f"{name} pass@1 {100 * b['pass@1']:.1f}" for name, b in summary["benchmarks"].items()))


STAGES = (
    Stage(
        name="eval", section="eval", default_run=True, config=EvalConfig, run=run, reads={"model": "model", "benchmarks": "heldout"},
        writes={"output_dir": ""}, produces={"eval": ""}, remote=_named,
        operational=("workers", "gpu_memory_utilization", "kv_cache_memory_bytes", "max_num_seqs"),  # keys of its folded dump
        command=Command("Score a model with the R1 protocol: k samples/problem, pass@1 and cons@k, same checker as the filter.", ("model",), present),
    ),
)
