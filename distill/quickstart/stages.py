"""The quickstart's own stages, run by `distill run recipes/quickstart.yaml` around the real ones.

- `teacher`: writes the synthetic task (teacher training traces, distillation prompts,
  held-out problems), trains the tiny teacher and saves the untrained student.
- `train-unfiltered`: the control arm. Draws as many raw (unfiltered) teacher traces as the
  filter kept and trains the same student on them with the same settings.
- `train-kd`: the logit-distillation arm. The `train` section's settings and the same kept
  traces, trained with `objective: kd` (the teacher's recorded top-K log-probabilities), so
  that SFT and KD compare at an equal number of teacher tokens.
- `compare`: evaluates every model on the held-out problems and writes the table and chart.
- `quantized` (recipes/deploy.yaml): evaluates the published student's GGUF files, each served
  by llama.cpp, with the same evaluation and report code; the table adds tokens/s and file size.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from distill.core.data import read_records, write_records
from distill.core.errors import InputError
from distill.core.r1_format import restore_prefill
from distill.core.records import Problem, Trace
from distill.core.stage import Stage
from distill.evaluate.config import EvalSettings
from distill.quickstart.config import CompareConfig, QuantizedConfig, QuickstartConfig, UnfilteredConfig
from distill.quickstart.task import PREFILL, make_examples, tokenizer_corpus
from distill.quickstart.teacher import train_teacher
from students.config import TrainConfig


def run_teacher(config: QuickstartConfig) -> dict[str, Any]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from distill.quickstart.tiny import build_model

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    teaching = make_examples(config.teacher_problems, config.seed, config.wrong_rate, config.mixed_rate, prefix="t")
    seen = {e.problem.problem for e in teaching}
    heldout = make_examples(config.heldout, config.seed + 1, exclude=seen, prefix="h")
    seen |= {e.problem.problem for e in heldout}
    prompts = make_examples(config.prompts, config.seed + 2, exclude=seen, prefix="p")
    write_records(out / "heldout.jsonl", [e.problem for e in heldout], model=Problem)
    write_records(out / "prompts.jsonl", [e.problem for e in prompts], model=Problem)
    write_records(out / "teacher-train.jsonl", [
        Trace(**e.problem.model_dump(exclude={"source"}), source={"wrong": e.wrong, "mixed": e.mixed},
              id=f"{e.problem.problem_id}#0", sample_index=0, completion=restore_prefill(e.completion, PREFILL))
        for e in teaching
    ])

    with Progress(TextColumn("training the tiny teacher"), BarColumn(), TextColumn("{task.completed}/{task.total} loss {task.fields[loss]}"),
                  TimeElapsedColumn()) as bar:
        task = bar.add_task("teacher", total=config.teacher.steps, loss="-")
        metrics = train_teacher(teaching, out / "model", config.teacher,
                                progress=lambda step, loss: bar.update(task, completed=step, loss=f"{loss:.3f}"))
    print(f"teacher: {metrics['parameters']:,} parameters, {metrics['steps']} steps on {len(teaching)} traces "
          f"({sum(e.wrong for e in teaching)} wrong, {sum(e.mixed for e in teaching)} drifting into Chinese), "
          f"final loss {metrics['final_loss']}, {metrics['seconds']} s", flush=True)
    shape = config.student
    build_model(out / "student-base", family="qwen", corpus=tokenizer_corpus(teaching), vocab_size=config.teacher.vocab_size,
                hidden_size=shape.hidden_size, layers=shape.layers, heads=shape.heads, kv_heads=max(1, shape.heads // 2),
                intermediate_size=2 * shape.hidden_size, max_positions=1024, seed=shape.seed, tokenizer=shape.tokenizer)
    return {
        "teacher_train_traces": len(teaching),
        "wrong_traces": sum(e.wrong for e in teaching),
        "mixed_traces": sum(e.mixed for e in teaching),
        "prompts": len(prompts),
        "heldout": len(heldout),
        "teacher": metrics,
        "student_parameters": _parameters(out / "student-base"),
    }


def _parameters(path: Path) -> int:
    config = json.loads((path / "config.json").read_text())
    h, layers, inter, vocab = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"], config["vocab_size"]
    kv = h * config["num_key_value_heads"] // config["num_attention_heads"]
    return vocab * h + layers * (2 * h * h + 2 * h * kv + 3 * h * inter)  # approximate: norms and biases left out


def run_unfiltered(config: UnfilteredConfig) -> dict[str, Any]:
    """Train on as many raw traces as the filter kept, drawn with a fixed seed (the control arm)."""
    from students.train import run as train

    for path in (config.kept, config.traces):
        if not Path(path).exists():
            raise InputError("not found: the control arm needs the generate and filter stages' outputs", where=path)
    kept = sum(1 for _ in read_records(config.kept))
    raw = sorted(read_records(config.traces), key=lambda t: t.id)  # the file's order depends on completion order
    chosen = random.Random(config.seed).sample(raw, min(kept, len(raw)))
    write_records(config.data, chosen)
    summary = train(TrainConfig.model_validate(config.model_dump(exclude={"traces", "kept"})))
    return {"traces": len(chosen), **(summary or {})}


def run_kd(config: TrainConfig) -> dict[str, Any]:
    """The SFT stage's settings and data, trained on the teacher's recorded probabilities too."""
    from students.train import run as train

    return train(config)


def evaluate_models(models: dict[str, str], config: EvalSettings, benchmarks: list[str], out: Path, language) -> list[dict[str, Any]]:
    """Evaluate every model with the same settings: one row per model and benchmark (into out/N-label/).

    Settings the recipe left unset keep their defaults per model (a .gguf gets the llamacpp backend).
    """
    from distill.evaluate.config import EvalConfig
    from distill.evaluate.stage import run as evaluate
    from distill.quickstart.report import mixing_rate

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    shared = config.model_dump(include=set(EvalSettings.model_fields), exclude_unset=True)
    for index, (label, model) in enumerate(models.items()):
        folder = out / f"{index}-{re.sub(r'[^a-z0-9]+', '-', label.lower()).strip('-')}"
        settings = EvalConfig.model_validate({**shared, "model": model, "output_dir": folder, "benchmarks": benchmarks})
        summary = evaluate(settings)
        for bench, figures in summary["benchmarks"].items():
            samples = list(read_records(folder / f"{bench}.samples.jsonl"))
            rows.append({
                "model": label,
                "path": model,
                "benchmark": bench,
                "problems": figures["problems"],
                "samples": figures["samples"],
                "accuracy": figures["pass@1"],
                "accuracy_stderr": figures["pass@1_stderr"],
                "mixing": mixing_rate(samples, language),
                "no_answer": figures["no_answer"],
                "mean_tokens": figures.get("mean_tokens"),
                "tokens_per_s": summary.get("tokens_per_s"),
            })
    return rows


def run_compare(config: CompareConfig) -> dict[str, Any]:
    from distill.quickstart.report import write_report

    out = Path(config.output_dir)
    rows = evaluate_models(config.models(), config, config.benchmarks, out, config.language)
    report = json.loads(Path(config.filter_report).read_text()) if config.filter_report and Path(config.filter_report).exists() else None
    return write_report(rows, out, report)


def run_quantized(config: QuantizedConfig) -> dict[str, Any]:
    """The published student's GGUF files, each served by llama.cpp, on the held-out problems."""
    from distill.quickstart.report import write_report

    folder = Path(config.model)
    files = {kind: next(iter(folder.glob(f"*-{kind.upper()}.gguf")), None) for kind in config.types}
    missing = [kind for kind, path in files.items() if path is None]
    if missing:
        raise InputError(f"no {', '.join(missing)} GGUF here (publish with --gguf {','.join(config.types)})", where=str(folder))
    out = Path(config.output_dir)
    rows = evaluate_models({kind: str(path) for kind, path in files.items()}, config, config.benchmarks, out, config.language)
    for row in rows:
        row["size_mb"] = Path(row["path"]).stat().st_size / 2**20
    return write_report(rows, out, None, title="GGUF quantizations of the student, served by llama.cpp")

STAGES = (
    Stage(
        name="teacher", section="quickstart", config=QuickstartConfig, run=run_teacher, writes={"output_dir": ""},
        produces={"prompts": "prompts.jsonl", "teacher_model": "model", "student_base": "student-base", "heldout": "heldout.jsonl"},
    ),
    Stage(
        name="train-unfiltered", section="train", config=UnfilteredConfig, run=run_unfiltered,
        reads={"traces": "traces", "kept": "kept", "base_model": "student_base"},
        writes={"output_dir": "", "data": "traces.jsonl"}, produces={"unfiltered_model": "final"},
    ),
    Stage(
        name="train-kd", section="train", config=TrainConfig, run=run_kd, in_run={"objective": "kd"},
        reads={"data": "kept", "base_model": "student_base"}, writes={"output_dir": ""}, produces={"kd_model": "final"},
    ),
    Stage(
        name="quantized", section="quantized", config=QuantizedConfig, run=run_quantized, operational=("workers",),
        reads={"model": "model", "benchmarks": "heldout"}, writes={"output_dir": ""},
    ),
    Stage(
        name="compare", section="compare", config=CompareConfig, run=run_compare, operational=("workers",),
        reads={"teacher": "teacher_model", "student_base": "student_base", "filtered": "model", "unfiltered": "unfiltered_model",
               "benchmarks": "heldout", "filter_report": "filter_report"},
        writes={"output_dir": ""},
    ),
)
