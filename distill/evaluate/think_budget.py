"""`eval --think-budget N,...`: budget forcing (s1, Muennighoff et al. 2025), accuracy against thinking tokens.

For each budget N every problem is sampled k times in two steps through the sampling layer:
1. the reasoning: it stops at the closing tag (`</think>`, a stop string) or at N tokens (max_tokens);
2. the answer, continuing the first step's text (`Job(continuation=True)`, at most `answer_tokens` tokens).
   A sample that closed its reasoning by itself gets its closing tag back and goes on as it would have;
   one cut at N gets "\\n</think>\\n\\n" and the answer prefix (s1's "Final Answer: ") and answers now.

A sample's thinking tokens are its first step's (at most N; the closing tag's tokens included when the
model wrote it), its answer tokens the second step's; both are written with every sample
(`thinking_tokens`, `answer_tokens`, `forced`). Each step samples into a file of its own in the output
folder, named after the settings and the budget, so an interrupted eval resumes where it stopped; the
files are removed once the results are written, with eval's own.

A sample that ends its turn inside its reasoning (end-of-text, no closing tag) cannot be told from one that
wrote `</think>` (neither vLLM nor an endpoint returns the stop string): it is closed and answers too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from distill.core.data import atomic_path, read_records, write_records
from distill.core.errors import Interrupted
from distill.core.r1_format import DELIMITER_PRESETS, Delimiters
from distill.core.records import Trace
from distill.evaluate.config import EvalConfig
from teacher.sampler import Job, sample
from teacher.sampling import SamplingConfig
from teacher.sink import TraceSink

TABLE = "think_budgets.md"
CHART = "think_budgets.png"


def outputs(config: EvalConfig, names: list[str]) -> list[Path]:
    """The files the budgets add to the output folder."""
    out = config.output_dir
    if not config.think_budget:
        return []
    per_budget = [out / f"{name}.think-{budget}{suffix}" for budget in config.think_budget for name in names for suffix in (".jsonl", ".samples.jsonl")]
    return [*per_budget, out / TABLE, out / CHART]


def closing(tags: Delimiters, prefix: str) -> str:
    """What closes a reasoning cut at its budget: the closing tag, then the answer's opening."""
    return f"\n{tags.think_close}\n\n" + (f"{tags.answer_open}\n" if tags.answer_open else "") + prefix


def sample_budgets(config: EvalConfig, jobs: list[Job], settings: str) -> tuple[dict[int, list[Trace]], list[Path]]:
    """Every budget's samples (problem ids 'BENCHMARK/ID', with their token counts) and the files they were sampled into.

    `jobs`: eval's jobs (their indices: every sample wanted); `settings`: eval's hash of its sampling settings."""
    tags = DELIMITER_PRESETS[config.delimiters]
    after = closing(tags, config.answer_prefix)
    by_key = {job.key: job for job in jobs}
    opening = jobs[0].prefill if jobs else ""  # what every record's `teacher` says the response opened with
    samples: dict[int, list[Trace]] = {}
    files: list[Path] = []
    for budget in config.think_budget:
        thinking = config.sampling.model_copy(update={"max_tokens": budget, "stop": [*(config.sampling.stop or []), tags.think_close]})
        answer = config.sampling.model_copy(update={"max_tokens": config.answer_tokens})
        first_file, second_file = step_files(config, settings, budget)
        files += [first_file, second_file]
        first = {t.id: t for t in _sample(thinking, jobs, first_file, opening, budget)}
        continued = [
            Job(t.problem_id, by_key[t.problem_id].messages, [t.sample_index], continuation=True, problem=by_key[t.problem_id].problem,
                prefill=t.completion + (after if t.finish_reason == "length" else tags.think_close))
            for t in first.values()
        ]
        samples[budget] = [_counted(t, first[t.id], budget) for t in _sample(answer, continued, second_file, opening, budget)]
    return samples, files


def step_files(config: EvalConfig, settings: str, budget: int) -> tuple[Path, Path]:
    """The files one budget's two steps sample into: named after what decides their samples."""
    answer = hashlib.sha1(json.dumps([settings, config.delimiters, config.answer_tokens, config.answer_prefix]).encode()).hexdigest()[:12]
    return config.output_dir / f".think-{settings}-{config.delimiters}-{budget}.jsonl", config.output_dir / f".answer-{answer}-{budget}.jsonl"


def _sample(sampling: SamplingConfig, jobs: list[Job], path: Path, opening: str, budget: int) -> list[Trace]:
    """One step's samples, resumed from (and kept in) `path`."""
    sink = TraceSink(path, sampling.info(opening, think_budget=budget))
    try:
        sample(sampling, jobs, sink, keep_engine=True)  # the caller gives the engine back after the last budget
    except KeyboardInterrupt:
        raise Interrupted(f"{sink.written} samples written to {path}; re-run the same command to resume") from None
    return list(read_records(path, Trace)) if path.exists() else []


def _counted(answered: Trace, thought: Trace, budget: int) -> Trace:
    """The answered sample with its thinking and answer tokens (and whether the budget closed its reasoning)."""
    thinking, answer = thought.completion_tokens, answered.completion_tokens
    total = thinking + answer if thinking is not None and answer is not None else None
    return Trace(**answered.model_dump(exclude={"completion_tokens"}), completion_tokens=total, think_budget=budget,
                 thinking_tokens=thinking, answer_tokens=answer, forced=thought.finish_reason == "length")


# ---------------------------------------------------------------------------- results


def score(graded: dict[int, dict[str, list[Trace]]], config: EvalConfig, kinds: dict[str, str]) -> list[dict[str, Any]]:
    """Write each budget's per-problem rows and samples; one row of figures per budget and benchmark, budgets in increasing order.

    `graded`: budget -> benchmark -> samples with their verdicts (eval's `grade_samples`)."""
    from distill.evaluate.benchmarks import k_for
    from distill.evaluate.metrics import mean
    from distill.evaluate.stage import score_problems, summarise

    out = config.output_dir
    rows = []
    for budget in sorted(graded):
        for name, samples in graded[budget].items():
            k = k_for(config.k, name)
            problem_rows = score_problems(samples, k, config.delimiters, kinds[name])
            write_records(out / f"{name}.think-{budget}.samples.jsonl", samples)
            with atomic_path(out / f"{name}.think-{budget}.jsonl") as tmp:
                tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in problem_rows), encoding="utf-8")
            figures = summarise(problem_rows, k)
            thinking = [t.model_extra["thinking_tokens"] for t in samples if t.model_extra.get("thinking_tokens") is not None]
            answer = [t.model_extra["answer_tokens"] for t in samples if t.model_extra.get("answer_tokens") is not None]
            rows.append({
                "budget": budget, "benchmark": name, "problems": figures["problems"], "samples": figures["samples"], "k": k,
                "pass@1": figures["pass@1"], "pass@1_stderr": figures["pass@1_stderr"],
                "mean_thinking_tokens": mean(thinking) if thinking else None, "mean_answer_tokens": mean(answer) if answer else None,
                "forced": sum(bool(t.model_extra.get("forced")) for t in samples) / len(samples) if samples else 0.0,
                "results": f"{name}.think-{budget}.jsonl",
            })
    return rows


def write(rows: list[dict[str, Any]], summary: dict[str, Any], out: Path) -> None:
    """The table (Markdown) and the chart (PNG) of accuracy against budget; `summary`: eval's, for the row without a budget."""
    with atomic_path(out / TABLE) as tmp:
        tmp.write_text(markdown(rows, summary) + "\n", encoding="utf-8")
    with atomic_path(out / CHART) as tmp:
        plot(rows, summary, tmp)


def _cells(rows: list[dict[str, Any]], summary: dict[str, Any]) -> list[list[str]]:
    def tokens(value: float | None) -> str:
        return f"{value:.0f}" if value is not None else "-"

    cells = [[str(r["budget"]), r["benchmark"], f"{100 * r['pass@1']:.1f} ± {100 * r['pass@1_stderr']:.1f}",
              tokens(r["mean_thinking_tokens"]), tokens(r["mean_answer_tokens"]), f"{100 * r['forced']:.0f}%"] for r in rows]
    for name, b in summary["benchmarks"].items():  # eval's own samples: the reasoning as long as max_tokens lets it be
        cells.append([f"none ({summary['max_tokens']})", name, f"{100 * b['pass@1']:.1f} ± {100 * b['pass@1_stderr']:.1f}", "-", "-", "-"])
    return cells


HEAD = ["budget", "benchmark", "pass@1", "mean thinking tokens", "mean answer tokens", "closed by the budget"]


def markdown(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(HEAD) + " |", "|---|---|---:|---:|---:|---:|"]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in _cells(rows, summary)])


def show(rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['model']}: accuracy against thinking budget (answers: at most {summary['think_budgets']['answer_tokens']} tokens)")
    for column in HEAD:
        table.add_column(column, justify="left" if column == "benchmark" else "right")
    for cells in _cells(rows, summary):
        table.add_row(*cells)
    Console(stderr=True).print(table)


def plot(rows: list[dict[str, Any]], summary: dict[str, Any], path: Path) -> None:
    """pass@1 against budget, one line per benchmark (error bars: standard error over problems); eval's own
    pass@1, without a budget, dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for index, name in enumerate(dict.fromkeys(r["benchmark"] for r in rows)):
        mine = [r for r in rows if r["benchmark"] == name]
        colour = f"C{index}"
        axes.errorbar([r["budget"] for r in mine], [100 * r["pass@1"] for r in mine], yerr=[100 * r["pass@1_stderr"] for r in mine],
                      marker="o", capsize=3, color=colour, label=name)
        if name in summary["benchmarks"]:
            axes.axhline(100 * summary["benchmarks"][name]["pass@1"], linestyle="--", color=colour, alpha=0.6,
                         label=f"{name}, no budget (max_tokens {summary['max_tokens']})")
    budgets = sorted({r["budget"] for r in rows})
    if len(budgets) > 1 and budgets[-1] / budgets[0] >= 8:
        axes.set_xscale("log", base=2)
    axes.set_xticks(budgets, [str(b) for b in budgets])
    axes.set_xlabel("thinking budget (tokens)")
    axes.set_ylabel("pass@1 (%)")
    axes.set_ylim(0, 100)
    axes.set_title(f"Budget forcing: {Path(summary['model'].rstrip('/')).name}")
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=120)
    plt.close(figure)
