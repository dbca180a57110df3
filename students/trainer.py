"""Model loading (full / LoRA / QLoRA), TrainingArguments and the Trainer for train.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback  # this module is imported lazily, after the cheap checks

from students.config import TrainConfig


def load_model(config: TrainConfig, base: str, overrides: dict[str, Any], use_bf16: bool):
    """The student, ready for the chosen method (adapters attached for LoRA/QLoRA)."""
    import torch

    from distill.core.models import NF4, load_causal_lm

    model = load_causal_lm(base, overrides=overrides, dtype=torch.bfloat16 if use_bf16 else torch.float32,
                           quantization=NF4 if config.method == "qlora" else None, attn=config.attn_implementation, training=True)
    return model if config.method == "full" else add_adapter(model, config)


def add_adapter(model, config):
    """A new LoRA adapter on `model` (4-bit prepared for QLoRA), from the config's lora_* fields
    (train's and onpolicy's configs both carry them)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if config.method == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing, gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    from transformers import set_seed

    set_seed(config.seed)  # the adapter's random init; the Trainer seeds only after the model exists
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_targets,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def prepare_loss(model, config: TrainConfig) -> str:
    """Set up the loss kernel the config asks for (students/loss.py); returns the one that runs:
    liger (applied by the Trainer), chunked (applied here) or plain."""
    from students.loss import resolve_loss, supports_chunked, use_chunked_loss

    if config.objective == "kd":  # the KD term lives in the chunked loss only (train.py refused the other kernels)
        if not supports_chunked(model):
            from distill.core.errors import InputError

            raise InputError("--objective kd needs a plain linear output head (no bias, no logit soft-capping)", field="objective")
        use_chunked_loss(model, config.loss_chunk_size, kd=(config.kd_alpha, config.kd_temperature))
        return "chunked"
    kernel = resolve_loss(config.loss_kernel, getattr(model.config, "model_type", None))
    if kernel == "chunked":
        if not supports_chunked(model):
            return "plain"  # a head the chunked loss does not cover (bias, soft-capping): the full logits
        use_chunked_loss(model, config.loss_chunk_size)
    return kernel


def parallelism_config(config: TrainConfig, attn: str):
    """accelerate's ParallelismConfig for Ulysses sequence parallelism (DeepSpeed ALST); None when off."""
    sp = config.sequence_parallel_degree
    if sp == 1:
        return None
    from accelerate.parallelism_config import ParallelismConfig
    from accelerate.utils import DeepSpeedSequenceParallelConfig

    # variable lengths: packed rows differ from step to step; the loader pads each to a multiple of sp
    handler = DeepSpeedSequenceParallelConfig(sp_seq_length_is_variable=True, sp_attn_implementation=attn)
    return ParallelismConfig(sp_size=sp, sp_backend="deepspeed", sp_handler=handler)


def build_trainer(config: TrainConfig, base: str, tokenizer, train_set, eval_set, collator, overrides, use_bf16: bool,
                  grad_accum: int, callbacks: list):
    import torch
    from transformers import PrinterCallback, Trainer, TrainingArguments

    model = load_model(config, base, overrides, use_bf16)
    loss_kernel = prepare_loss(model, config)
    run_dir = Path(config.output_dir)
    save_steps = config.save_steps
    args = TrainingArguments(
        output_dir=str(run_dir / "checkpoints"),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=grad_accum,
        learning_rate=config.learning_rate,
        num_train_epochs=float(config.epochs),
        max_steps=config.max_steps or -1,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio of the total steps
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=config.save_total_limit,
        eval_strategy="steps" if eval_set is not None else "no",
        eval_steps=config.eval_steps or save_steps,
        bf16=use_bf16,
        gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        report_to=[] if config.report_to == "none" else [config.report_to],
        seed=config.seed,
        data_seed=config.seed,
        train_sampling_strategy="random" if config.order == "shuffle" else "sequential",  # students/order.py
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # every trainable parameter is used; the search costs a graph walk
        use_liger_kernel=loss_kernel == "liger",
        parallelism_config=parallelism_config(config, model.config._attn_implementation),
    )
    meter = StepMeter()
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[RichProgress(), meter, *callbacks],
    )
    trainer.remove_callback(PrinterCallback)  # it prints raw log dicts; the progress bar shows the loss
    trainer.loss_kernel = loss_kernel
    trainer.step_meter = meter
    return trainer


class StepMeter(TrainerCallback):
    """Wall time and tokens seen at the end of each optimizer step, for the steady speed: the first
    step carries one-off costs (kernel compilation, the allocator's growth) and `trainer.train()`'s
    runtime also holds the final checkpoint's save. CUDA is synchronised at each mark, so a step's
    time is its GPU work, not the time to queue it."""

    def __init__(self):
        self.marks: list[tuple[float, int]] = []

    def on_step_end(self, args, state, control, **kwargs):
        import time

        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.marks.append((time.perf_counter(), state.num_input_tokens_seen or 0))

    def steady_tokens_per_s(self) -> float | None:
        """Tokens per second from the end of the first step to the end of the last; None under two steps."""
        if len(self.marks) < 2:
            return None
        (start, seen_at_start), (end, seen) = self.marks[0], self.marks[-1]
        return round((seen - seen_at_start) / (end - start), 1) if end > start else None


def memory_peaks() -> dict[str, int | None]:
    """This process's peak memory so far: its resident set (CPU) and, on a GPU, the caching
    allocator's peak allocated and reserved bytes and what the device holds outside the allocator
    (CUDA context, libraries' own buffers), which the planner's total also counts."""
    import resource
    import sys

    import torch

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB on Linux
    peaks: dict[str, int | None] = {"peak_rss_bytes": rss, "peak_gpu_allocated_bytes": None, "peak_gpu_reserved_bytes": None,
                                    "gpu_outside_allocator_bytes": None}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        free, total = torch.cuda.mem_get_info()
        peaks.update(peak_gpu_allocated_bytes=torch.cuda.max_memory_allocated(), peak_gpu_reserved_bytes=torch.cuda.max_memory_reserved(),
                     gpu_outside_allocator_bytes=total - free - torch.cuda.memory_reserved())
    return peaks


class RichProgress(TrainerCallback):
    """A rich progress bar with the latest loss, on the main process only."""

    def __init__(self):
        self.progress = None
        self.task = None
        self.loss = ""

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=state.max_steps, completed=state.global_step, loss="")

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step, loss=self.loss)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.progress is not None and logs:
            if "loss" in logs:
                self.loss = f"loss {logs['loss']:.4f}"
            if "eval_loss" in logs:
                self.loss += f" eval {logs['eval_loss']:.4f}"

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
