"""`distill train`: supervised fine-tuning of a student on kept traces.

Built on transformers' `Trainer` with our own data pipeline (students/dataset.py) rather than
TRL's `SFTTrainer`. Read against trl 1.16, SFTTrainer would give us less control where
distillation needs it:
- its "bfd" packing truncates sequences longer than max_length (or splits them with
  "bfd_split"); a truncated chain of thought loses its answer and eos, so we drop and count
  them instead;
- `assistant_only_loss` re-renders through the tokenizer's template and needs {% generation %}
  markers anyway; we compute the mask from our own templates in one place and test it;
- its padding-free collator rewrites labels at every position id 0 and relies on the model
  to derive sample boundaries; we build the same padding-free layout (one flattened row,
  position ids restarting per sample, no attention mask) and test the isolation directly.
What Trainer gives us is kept: token-level loss normalisation across gradient accumulation
(`num_items_in_batch`), cosine schedule with warmup, gradient checkpointing, bf16, seeded
data order restored on `--resume`, checkpoints, eval loss, accelerate/DeepSpeed/FSDP launch
and tensorboard/wandb reporting.

Run directory (contract with students/publish.py):
  RUN_DIR/final/        full weights, or the PEFT adapter; tokenizer with the training
                        template, eos = end of assistant turn, pad != eos; generation_config
  RUN_DIR/train.json    student, base_model, method, quantization, max_seq_length, learning_rate, epochs,
                        config_overrides (rope changes publish must apply to the base), metrics
  RUN_DIR/checkpoints/checkpoint-N/   resumable with --resume
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from distill.core.config import settings
from distill.core.data import input_kind
from distill.core.errors import InputError, Interrupted, StageError
from distill.core.hub import check_model
from distill.core.models import NF4
from distill.core.paths import Out, check_io, named_paths
from distill.core.stage import Command, Stage
from students import order, resume
from students.config import TrainConfig
from students.dataset import (
    LoadStats,
    PackedDataset,
    PaddedCollator,
    PaddedDataset,
    collate_packed,
    load_conversations,
    split_eval,
    tokenize_all,
)
from students.device_layout import (
    check_sequence_parallel_can_run,
    end_distributed,
    is_main_process,
    plan_inputs,
    predict,
    sequence_parallel_from_launcher,
    world_size,
)
from students.manifest import TrainManifest
from students.mixture import Drawn, describe, mix
from students.planner import GIB
from students.report import plan_report, summary_table
from students.templates import TEMPLATES, prepare_tokenizer, stop_token_ids
from students.training_settings import bf16_in_use

# ---------------------------------------------------------------------------- cheap checks


def check_base_model(base: str) -> dict[str, Any]:
    """The base's config.json as a dict; InputError when `base` is not a model."""
    path = Path(base)
    if path.exists():
        if not (path / "config.json").is_file():
            raise InputError("not a model directory (no config.json)", where=base, field="base_model")
        try:
            return json.loads((path / "config.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"unreadable config.json ({exc})", where=base, field="base_model") from None
    check_model(base, "base_model")  # a hub id while the hub is unreachable fails here, at once
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(base).to_dict()
    except Exception as exc:  # hub/offline errors come in many types; all mean "no model here"
        raise InputError(f"cannot load the model config ({type(exc).__name__}: {str(exc).splitlines()[0]})", where=base, field="base_model") from None


def load_tokenizer(base: str, config: TrainConfig):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
    except Exception as exc:
        raise InputError(f"cannot load the tokenizer ({type(exc).__name__}: {str(exc).splitlines()[0]})", where=base, field="base_model") from None
    template = TEMPLATES[config.template or config.student_preset.template]
    return prepare_tokenizer(tokenizer, template, config.student_preset.pad_token, where=base), template


def _check_run_dir(config: TrainConfig) -> Path:
    """Before anything is read: inputs exist, and the run directory is ours to write (never a user's final/)."""
    for path in [path for path, _ in config.sources()] + [config.eval_data]:  # a local-looking path that is not there is "not found", not a hub error
        if path:
            input_kind(path)
    run_dir = Path(config.output_dir)
    outputs = [Out(run_dir, "output_dir", kind="dir"), Out(run_dir / "final", "output_dir", kind="dir", replace=True),
               Out(run_dir / "train.json", "output_dir")]
    check_io(outputs, named_paths(config, skip=("output_dir",)))
    if (run_dir / "train.json").exists() and not (config.resume or config.overwrite):
        raise InputError("already holds a finished run (use --resume to continue it or --overwrite)", where=str(run_dir), field="output_dir")
    if (run_dir / "final").exists() and not (run_dir / "train.json").exists():
        raise InputError("holds a final/ folder that no finished training run wrote; choose another output_dir or move it away",
                         where=str(run_dir), field="output_dir")
    return run_dir


def context_overrides(config: TrainConfig, base_config: dict[str, Any], max_length: int) -> dict[str, Any]:
    """Config changes for training past the base's window (see presets.py for the decision)."""
    native = base_config.get("max_position_embeddings") or config.student_preset.native_context
    theta = config.rope_theta
    if theta is None and config.extend_context and max_length > native:
        theta = config.student_preset.long_rope_theta
    if theta is None:
        return {}
    return {"rope_theta": float(theta), "max_position_embeddings": max(max_length, native, 32768)}


# ---------------------------------------------------------------------------- the run


def run(config: TrainConfig, callbacks: list | None = None) -> dict[str, Any]:
    """Train, save RUN_DIR/final and RUN_DIR/train.json; returns the train.json contents."""
    for name, flag in (("data", "--data"), ("output_dir", "--output")):
        if getattr(config, name) is None:
            raise InputError(f"required for training ({flag}); only --plan works without it", field=name)
    run_dir = _check_run_dir(config)
    config = sequence_parallel_from_launcher(config)
    preset = config.student_preset
    base = config.base_model or preset.model_id
    base_config = check_base_model(base)
    inputs = plan_inputs(config, base_config)  # also refuses a sequence-parallel degree that cannot run
    config = config.model_copy(update={"sequence_parallel": inputs["sp"]})
    if inputs["sp"] > 1:
        check_sequence_parallel_can_run(config)
    if config.objective == "kd" and (config.loss_kernel in ("liger", "plain") or inputs["sp"] > 1):
        raise InputError("--objective kd runs through the chunked loss on whole sequences: use --loss-kernel auto or chunked, "
                         "and no sequence parallelism", field="objective")
    from students.loss import liger_available  # torch: imported once a run starts, never by `distill --help`

    if config.loss_kernel == "liger" and not liger_available(base_config.get("model_type")):
        raise InputError("liger needs a CUDA GPU, liger-kernel (the gpu extra) and a model type Liger patches",
                         field="loss_kernel")
    doctor_warnings = []
    if config.doctor:  # the silent failures (empty loss mask, pad == eos, a prompt unlike training's) stop the run here
        from students.doctor.training import preflight

        doctor_warnings = preflight(config)
    tokenizer, template = load_tokenizer(base, config)
    max_length = config.max_seq_length

    stats = LoadStats()
    notes, drawn, levels = [], None, None
    if config.objective == "kd":
        from students.kd import prepare

        tokenizer, train_examples, eval_examples, note = prepare(config, base_config, tokenizer, template, max_length, stats)
        if note:
            notes.append(note)
            _warn(note)
    else:
        train_examples, eval_examples, drawn, levels = sft_examples(config, tokenizer, max_length, stats)
    if not train_examples:
        raise InputError(
            f"no usable rows: all {stats.dropped_too_long} training samples are longer than max_seq_length {max_length}",
            where=", ".join(path for path, _ in config.sources()),
        )

    predicted = predict(config, inputs)
    warnings = notes
    for line in doctor_warnings:
        from rich.markup import escape

        warnings.append(line)
        _warn(escape(line))
    if predicted.total * 1.1 > inputs["gpu_memory_gib"] * GIB:
        warnings.append(
            f"predicted peak {predicted.total / GIB:.1f} GiB per GPU exceeds {inputs['gpu_memory_gib']:.0f} GiB "
            f"({config.method}, {inputs['gpus']} GPU(s), {inputs['sharding']}, sp {inputs['sp']}, {inputs['loss']} loss): "
            "see `distill train --plan`"
        )
        _warn(warnings[-1])
    import torch

    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" and not torch.cuda.is_available():
        # accelerate turns FSDP on only for GPU-like devices; on CPU the same launch is plain DDP
        warnings.append("FSDP does not run on CPU: this launch trains as DDP, every process holding the whole model")
        _warn(warnings[-1])

    from students.trainer import build_trainer

    overrides = context_overrides(config, base_config, max_length)
    use_bf16, overruled = bf16_in_use(config.bf16)
    warnings += [overruled] if overruled else []
    train_set, eval_set, collator = datasets(train_examples, eval_examples, levels, config.packing, max_length, tokenizer)
    # under sequence parallelism `sp` GPUs share each sequence: the data-parallel degree is world / sp
    data_parallel = max(1, world_size() // config.sequence_parallel)
    grad_accum = config.grad_accum or max(1, preset.global_batch // (config.batch_size * data_parallel))

    trainer = build_trainer(config, base, tokenizer, train_set, eval_set, collator, overrides, use_bf16, grad_accum, callbacks or [])
    resume_from = resume.resume_point(config, run_dir)  # the same command resumes its own unfinished run
    if trainer.is_world_process_zero():
        resume.record(config, run_dir, fresh=resume_from is None)

    started = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=resume_from)
    except KeyboardInterrupt:  # Ctrl-C, a scheduler's SIGTERM: say what is kept and how to continue
        raise Interrupted(resume.interrupted(run_dir)) from None
    except torch.OutOfMemoryError as exc:
        raise StageError(f"out of memory ({str(exc).splitlines()[0]}); see `distill train --plan`") from None
    elapsed = time.perf_counter() - started
    eval_loss = trainer.evaluate()["eval_loss"] if eval_set is not None else None
    from students.trainer import memory_peaks

    measured = {"steady_tokens_per_s": trainer.step_meter.steady_tokens_per_s(), **memory_peaks(),
                "predicted_peak_bytes": int(predicted.total)}  # the planner's figure for this run, next to the peaks

    summary = _summary(config, base, template, tokenizer, base_config, overrides, use_bf16, grad_accum, stats,
                       train_set, trainer, result, eval_loss, elapsed, warnings, drawn, measured)
    _save_final(trainer, tokenizer, run_dir, summary)
    return summary.model_dump(mode="json")


def sft_examples(config: TrainConfig, tokenizer, max_length: int, stats: LoadStats) -> tuple[list, list, list[Drawn] | None, list | None]:
    """(train examples in training order, eval examples, what each source gave, the examples' levels
    in the --order curriculum: None when shuffled; students/order.py)."""
    train_conversations, eval_conversations, drawn = load_data(config, stats)
    if config.subset == "hard":
        train_conversations = order.hard_subset(config, train_conversations)
    levels = order.levels(config, train_conversations)
    train_examples = tokenize_all(tokenizer, train_conversations, max_length, stats)
    eval_examples = tokenize_all(tokenizer, eval_conversations, max_length, LoadStats()) if eval_conversations else []
    if config.order != "shuffle":
        levels = [level for level, length in zip(levels, stats.lengths, strict=True) if length <= max_length]  # as tokenize_all kept
        train_examples, levels = order.arrange(train_examples, levels)
        return train_examples, eval_examples, drawn, levels
    return train_examples, eval_examples, drawn, None


def datasets(train_examples: list, eval_examples: list, levels: list | None, packing: bool, max_length: int, tokenizer):
    """(train set, eval set, collator). `levels`: the examples are in --order (read sequentially, loop.py)
    and packs keep it."""
    if packing:
        packs = order.ordered_packs([len(example[0]) for example in train_examples], max_length, levels) if levels is not None else None
        eval_set = PackedDataset(eval_examples, max_length) if eval_examples else None
        return PackedDataset(train_examples, max_length, packs), eval_set, collate_packed
    return PaddedDataset(train_examples), PaddedDataset(eval_examples) if eval_examples else None, PaddedCollator(tokenizer.pad_token_id)


def load_data(config: TrainConfig, stats: LoadStats) -> tuple[list, list, list[Drawn] | None]:
    """(train, eval conversations, what each source gave). Each source gives its own eval share
    (grouped by prompt), then the training parts are mixed (students/mixture.py)."""
    sources = config.sources()
    parts = []
    eval_conversations: list = []
    for path, weight in sources:
        conversations = load_conversations(path, stats, config)
        if not config.eval_data:
            conversations, held_out = split_eval(conversations, config.eval_fraction, config.seed)
            eval_conversations += held_out
        parts.append((path, weight, conversations))
    if config.eval_data:
        eval_conversations = load_conversations(config.eval_data, layout=config)
    if len(parts) == 1:
        return parts[0][2], eval_conversations, None
    train_conversations, drawn = mix(parts, config.mix_size, config.seed)
    if not train_conversations:
        raise InputError("the mixture is empty (a source with a share has no conversations left after the eval split)", field="mix")
    return train_conversations, eval_conversations, drawn


def _summary(config, base, template, tokenizer, base_config, overrides, use_bf16, grad_accum, stats, train_set,
             trainer, result, eval_loss, elapsed, warnings, drawn=None, measured=None) -> TrainManifest:
    state = trainer.state
    curve = [[entry["step"], round(entry["loss"], 6)] for entry in state.log_history if "loss" in entry]
    eval_curve = [[entry["step"], round(entry["eval_loss"], 6)] for entry in state.log_history if "eval_loss" in entry]
    seen = state.num_input_tokens_seen or 0
    return TrainManifest(**{
        "student": config.student,
        "base_model": base,
        "model_id": config.student_preset.model_id,
        "family": config.student_preset.family,
        "method": config.method,
        "template": template.name,
        "eos_token": tokenizer.eos_token,
        "pad_token": tokenizer.pad_token,
        "stop_token_ids": stop_token_ids(tokenizer, template, base_config.get("eos_token_id")),
        "quantization": NF4 if config.method == "qlora" else None,
        "lora": {"r": config.lora_r, "alpha": config.lora_alpha, "dropout": config.lora_dropout, "targets": config.lora_targets}
        if config.method != "full" else None,
        "config_overrides": overrides,
        "max_seq_length": config.max_seq_length,
        "learning_rate": config.learning_rate,
        "epochs": config.epochs,
        "max_steps": config.max_steps,
        "batch_size": config.batch_size,
        "grad_accum": grad_accum,
        "world_size": world_size(),
        "bf16": use_bf16,
        "packing": config.packing,
        "loss_kernel": trainer.loss_kernel,
        "sequence_parallel": config.sequence_parallel,
        "data": describe(drawn) if drawn else str(config.data),
        "mixture": [source.as_dict() for source in drawn] if drawn else None,
        "eval_data": config.eval_data,
        "warnings": warnings,
        "metrics": {
            "steps": state.global_step,
            "train_loss": round(result.training_loss, 6),
            "train_loss_curve": curve,
            "eval_loss": round(eval_loss, 6) if eval_loss is not None else None,
            "eval_loss_curve": eval_curve,
            "tokens_per_s": round(seen / elapsed, 1) if elapsed > 0 else None,
            "tokens_seen": seen,
            "train_runtime_s": round(elapsed, 2),
            "rows": stats.rows,
            "rejected_skipped": stats.rejected_skipped,
            "dropped_too_long": stats.dropped_too_long,
            "examples": stats.examples,
            "sequences": len(train_set),
            "label_tokens": stats.label_tokens,
            **(measured or {}),
        },
        "config": settings(config),
    })


def _save_final(trainer, tokenizer, run_dir: Path, summary: TrainManifest) -> None:
    """final/ and train.json appear whole or not at all (written aside, then renamed)."""
    tmp = run_dir / ".final.tmp"  # one name for every rank; an interrupted run's is replaced here
    if trainer.is_world_process_zero() and tmp.exists():
        shutil.rmtree(tmp)
    trainer.save_model(str(tmp))  # collective under ZeRO-3/FSDP: every rank calls it
    if not trainer.is_world_process_zero():
        return
    tokenizer.save_pretrained(tmp)
    generation = trainer.model.generation_config if hasattr(trainer.model, "generation_config") else None
    if generation is not None:
        generation.eos_token_id = summary.stop_token_ids
        generation.pad_token_id = tokenizer.pad_token_id
        generation.save_pretrained(tmp)
    final = run_dir / "final"
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    summary.write(run_dir / "train.json")


def _warn(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[yellow]warning:[/yellow] {message}")


def run_command(config: TrainConfig, plan: bool = False) -> dict[str, Any] | None:
    """`distill train`: --plan prints the memory plan and trains nothing; the process group ends either way."""
    if plan:
        plan_report(config, Console())
        return None
    try:
        return run(config)
    finally:
        end_distributed()


def present(summary: dict[str, Any], config: TrainConfig) -> None:
    """The summary table, once: under a launcher every rank returns one."""
    if is_main_process():
        Console().print(summary_table(summary))


STAGES = (
    Stage(
        name="train", section="train", default_run=True, config=TrainConfig, run=run, resumable=True,
        reads={"data": "kept", "base_model": "student_base", "pass_rates": "prompt_stats"},
        writes={"output_dir": ""}, produces={"student_run": "", "student_model": "final"}, operational=("doctor",),
        command=Command("Fine-tune a student on kept traces (full, --lora or --qlora), with packing and checkpoints.", present=present,
                        switches={"plan": ("Print predicted memory per GPU for full/LoRA/QLoRA and exit.", "Memory planner (--plan)")},
                        run=run_command),
    ),
    # Light-R1's second SFT stage: the `train` section's settings, continued from train's student on
    # the hard prompts only (pass rate at most hard_pass_rate_max in the filter's per-prompt statistics).
    Stage(
        name="train-hard", section="train", config=TrainConfig, run=run, resumable=True, in_run={"subset": "hard"},
        reads={"data": "kept", "base_model": "student_model", "pass_rates": "prompt_stats"},
        writes={"output_dir": ""}, produces={"student_run": "", "student_model": "final"}, operational=("doctor",),
    ),
)
