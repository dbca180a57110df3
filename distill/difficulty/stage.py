"""`distill difficulty`: how hard each training prompt is for the student (open-r1's pass-rate filtering).

The student (the base before training, or an earlier student) is sampled k times on every prompt
through the sampling layer, as eval samples a model (`teacher.sampler.sample` into a record sink on
the samples file: a re-run samples only what the file lacks, a crash leaves it resumable), each
sample is graded by the one verifier (math answers; code against the prompt's tests), and each
prompt's pass rate goes out in the per-prompt rows `filter --prompt-stats` writes
(distill.core.prompt_stats). `train --pass-rates FILE --order difficulty|--subset hard` and
`filter --pass-rates FILE --pass-rate-max X` read them; in a run, train takes them from this stage.

A prompt without a reference answer or tests cannot be graded: it is not sampled and has no row
(a file without one gradable prompt is bad input). Neither has a prompt the backend skipped (longer
than the context). The rows are rewritten from the whole samples file on every run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.core import lock
from distill.core.data import read_problems, read_records
from distill.core.errors import InputError, Interrupted
from distill.core.hub import check_model
from distill.core.paths import Out, check_io, named_paths
from distill.core.prompt_stats import PromptStats, pass_rate, write_rows
from distill.core.records import Problem, Trace
from distill.core.stage import Command, Stage
from distill.core.verify.options import VerifyOptions
from distill.difficulty.config import DifficultyConfig
from students.presets import STUDENTS
from teacher import backends
from teacher.prompts import job_for
from teacher.sampler import sample
from teacher.sink import TraceSink


def student_model(name: str) -> str:
    """What the sampling layer loads for `name`: a preset's base model, a train run's final/, or `name` itself."""
    if name in STUDENTS:
        return STUDENTS[name].model_id
    folder = Path(name)
    if (folder / "final" / "config.json").is_file():
        return str(folder / "final")
    if (folder / "final" / "adapter_config.json").is_file() or (folder / "adapter_config.json").is_file():
        raise InputError("an adapter, which the engine does not load alone: merge it first (`distill publish RUN`)", where=name, field="model")
    return name


def gradable(problem: Problem) -> bool:
    """Whether the verifier can grade samples of this prompt: code tests, or a reference answer."""
    return bool(problem.tests) or bool(str(problem.answer or "").strip())


def load_prompts(config: DifficultyConfig) -> tuple[list[Problem], int]:
    """The prompts to sample, each problem id once, and how many could not be graded (no reference)."""
    problems: dict[str, Problem] = {}
    ungradable = 0
    for problem in read_problems(config.prompts, config.fields, config.split):
        if config.limit is not None and len(problems) + ungradable >= config.limit:
            break
        if problem.problem_id in problems:
            continue
        if not gradable(problem):
            ungradable += 1
            continue
        problems[problem.problem_id] = problem
    if not problems:
        raise InputError(f"no prompt has a reference answer (column '{config.fields.answer}') or code tests: the student's "
                         "samples cannot be graded; give prompts with answers (--fields-answer names the column)",
                         where=config.prompts, field=config.fields.answer)
    return list(problems.values()), ungradable


def check(config: DifficultyConfig) -> None:
    """Cheap checks, before anything is loaded or written."""
    if not str(config.samples).endswith(".jsonl"):
        raise InputError("the samples file is appended to, so it must be .jsonl", where=str(config.samples), field="samples")
    check_io([Out(config.output, "output"), Out(config.samples, "samples")], named_paths(config, skip=("output", "samples")))
    backends.load(config.sampling.backend).check(config.sampling)


def run(config: DifficultyConfig) -> dict[str, Any]:
    """Sample the student k times per prompt, grade, write the per-prompt rows; returns the summary."""
    check(config)
    problems, ungradable = load_prompts(config)  # bad input fails here, before anything is written
    sampling = config.sampling.model_copy(update={"model": student_model(config.model)})
    if not backends.load(sampling.backend).remote:
        check_model(sampling.model, "model")
    with lock.hold(config.samples, field="samples"):  # one writer: a second would sample everything again
        sink = TraceSink(Path(config.samples), sampling.info(config.think_prefill))
        held = (sink.state.teacher or {}).get("model")
        if held and held != sampling.model:
            raise InputError(f"holds samples of '{held}', not '{sampling.model}'; write to a new file", where=str(config.samples), field="samples")
        jobs = [job_for(problem, list(range(sampling.n)), config) for problem in problems]
        try:
            sample(sampling, jobs, sink)
        except KeyboardInterrupt:
            raise Interrupted(f"{sink.written} samples written to {config.samples}; re-run the same command to resume") from None
        stats = grade(config, problems, sampling.n)
        rows = write_rows(config.output, stats.values())
    drawn = sum(entry.drawn for entry in stats.values())
    return {  # the first figures are what a run's table shows
        "graded_prompts": rows["prompts"], "samples": drawn,
        "mean_pass_rate": round(sum(pass_rate(e.correct, e.drawn) for e in stats.values()) / len(stats), 4) if stats else None,
        "always_solved": rows["always_solved"], "never_solved": rows["never_solved"], "samples_written": sink.samples,
        "model": sampling.model, "k": sampling.n, "prompts": len(problems), "not_sampled": len(problems) - rows["prompts"],
        "ungradable": ungradable, "correct": sum(entry.correct for entry in stats.values()),
        "output": config.output, "samples_file": str(config.samples),
    }


def grade(config: DifficultyConfig, problems: list[Problem], k: int) -> dict[str, PromptStats]:
    """Every sample of the samples file for these prompts (the first k of each), graded; per prompt, in prompt order.
    A sample counts as correct when the verifier passes it (and as kept: no other rule runs)."""
    from distill.core.verify import grade as verify

    wanted = {problem.problem_id for problem in problems}
    written = read_records(config.samples, Trace) if Path(config.samples).is_file() else ()  # none: every prompt was skipped
    traces = (t for t in written if t.problem_id in wanted and t.sample_index < k)
    options = VerifyOptions(**config.model_dump(include=set(VerifyOptions.model_fields)))
    found: dict[str, PromptStats] = {}
    for trace, verdict in _progress(verify(traces, workers=config.workers, options=options), len(wanted) * k):
        found.setdefault(trace.problem_id, PromptStats(trace.problem_id)).add(
            trace.id, verdict.passed, verdict.passed, trace.prompt_tokens, trace.completion_tokens, len(trace.completion))
    return {problem.problem_id: found[problem.problem_id] for problem in problems if problem.problem_id in found}


def _progress(items, total: int):
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task("grading", total=total)
        for item in items:
            yield item
            progress.advance(task)


def present(summary: dict[str, Any], config: DifficultyConfig) -> None:
    """The summary table on stderr."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"difficulty: {summary['model']}, k={summary['k']}", title_justify="left", show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    mean = summary["mean_pass_rate"]
    for label, value in (("prompts graded", f"{summary['graded_prompts']:,}"),
                         ("samples (new this run)", f"{summary['samples']:,} ({summary['samples_written']:,})"),
                         ("mean pass rate", "-" if mean is None else f"{mean:.3f}"),
                         ("always solved", f"{summary['always_solved']:,}"), ("never solved", f"{summary['never_solved']:,}"),
                         ("no reference answer or tests (no row)", f"{summary['ungradable']:,}"),
                         ("not sampled, longer than the context (no row)", f"{summary['not_sampled']:,}")):
        table.add_row(label, value)
    console = Console(stderr=True)
    console.print(table)
    console.print(f"per-prompt pass rates in {summary['output']} (samples in {summary['samples_file']})")


def _served_name(field: str, value: str, config: DifficultyConfig) -> bool:
    return field == "model" and (backends.load(config.sampling.backend).remote or value in STUDENTS)


STAGES = (
    Stage(
        name="difficulty", section="difficulty", config=DifficultyConfig, run=run, check=check, resumable=True,
        # The student before training (the quickstart's base, else train's base model or preset) on generate's prompts.
        reads={"prompts": "prompts", "model": "student_base"},
        defaults={"prompts": "generate.prompts", "model": "train.base_model", "student": "train.student"},
        writes={"output": "prompts.jsonl", "samples": "samples.jsonl"}, produces={"prompt_stats": "prompts.jsonl"}, remote=_served_name,
        operational=("workers", "max_pending", "gpu_memory_utilization", "kv_cache_memory_bytes", "max_num_seqs"),
        command=Command("Sample the student k times per training prompt, grade, write each prompt's pass rate (the rows of "
                        "`filter --prompt-stats`).", ("model",), present),
    ),
)
