"""The quickstart's own stages, run by `distill run recipes/quickstart.yaml` around the real ones.

- `teacher`: writes the synthetic task (teacher training traces, distillation prompts,
  held-out problems), trains the tiny teacher and saves the untrained student.
- `train-unfiltered`: the control arm. Draws as many raw (unfiltered) teacher traces as the
  filter kept and trains the same student on them with the same settings.
- `compare`: evaluates every model on the held-out problems and writes the table and chart.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from distill.data import read_records, write_records
from distill.errors import InputError
from distill.quickstart.config import CompareConfig, TeacherStageConfig
from distill.quickstart.task import make_examples, tokenizer_corpus
from distill.quickstart.teacher import train_teacher
from distill.records import Problem, Trace


def run_teacher(config: TeacherStageConfig) -> dict[str, Any]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from distill.tiny import build_model

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
              id=f"{e.problem.problem_id}#0", sample_index=0, completion="<think>\n" + e.completion)
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
                intermediate_size=2 * shape.hidden_size, max_positions=1024, seed=shape.seed)
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


def run_unfiltered(config) -> dict[str, Any]:
    """Train on as many raw traces as the filter kept, drawn with a fixed seed (the control arm)."""
    from students.train import run as train

    run_dir = Path(config.output_dir).parent
    kept_path, raw_path = run_dir / "filter" / "kept.jsonl", run_dir / "generate" / "traces.jsonl"
    if not kept_path.exists() or not raw_path.exists():
        raise InputError("needs the generate and filter stages' outputs", where=str(run_dir))
    kept = sum(1 for _ in read_records(kept_path))
    raw = sorted(read_records(raw_path), key=lambda t: t.id)  # the file's order depends on completion order
    chosen = random.Random(config.seed).sample(raw, min(kept, len(raw)))
    write_records(config.data, chosen)
    summary = train(config)
    return {"traces": len(chosen), **(summary or {})}


def run_compare(config: CompareConfig) -> dict[str, Any]:
    from distill.evaluate import run as evaluate
    from distill.quickstart.report import mixing_rate, write_report

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, (label, model) in enumerate(config.models.items()):
        folder = out / f"{index}-{re.sub(r'[^a-z0-9]+', '-', label.lower()).strip('-')}"
        settings = config.eval.model_copy(update={"model": model, "output_dir": folder})
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
                "mixing": mixing_rate(samples, config.language),
                "no_answer": figures["no_answer"],
            })
    report = json.loads(Path(config.filter_report).read_text()) if config.filter_report and Path(config.filter_report).exists() else None
    return write_report(rows, out, report)
