"""`distill onpolicy`: on-policy distillation of a student, after SFT (Qwen3's order).

The student samples completions of the prompts, the teacher scores the student's own tokens, and
the student minimises a per-token divergence to the teacher at the positions it visits (reverse KL
by default; the generalized JSD with `beta`). students/onpolicy_trainer.py holds the step,
students/onpolicy_teacher.py the teacher (local model or vLLM server).

Why not TRL's DistillationTrainer as is (read in trl 1.16): it is built around its own data flow
(a `prompt` column rendered with the tokenizer's template, its own model loading and vLLM
generation whose weights reach the engine over NCCL, which CPUs lack), and its server-teacher
variant (experimental) computes the full student logits and gives the reverse KL on a top-1 support
with a tail bucket. We keep our presets, templates, prompt records, resume, token counts and
report, and take TRL's memory-lean kernels for the loss itself (`ChunkedDivergenceFunction`,
`ChunkedLogProbFunction`). Both need one tokenizer for student and teacher; it is checked.

Run directory: the same contract as `distill train` (final/, train.json with an `onpolicy`
section, checkpoints/), so `publish` and `eval` take it as they take an SFT run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from distill.core.data import input_kind, iter_rows
from distill.core.errors import InputError, Interrupted
from distill.core.paths import Out, check_io, named_paths
from distill.core.stage import Command, Stage
from students import resume
from students.manifest import TrainManifest, after_sft
from students.onpolicy_config import OnPolicyConfig
from students.templates import TEMPLATES, prepare_tokenizer, stop_token_ids
from students.training_settings import bf16_in_use


def student_folder(path: str) -> tuple[Path, TrainManifest | None]:
    """The model folder of `path` (a train run's final/: full weights or an adapter; or a model folder)
    and the run's train.json if any."""
    folder = Path(path)
    if any((folder / "final" / name).is_file() for name in ("config.json", "adapter_config.json")):
        manifest = TrainManifest.read(folder / "train.json") if (folder / "train.json").is_file() else None
        if (folder / "final" / "adapter_config.json").is_file() and not (manifest and manifest.base_model):
            raise InputError("an adapter run without its train.json (which names the base model)", where=path, field="student_model")
        return folder / "final", manifest
    if (folder / "config.json").is_file():
        return folder, None
    raise InputError("not a model folder or a `distill train` run (no config.json, no final/)", where=path, field="student_model")


def load_student(config: OnPolicyConfig, folder: Path, sft: TrainManifest | None, dtype) -> tuple[Any, str, dict[str, Any]]:
    """(the model to train, the method, what train.json must say about it).

    An SFT adapter goes on training on the base SFT saw (4-bit, with SFT's quantization, for QLoRA),
    or is merged first for `full` (into the dequantized base for QLoRA, as publish merges); a full
    student gets a new adapter for lora/qlora."""
    from distill.core.models import NF4, load_causal_lm
    from students.trainer import add_adapter

    adapter = (folder / "adapter_config.json").is_file()
    method = config.method or (sft.method if adapter else "full")
    if not adapter:
        quantization = NF4 if method == "qlora" else None
        model = load_causal_lm(str(folder), dtype=dtype, training=True, quantization=quantization)
        if method == "full":
            return model, method, {}
        lora = {"r": config.lora_r, "alpha": config.lora_alpha, "dropout": config.lora_dropout, "targets": config.lora_targets}
        return (add_adapter(model, config.model_copy(update={"method": method})), method,
                {"base_model": str(folder), "config_overrides": {}, "quantization": quantization, "lora": lora})
    from peft import PeftModel

    if method == "full":
        from students.publish import load_dequantized_base

        base = (load_dequantized_base(sft, dtype) if sft.method == "qlora"
                else load_causal_lm(str(sft.base_model), overrides=sft.config_overrides, dtype=dtype, training=True))
        model = PeftModel.from_pretrained(base, str(folder)).merge_and_unload()
        model.requires_grad_(True)  # loading an adapter froze the base: every weight trains now
        return model, method, {"quantization": None, "lora": None}
    quantization = (sft.quantization or NF4) if method == "qlora" else None
    base = load_causal_lm(str(sft.base_model), overrides=sft.config_overrides, dtype=dtype, training=True, quantization=quantization)
    if method == "qlora":
        from peft import prepare_model_for_kbit_training

        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=config.gradient_checkpointing,
                                               gradient_checkpointing_kwargs={"use_reentrant": False})
    return PeftModel.from_pretrained(base, str(folder), is_trainable=True), method, {}


def load_prompts(config: OnPolicyConfig, tokenizer, max_length: int) -> tuple[list[tuple[list, list[int]]], dict[str, int]]:
    """(messages, token ids) of each distinct prompt, opened for the assistant's answer; prompts past max_length are skipped."""
    seen, prompts, stats = set(), [], {"rows": 0, "distinct": 0, "too_long": 0}
    for where, row in iter_rows(config.prompts):
        stats["rows"] += 1
        messages = row.get("messages")
        if isinstance(messages, list) and messages:
            last = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"), default=len(messages))
            messages = messages[:last]
        elif isinstance(row.get(config.field_problem), str):
            messages = [{"role": "user", "content": row[config.field_problem]}]
        else:
            raise InputError(f"no `messages` and no '{config.field_problem}' text", where=where, field=config.field_problem)
        key = json.dumps(messages, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        ids = _render(tokenizer, messages)
        if len(ids) > max_length:
            stats["too_long"] += 1
            continue
        prompts.append((messages, ids))
    stats["distinct"] = len(seen)
    if not prompts:
        raise InputError(f"no usable prompts ({stats['rows']} rows, {stats['too_long']} longer than {max_length} tokens)",
                         where=config.prompts, field="prompts")
    return prompts, stats


class PromptSet:
    """Each prompt as the student's template renders it, and as the teacher's does (the teacher scores the student's
    completion after its own prompt: an R1-distill teacher behind a ChatML student reads its own format)."""

    def __init__(self, student_ids: list[list[int]], teacher_ids: list[list[int]]):
        self.student_ids, self.teacher_ids = student_ids, teacher_ids

    def __len__(self) -> int:
        return len(self.student_ids)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return {"input_ids": self.student_ids[index], "teacher_ids": self.teacher_ids[index]}


class LeftPad:
    """Prompts left-padded, so every completion starts at the same column."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items):
        import torch

        width = max(len(item["input_ids"]) for item in items)
        ids = [[self.pad_id] * (width - len(item["input_ids"])) + item["input_ids"] for item in items]
        mask = [[0] * (width - len(item["input_ids"])) + [1] * len(item["input_ids"]) for item in items]
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask),
                "teacher_ids": [item["teacher_ids"] for item in items]}


def _check(config: OnPolicyConfig) -> None:
    for name, flag in (("student_model", "--student-model"), ("prompts", "--prompts"), ("output_dir", "--output"), ("teacher", "--teacher")):
        if getattr(config, name) is None:
            raise InputError(f"required ({flag})", field=name)
    from students.device_layout import world_size

    if world_size() > 1:  # the step calls the decoder directly, past a DDP/FSDP wrapper's forward and its gradient sync
        raise InputError("distill onpolicy runs in one process for now (not under accelerate launch or torchrun)")
    input_kind(config.prompts)
    folder, sft = student_folder(config.student_model)
    if (folder / "adapter_config.json").is_file() and config.method not in (None, "full", sft.method):
        raise InputError(f"the SFT run trained a {sft.method} adapter: continue it with --method {sft.method} "
                         "(or full, to merge it first)", field="method")
    if config.base_url is None and not (Path(config.teacher) / "config.json").is_file():
        raise InputError("not a model folder (a served teacher needs --base-url)", where=config.teacher, field="teacher")
    run_dir = Path(config.output_dir)
    check_io([Out(run_dir, "output_dir", kind="dir"), Out(run_dir / "final", "output_dir", kind="dir", replace=True),
              Out(run_dir / "train.json", "output_dir")], named_paths(config, skip=("output_dir",)))
    if (run_dir / "train.json").exists() and not (config.resume or config.overwrite):
        raise InputError("already holds a finished run (use --resume to continue it or --overwrite)", where=str(run_dir), field="output_dir")


def run(config: OnPolicyConfig, callbacks: list | None = None) -> dict[str, Any]:
    _check(config)
    import torch
    from transformers import AutoTokenizer, PrinterCallback, TrainingArguments

    from students.onpolicy_teacher import LocalTeacher, ServerTeacher, check_same_vocabulary, end_of_turn
    from students.onpolicy_trainer import OnPolicyTrainer
    from students.train import _save_final
    from students.trainer import RichProgress

    run_dir = Path(config.output_dir)
    folder, sft = student_folder(config.student_model)
    template = TEMPLATES[config.template or (sft.template if sft and sft.template else config.student_preset.template)]
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(folder), template, _pad_token(config, sft), where=str(folder))
    prompts, prompt_stats = load_prompts(config, tokenizer, config.max_prompt_length)

    use_bf16, _ = bf16_in_use(config.bf16)
    dtype = torch.bfloat16 if use_bf16 else torch.float32
    if config.base_url:
        teacher = ServerTeacher(config.base_url, config.teacher, config.api_key_env, config.request_timeout, config.max_retries)
        teacher.check_same_tokenizer(tokenizer)
        teacher_ids = [teacher.prompt_ids(messages) or ids for messages, ids in prompts]
        teacher_stop = tokenizer.convert_tokens_to_ids(config.teacher_stop_token) if config.teacher_stop_token else None
    else:
        teacher_tokenizer = check_same_vocabulary(tokenizer, config.teacher)
        teacher = LocalTeacher(config.teacher, dtype)
        teacher_ids = [_render(teacher_tokenizer, messages) or ids for messages, ids in prompts]
        teacher_stop = (tokenizer.convert_tokens_to_ids(config.teacher_stop_token) if config.teacher_stop_token
                        else end_of_turn(teacher_tokenizer))
    model, method, trained_on = load_student(config, folder, sft, dtype)
    stops = sft.stop_token_ids if sft and sft.stop_token_ids else stop_token_ids(tokenizer, template, model.config.eos_token_id)
    if config.base_url is None and teacher_stop is not None:
        teacher.swap = (stops[0], teacher_stop)  # the full-vocabulary loss reads the teacher's end of turn as the student's

    args = TrainingArguments(
        output_dir=str(run_dir / "checkpoints"), per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, learning_rate=config.learning_rate, max_steps=config.max_steps,
        lr_scheduler_type=config.lr_scheduler, warmup_steps=config.warmup_ratio, max_grad_norm=config.max_grad_norm,
        logging_steps=config.logging_steps, save_strategy="steps", save_steps=config.save_steps,
        save_total_limit=config.save_total_limit, bf16=use_bf16, gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False}, report_to=[], seed=config.seed, data_seed=config.seed,
        remove_unused_columns=False, disable_tqdm=True, use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0,
    )
    trainer = OnPolicyTrainer(model=model, args=args, train_dataset=PromptSet([ids for _, ids in prompts], teacher_ids),
                              data_collator=LeftPad(tokenizer.pad_token_id), processing_class=tokenizer,
                              callbacks=[RichProgress(), *(callbacks or [])], teacher=teacher, settings=config,
                              stop_ids=stops, teacher_stop=teacher_stop)
    trainer.remove_callback(PrinterCallback)
    resume_from = resume.resume_point(config, run_dir)  # the same command resumes its own unfinished run
    resume.record(config, run_dir, fresh=resume_from is None)
    if resume_from:
        trainer.restore_totals(resume_from)
    started = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=resume_from)
    except KeyboardInterrupt:  # Ctrl-C, a scheduler's SIGTERM: say what is kept and how to continue
        raise Interrupted(resume.interrupted(run_dir)) from None
    finally:
        if config.base_url:
            teacher.close()
    elapsed = time.perf_counter() - started
    manifest = _manifest(config, sft, folder, template, tokenizer, stops, use_bf16, trainer, result, prompt_stats, elapsed)
    manifest = manifest.model_copy(update={"method": method, **trained_on})
    _save_final(trainer, tokenizer, run_dir, manifest)
    return manifest.model_dump(mode="json")


def _render(tokenizer, messages) -> list[int] | None:
    """The prompt in the tokenizer's own chat template (None without one)."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _pad_token(config: OnPolicyConfig, sft: TrainManifest | None) -> str:
    return sft.pad_token if sft and sft.pad_token else config.student_preset.pad_token


def _manifest(config, sft, folder, template, tokenizer, stops, use_bf16, trainer, result, prompt_stats, elapsed) -> TrainManifest:
    totals = trainer.totals
    history = trainer.state.log_history
    kl_key = "reverse_kl" if config.beta == 1 else "divergence"
    onpolicy = {
        "student_model": str(config.student_model), "teacher": config.teacher, "teacher_mode": config.teacher_mode,
        "beta": config.beta, "temperature": config.sampling.temperature, "max_new_tokens": config.sampling.max_tokens,
        "prompts": dict(prompt_stats, source=str(config.prompts)),
        "teacher_tokens": {"prompt": totals["teacher_prompt_tokens"], "completion": totals["teacher_completion_tokens"]},
        "sampled_tokens": totals["sampled_tokens"], "completions": totals["completions"], "stopped": totals["stopped"],
        "seconds": {name: round(totals[f"{name}_s"], 2) for name in ("sample", "score", "update")},
        "tokens_per_s": {name: round(totals["sampled_tokens"] / totals[f"{name}_s"], 1) if totals[f"{name}_s"] > 0 else None
                         for name in ("sample", "score", "update")},
        f"{kl_key}_curve": [[entry["step"], entry[kl_key]] for entry in history if kl_key in entry],
    }
    metrics = {"steps": trainer.state.global_step, "train_loss": round(result.training_loss, 6),
               "train_loss_curve": [[e["step"], round(e["loss"], 6)] for e in history if "loss" in e],
               "train_runtime_s": round(elapsed, 2)}
    return after_sft(config, sft, folder, template, tokenizer, stops, use_bf16, "on-policy", onpolicy, metrics)


def _served(field: str, value: str, config: OnPolicyConfig) -> bool:
    return field == "teacher" and config.base_url is not None


def present(summary: dict[str, Any], config: OnPolicyConfig) -> None:
    from rich.console import Console

    from students.report import onpolicy_table

    Console(stderr=True).print(onpolicy_table(summary))


STAGES = (
    Stage(
        name="onpolicy", section="onpolicy", config=OnPolicyConfig, run=run, resumable=True,
        reads={"student_model": "student_run", "prompts": "kept", "teacher": "teacher_model"},
        writes={"output_dir": ""}, produces={"student_run": "", "onpolicy_run": ""}, remote=_served,
        command=Command("After SFT: the student samples, the teacher scores each of its tokens, the student moves toward it (reverse KL / JSD).",
                        present=present),
    ),
)
