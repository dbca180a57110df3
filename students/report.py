"""What `distill students`, `distill train --plan` and a finished run print (rich tables)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from students.config import TrainConfig
from students.planner import GIB, plan, plan_table
from students.presets import STUDENTS


def students_table() -> Table:
    """The presets, each with the planner's verdict for its own method, GPUs, length and SP."""
    from students.device_layout import plan_inputs, predict

    table = Table(title="Student presets (distill train --student NAME)",
                  caption="GPUs: 80 GB each, SP = GPUs per sequence; plan: predicted peak GiB per GPU (distill train --plan)")
    for column in ("name", "base model", "template", "max len", "lr", "epochs", "batch", "method", "GPUs", "accelerate",
                   "plan"):
        table.add_column(column, justify="right" if column in ("max len", "epochs", "batch", "plan") else "left")
    for preset in STUDENTS.values():
        config = TrainConfig(student=preset.name, method=preset.method)
        inputs = plan_inputs(config)
        total = predict(config, inputs).total
        fits = total * 1.1 <= inputs["gpu_memory_gib"] * GIB
        gpus = f"{preset.gpus}" + (f", SP {inputs['sp']}" if inputs["sp"] > 1 else "")
        table.add_row(
            preset.name, preset.model_id, preset.template, str(preset.max_length), f"{preset.learning_rate:g}",
            str(preset.epochs), str(preset.global_batch), preset.method, gpus, preset.accelerate,
            f"{total / GIB:.1f}" + ("" if fits else " [red]too big[/red]"),
        )
    return table


def plan_report(config: TrainConfig, console: Console | None = None) -> dict[str, Any]:
    """Print the planner's table for this config (nothing heavy is loaded); returns the figures."""
    from students.device_layout import plan_inputs

    console = console or Console()
    inputs = plan_inputs(config)
    arch = inputs["arch"]
    rows = plan(arch, inputs["tokens"], inputs["gpus"], inputs["gpu_memory_gib"], inputs["sharding"],
                checkpointing=config.gradient_checkpointing, lora_rank=config.lora_r, loss=inputs["loss"],
                loss_chunk=inputs["loss_chunk"], sp=inputs["sp"])
    title = (
        f"{config.student} ({arch.params / 1e9:.2f}B params): {inputs['tokens']} tokens/micro-step, "
        f"{inputs['gpus']} GPU(s) x {inputs['gpu_memory_gib']:.0f} GiB, sharding {inputs['sharding']}, "
        f"sequence parallel {inputs['sp']}, {inputs['loss']} loss, "
        f"checkpointing {'on' if config.gradient_checkpointing else 'off'}"
    )
    console.print(plan_table(rows, title))
    chosen = next(fits for found, fits in rows if found.method == config.method)
    if not chosen:
        console.print(f"[yellow]warning:[/yellow] {config.method} does not fit; "
                      "try more GPUs with --sharding zero3, --sp 2, --qlora, or a shorter --max-length / --batch-size")
    return {
        "params": arch.params,
        "gpus": inputs["gpus"],
        "gpu_memory_gib": inputs["gpu_memory_gib"],
        "sharding": inputs["sharding"],
        "tokens": inputs["tokens"],
        "sp": inputs["sp"],
        "loss": inputs["loss"],
        "methods": {found.method: {"total_gib": round(found.total / GIB, 2), "logits_gib": round(found.logits / GIB, 2),
                                   "fits": fits} for found, fits in rows},
    }


def summary_table(summary: dict[str, Any]) -> Table:
    metrics = summary["metrics"]
    return _two_columns(f"distill train: {summary['student']} ({summary['method']})", [
        ("base model", summary["base_model"]),
        ("objective", _objective(summary["config"])),
        *_mixture(summary.get("mixture")),
        ("rows read / usable", f"{metrics['rows']} / {metrics['examples']}"),
        ("dropped (longer than max_seq_length)", f"{metrics['dropped_too_long']} (max_seq_length {summary['max_seq_length']})"),
        ("packed sequences", str(metrics["sequences"])),
        ("optimizer steps", str(metrics["steps"])),
        _train_loss(metrics),
        ("eval loss", "-" if metrics["eval_loss"] is None else f"{metrics['eval_loss']:.4f}"),
        ("tokens/s", f"{metrics['tokens_per_s']:.0f}" if metrics["tokens_per_s"] else "-"),
        ("runtime", f"{metrics['train_runtime_s']:.0f} s"),
        ("peak memory (planner)", _peak(metrics)),
        ("output", "final/ and train.json"),
    ])


def _peak(metrics: dict[str, Any]) -> str:
    """The measured peak (GPU: the allocator's peak allocated; CPU: the process's RSS) next to the planner's figure."""
    gpu, rss, predicted = (metrics.get(key) for key in ("peak_gpu_allocated_bytes", "peak_rss_bytes", "predicted_peak_bytes"))
    measured = f"{gpu / GIB:.1f} GiB allocated on the GPU" if gpu else f"{rss / GIB:.1f} GiB resident (CPU)" if rss else "-"
    return measured + (f" ({predicted / GIB:.1f} GiB per GPU predicted)" if predicted else "")


def onpolicy_table(summary: dict[str, Any]) -> Table:
    """What a finished `distill onpolicy` run prints."""
    on, metrics = summary["onpolicy"], summary["metrics"]
    kl = on.get("reverse_kl_curve") or on.get("divergence_curve") or []
    speed = on["tokens_per_s"]
    return _two_columns(f"distill onpolicy: {summary['student']} (teacher {on['teacher_mode']}, beta {on['beta']})", [
        ("student", on["student_model"]),
        ("trained", "every weight" if summary["method"] == "full" else f"a {summary['method']} adapter on {summary['base_model']}"),
        ("prompts (distinct / skipped as too long)", f"{on['prompts']['distinct']} / {on['prompts']['too_long']}"),
        ("optimizer steps", str(metrics["steps"])),
        ("reverse KL per token (first -> last)" if on["beta"] == 1 else "divergence per token (first -> last)",
         f"{kl[0][1]:.4f} -> {kl[-1][1]:.4f}" if kl else "-"),
        ("completions (stopped / all)", f"{on['stopped']} / {on['completions']}"),
        ("student tokens sampled", f"{on['sampled_tokens']:,}"),
        ("teacher tokens read (prompt / completion)", f"{on['teacher_tokens']['prompt']:,} / {on['teacher_tokens']['completion']:,}"),
        ("tokens/s: sample / score / update", " / ".join("-" if speed[k] is None else f"{speed[k]:,.0f}" for k in ("sample", "score", "update"))),
        ("runtime", f"{metrics['train_runtime_s']:.0f} s"),
        ("output", "final/ and train.json"),
    ])


def grpo_table(summary: dict[str, Any]) -> Table:
    """What a finished `distill grpo` run prints."""
    grpo, metrics = summary["grpo"], summary["metrics"]
    first, last = grpo["first_step"], grpo["last_step"]

    def change(key: str) -> str:
        return f"{first[key]:.3f} -> {last[key]:.3f}" if first.get(key) is not None and last.get(key) is not None else "-"

    weights = ", ".join(f"{name} {weight:g}" for name, weight in grpo["reward_weights"].items())
    return _two_columns(f"distill grpo: {summary['student']} ({grpo['num_generations']} completions per prompt, beta {grpo['beta']})", [
        ("student", grpo["student_model"]),
        ("trained", "every weight" if summary["method"] == "full" else f"a {summary['method']} adapter on {summary['base_model']}"),
        ("prompts (distinct / skipped as too long)", f"{grpo['prompts']['distinct']} / {grpo['prompts']['too_long']}"),
        ("reward weights", weights),
        ("optimizer steps", str(metrics["steps"])),
        *((f"reward/{name} (first -> last step)", change(f"reward/{name}")) for name in grpo["reward_weights"]),
        ("total reward (first -> last step)", change("reward")),
        ("language mixing share (first -> last step)", change("mixing")),
        ("completion length (first -> last step)", change("completion_length")),
        ("KL to the start (last step)", f"{last['kl']:.4f}" if last.get("kl") is not None else "- (beta 0)"),
        ("rollouts cut at max length / all", f"{grpo['truncated']} / {grpo['completions']} ({grpo['rollouts']})"),
        ("completions graded (in worker processes)", f"{grpo['graded']} in {grpo['grading_s']:.1f} s"),
        ("runtime", f"{metrics['train_runtime_s']:.0f} s"),
        ("output", "final/, train.json, steps.jsonl" + (", rewards.png" if grpo.get("plot") else "")),
    ])


def _two_columns(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    for name, value in rows:
        table.add_row(name, value)
    return table


def _mixture(sources: list[dict[str, Any]] | None) -> list[tuple[str, str]]:
    """One row per source of a `--data A --data B --mix` run: its share and what was drawn from it."""
    rows = []
    for index, source in enumerate(sources or []):
        share = f"{100 * source['weight']:g}% share, " if source.get("weight") is not None else ""
        repeated = f", {source['repeated']} repeated" if source.get("repeated") else ""
        rows.append((f"data {index + 1}", f"{Path(source['path']).name}: {share}{source['used']} of {source['available']} conversations{repeated}"))
    return rows


def _objective(config: dict[str, Any]) -> str:
    if config.get("objective") != "kd":
        return "sft (cross-entropy on the traces)"
    return f"kd: (1 - {config['kd_alpha']}) CE + {config['kd_alpha']} T^2 KL to the teacher's top-K, T = {config['kd_temperature']}"


def _train_loss(metrics: dict[str, Any]) -> tuple[str, str]:
    """First -> last of the logged curve; a run shorter than --logging-steps logged none: its mean loss."""
    if metrics.get("train_loss_curve") or metrics.get("train_loss") is None:
        return "train loss (first -> last)", _first_last(metrics.get("train_loss_curve") or [])
    return "train loss (mean, no step logged)", f"{metrics['train_loss']:.4f} over {metrics['steps']} steps (< --logging-steps)"


def _first_last(curve: list[list[float]]) -> str:
    if not curve:
        return "-"
    return f"{curve[0][1]:.4f} -> {curve[-1][1]:.4f}"
