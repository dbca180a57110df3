"""`distill eval`: score a model on reasoning benchmarks with the DeepSeek-R1 protocol.

k samples per problem at temperature 0.6 / top_p 0.95 (greedy decoding makes long-CoT models
loop, and one sample per problem is too noisy on 30-problem sets), graded by the same checker
as the filter (`distill.verify.grade`), sampled by the same code as the teacher stage
(`teacher.generate.run`, vLLM engine or an OpenAI-compatible endpoint, so the teacher can be
evaluated too). Estimators are in `distill.metrics`.

Writes into OUTPUT_DIR: NAME.samples.jsonl (every sample with its verdict), NAME.jsonl (one
row per problem), summary.json and eval_table.md (the table `distill publish` puts in the
model card).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from distill.data import FieldMap, atomic_path, read_problems, read_records
from distill.errors import InputError
from distill.records import Problem, Trace, sample_id

R1_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

# Known benchmark names -> (hub dataset, split, field mapping). Used when no such file exists.
KNOWN_BENCHMARKS: dict[str, tuple[str, str, FieldMap]] = {
    "aime24": ("HuggingFaceH4/aime_2024", "train", FieldMap(problem="problem", answer="answer", id="id")),
    "amc23": ("math-ai/amc23", "test", FieldMap(problem="question", answer="answer", id="id")),
    "math500": ("HuggingFaceH4/MATH-500", "test", FieldMap(problem="problem", answer="answer", id="unique_id")),
}


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Model folder (vllm backend) or served model name (openai backend).")
    benchmarks: list[str] = Field(min_length=1, description=f"Benchmark files with problem/answer, or names: {', '.join(KNOWN_BENCHMARKS)}.")
    output_dir: Path = Field(description="Folder for per-problem results, samples, summary.json and eval_table.md.")
    k: int = Field(default=4, ge=1, description="Samples per problem (pass@1 is their mean correctness).")
    temperature: float = Field(default=0.6, ge=0, description="Sampling temperature (R1 protocol: 0.6).")
    top_p: float = Field(default=0.95, gt=0, le=1, description="Nucleus sampling (R1 protocol: 0.95).")
    max_tokens: int = Field(default=32768, ge=1, description="Most new tokens per sample (R1 protocol: 32768).")
    backend: Literal["vllm", "openai"] = Field(default="vllm", description="Local vLLM engine or an OpenAI-compatible endpoint.")
    base_url: str | None = Field(default=None, description="Endpoint URL for the openai backend.")
    instruction: str = Field(default=R1_INSTRUCTION, description="Appended to every math problem on a new line (empty: none).")
    limit: int | None = Field(default=None, ge=1, description="Only the first N problems of each benchmark.")
    fields: FieldMap = Field(default_factory=FieldMap, description="Column names in benchmark files.")
    seed: int = Field(default=0, description="Sampling seed.")
    workers: int = Field(default=max(1, (os.cpu_count() or 2) - 1), ge=1, description="Answer-checking worker processes.")
    timeout: float = Field(default=10.0, gt=0, description="Seconds one answer check may take.")
    delimiters: Literal["r1", "sky-t1"] = Field(default="r1", description="Reasoning/answer tags of the completions (r1: <think>...</think>).")
    generate: dict[str, Any] = Field(default_factory=dict, description="Extra settings passed to the generate stage (engine options).")


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
    for problem in read_problems(source, fields, split=split):
        if not problem.answer:
            where = f"{spec} row {problem.source.get('row') if problem.source else '?'}"
            raise InputError("no reference answer", where=where, field=fields.answer or "answer")
        problems.append(problem)
        if limit and len(problems) >= limit:
            break
    return problems


# ---------------------------------------------------------------------------- scoring


def score_problem(samples: list[Trace], k: int, delimiters: str = "r1") -> dict[str, Any]:
    """One problem's row: its samples' answers and verdicts, pass@1, cons@k, pass@k."""
    from distill.answers import DELIMITER_PRESETS
    from distill.metrics import Sample, majority_vote, pass_at_1, pass_at_k
    from distill.verify import extract_answer

    tags = DELIMITER_PRESETS[delimiters]
    graded = [Sample(extract_answer(t.completion, tags), bool(t.verdicts and t.verdicts["correctness"].passed)) for t in samples]
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
    from distill.metrics import mean

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


def markdown_table(summaries: list[dict[str, Any]]) -> str:
    """The evaluation table for model cards and READMEs, from one or more summary.json documents."""
    k = summaries[0]["k"]
    several = len({s["model"] for s in summaries}) > 1
    head = (["model"] if several else []) + ["benchmark", "problems", "pass@1", f"cons@{k}", f"pass@{k}", "mean tokens"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for summary in summaries:
        kk = summary["k"]
        for name, b in summary["benchmarks"].items():
            cells = ([Path(summary["model"]).name] if several else []) + [
                name,
                str(b["problems"]),
                f"{100 * b['pass@1']:.1f} ± {100 * b['pass@1_stderr']:.1f}",
                f"{100 * b[f'cons@{kk}']:.1f}",
                f"{100 * b[f'pass@{kk}']:.1f}",
                f"{b['mean_tokens']:.0f}" if b.get("mean_tokens") is not None else "-",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- run


def run(config: EvalConfig, keep_engine: bool = False) -> dict[str, Any]:
    """Sample, grade, score; writes the result files and returns the summary.

    keep_engine: leave the vLLM engine loaded afterwards (see `teacher.generate.run`).
    """
    from distill.data import write_records

    benches = {benchmark_name(spec): load_benchmark(spec, config.fields, config.limit) for spec in config.benchmarks}
    if len(benches) < len(config.benchmarks):
        raise InputError("two benchmarks share a name; rename one file", field="benchmarks")
    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)

    # One generation run over all benchmarks: one engine load, one large batch. The raw
    # samples file is named after the sampling settings and kept until the end: the generate
    # stage appends and resumes, so an interrupted eval picks up where it stopped.
    prompts = out / ".prompts.jsonl"
    rows = [p.model_copy(update={"problem_id": f"{name}/{p.problem_id}"}) for name, problems in benches.items() for p in problems]
    write_records(prompts, rows, model=Problem)
    raw = out / f".samples-{_settings_hash(config)}.jsonl"
    try:
        _sample(config, prompts, raw, keep_engine)
    finally:
        prompts.unlink(missing_ok=True)
    traces = list(read_records(raw, Trace))
    summary = score_and_write(traces, list(benches), config)
    raw.unlink(missing_ok=True)
    print_summary(summary)
    return summary


def score_and_write(traces: list[Trace], names: list[str], config: EvalConfig) -> dict[str, Any]:
    """Grade samples whose problem ids are 'BENCHMARK/ID', write the result files, return the summary."""
    from distill.data import write_records
    from distill.verify import grade

    graded: dict[str, list[Trace]] = {name: [] for name in names}
    for trace, verdict in _progress(grade(traces, workers=config.workers, timeout=config.timeout, delimiters=config.delimiters), len(traces), "grading"):
        name, problem_id = trace.problem_id.split("/", 1)
        graded[name].append(trace.model_copy(update={"problem_id": problem_id, "id": sample_id(problem_id, trace.sample_index), "verdicts": {"correctness": verdict}}))

    summary: dict[str, Any] = {
        "model": config.model,
        "backend": config.backend,
        "k": config.k,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "max_tokens": config.max_tokens,
        "seed": config.seed,
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


def _sample(config: EvalConfig, prompts: Path, output: Path, keep_engine: bool = False) -> None:
    """k samples per problem with the generate stage (vLLM engine or endpoint)."""
    from teacher.config import GenerateConfig
    from teacher.generate import run as generate

    settings = {
        "prompts": str(prompts),
        "output": str(output),
        "teacher": config.model,
        "backend": config.backend,
        "n": config.k,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "max_tokens": config.max_tokens,
        "seed": config.seed,
        "math_instruction": config.instruction or None,
        "fields": {"problem": "problem", "answer": "answer", "id": "problem_id", "domain": "domain"},
    }
    if config.base_url:
        settings["base_url"] = config.base_url
    settings.update(config.generate)
    generate(GenerateConfig.model_validate(settings), keep_engine=keep_engine)


def _settings_hash(config: EvalConfig) -> str:
    import hashlib

    keys = ("model", "benchmarks", "k", "temperature", "top_p", "max_tokens", "backend", "base_url", "instruction", "limit", "seed", "generate")
    text = json.dumps(config.model_dump(mode="json", include=set(keys)), sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _progress(items, total: int, label: str):
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task(label, total=total)
        for item in items:
            yield item
            progress.advance(task)


def print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    k = summary["k"]
    table = Table(title=f"{summary['model']}: {k} samples/problem, T={summary['temperature']}, top_p={summary['top_p']}")
    for column in ("benchmark", "problems", "pass@1", f"cons@{k}", f"pass@{k}", "no answer", "truncated", "mean tokens"):
        table.add_column(column, justify="left" if column == "benchmark" else "right")
    for name, b in summary["benchmarks"].items():
        table.add_row(
            name,
            str(b["problems"]),
            f"{100 * b['pass@1']:.1f} ± {100 * b['pass@1_stderr']:.1f}",
            f"{100 * b[f'cons@{k}']:.1f}",
            f"{100 * b[f'pass@{k}']:.1f}",
            f"{100 * b['no_answer']:.1f}%",
            f"{100 * b['truncated']:.1f}%",
            f"{b['mean_tokens']:.0f}" if b.get("mean_tokens") is not None else "-",
        )
    Console(stderr=True).print(table)
