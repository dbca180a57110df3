"""`distill grpo`: reinforcement learning after SFT with R1's rule rewards (GRPO).

Built on TRL's `GRPOTrainer` (trl 1.16): its rollouts (transformers' generate, or vLLM with
`use_vllm`), group-relative advantages, clipped loss (`loss_type`, `epsilon`), KL to a reference
(`beta`; none loaded at 0) and weighted rewards (`reward_weights`) are used as they are. Ours are
what TRL does not know: the student (an SFT run continued in full, LoRA or QLoRA, loaded as
`distill onpolicy` loads it), the prompts with their references (our data layer), the rewards
(students/rewards.py: the filter's verifier, format and language rules, graded in worker
processes), and the run directory (final/, train.json, steps.jsonl, rewards.png, checkpoints/),
the same contract as `distill train`, so `publish` and `eval` take it as they take an SFT run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from distill.core.data import FieldMap, input_kind, read_problems
from distill.core.errors import InputError, Interrupted
from distill.core.paths import Out, check_io, named_paths
from distill.core.stage import Command, Stage
from students import resume
from students.grpo_config import GrpoConfig
from students.manifest import TrainManifest, after_sft
from students.onpolicy import _render, load_student, student_folder
from students.training_settings import bf16_in_use


def _check(config: GrpoConfig) -> None:
    for name, flag in (("student_model", "--student-model"), ("prompts", "--prompts"), ("output_dir", "--output")):
        if getattr(config, name) is None:
            raise InputError(f"required ({flag})", field=name)
    input_kind(config.prompts)
    folder, sft = student_folder(config.student_model)
    if config.student is None and not (sft and sft.student):
        raise InputError("no student preset: the student is not a `distill train` run (give -s)", field="student")
    adapter = (folder / "adapter_config.json").is_file()
    if adapter and config.method not in (None, "full", sft.method):
        raise InputError(f"the SFT run trained a {sft.method} adapter: continue it with --method {sft.method} "
                         "(or full, to merge it first)", field="method")
    if adapter and config.method == "full" and config.beta > 0:
        # TRL would load the reference from the merged model's base, not from the SFT student
        raise InputError("beta > 0 needs the SFT student as reference: continue the adapter (no --method full) or set --beta 0",
                         field="beta")
    run_dir = Path(config.output_dir)
    check_io([Out(run_dir, "output_dir", kind="dir"), Out(run_dir / "final", "output_dir", kind="dir", replace=True),
              Out(run_dir / "train.json", "output_dir"), Out(run_dir / "steps.jsonl", "output_dir", replace=True),
              Out(run_dir / "rewards.png", "output_dir", replace=True)], named_paths(config, skip=("output_dir",)))
    if (run_dir / "train.json").exists() and not (config.resume or config.overwrite):
        raise InputError("already holds a finished run (use --resume to continue it or --overwrite)", where=str(run_dir), field="output_dir")


def load_problems(config: GrpoConfig, tokenizer, max_length: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One dataset row per distinct problem: its chat prompt and what the rewards need. Without a
    reference (answer or tests) the accuracy reward cannot grade it: an error while that reward is on."""
    fields = FieldMap(problem=config.field_problem, answer=config.field_answer)
    rows, seen, stats = [], set(), {"rows": 0, "distinct": 0, "too_long": 0, "longest": 0}
    for problem in read_problems(config.prompts, fields):
        stats["rows"] += 1
        if problem.problem_id in seen:
            continue
        seen.add(problem.problem_id)
        if config.accuracy_weight > 0 and not (problem.tests or (problem.answer or "").strip()):
            raise InputError("no reference answer or tests: the accuracy reward needs them (or --accuracy-weight 0)",
                             where=f"{config.prompts}:{problem.source['row']}", field=config.field_answer)
        messages = [{"role": "user", "content": problem.problem}]
        length = len(_render(tokenizer, messages))
        if length > max_length:
            stats["too_long"] += 1
            continue
        stats["longest"] = max(stats["longest"], length)
        rows.append({"prompt": messages, "problem": problem.problem, "answer": problem.answer, "domain": problem.domain,
                     "tests": json.dumps(problem.tests) if problem.tests else "", "language": problem.language})
    stats["distinct"] = len(seen)
    if not rows:
        raise InputError(f"no usable prompts ({stats['rows']} rows, {stats['too_long']} longer than {max_length} tokens)",
                         where=config.prompts, field="prompts")
    return rows, stats


def run(config: GrpoConfig, callbacks: list | None = None) -> dict[str, Any]:
    _check(config)
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from distill.core.workers import WorkerPool
    from students.grpo_log import StepLog, plot_rewards
    from students.rewards import Rewards
    from students.templates import TEMPLATES, prepare_tokenizer, stop_token_ids
    from students.train import _save_final
    from students.trainer import RichProgress

    run_dir = Path(config.output_dir)
    folder, sft = student_folder(config.student_model)
    config = config.model_copy(update={"student": config.student or sft.student})
    template = TEMPLATES[config.template or (sft.template if sft and sft.template else config.student_preset.template)]
    pad = sft.pad_token if sft and sft.pad_token else config.student_preset.pad_token
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(folder), template, pad, where=str(folder))
    rows, prompt_stats = load_problems(config, tokenizer, config.max_prompt_length or config.student_preset.max_length)

    use_bf16, _ = bf16_in_use(config.bf16)
    model, method, trained_on = load_student(config, folder, sft, torch.bfloat16 if use_bf16 else torch.float32)
    stops = sft.stop_token_ids if sft and sft.stop_token_ids else stop_token_ids(tokenizer, template, model.config.eos_token_id)
    args = GRPOConfig(
        output_dir=str(run_dir / "checkpoints"), per_device_train_batch_size=config.batch_size * config.num_generations,
        gradient_accumulation_steps=config.grad_accum, num_generations=config.num_generations,
        max_completion_length=config.max_completion_length, beta=config.beta, epsilon=config.epsilon, loss_type=config.loss_type,
        temperature=config.temperature, reward_weights=list(config.weights.values()), learning_rate=config.learning_rate,
        max_steps=config.max_steps, lr_scheduler_type=config.lr_scheduler, warmup_steps=config.warmup_ratio,
        max_grad_norm=config.max_grad_norm, logging_steps=config.logging_steps, save_strategy="steps", save_steps=config.save_steps,
        save_total_limit=config.save_total_limit, bf16=use_bf16, gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False}, report_to=[], seed=config.seed, data_seed=config.seed,
        disable_tqdm=True, use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, log_completions=False,
        use_vllm=config.use_vllm, vllm_mode=config.vllm_mode,
        generation_kwargs=None if config.use_vllm else {"eos_token_id": stops},
    )
    resume_from = resume.resume_point(config, run_dir)  # the same command resumes its own unfinished run
    resume.record(config, run_dir, fresh=resume_from is None)
    steps = StepLog(run_dir / "steps.jsonl", completions_per_step=config.batch_size * config.num_generations * config.grad_accum,
                    keep_until=int(Path(resume_from).name.split("-")[-1]) if resume_from else 0)
    started = time.perf_counter()
    with WorkerPool(config.workers) as pool:
        rewards = Rewards(pool, config.max_completion_length, config.length_buffer)
        trainer = GRPOTrainer(model=model, reward_funcs=rewards.functions(), args=args, train_dataset=Dataset.from_list(rows),
                              processing_class=tokenizer, callbacks=[RichProgress(), steps, *(callbacks or [])])
        trainer.remove_callback(PrinterCallback)
        try:
            result = trainer.train(resume_from_checkpoint=resume_from)
        except KeyboardInterrupt:  # Ctrl-C, a scheduler's SIGTERM: keep the last finished step, say how to continue
            _checkpoint_now(trainer)
            raise Interrupted(resume.interrupted(run_dir)) from None
    elapsed = time.perf_counter() - started
    rows_logged = steps.rows()
    plotted = plot_rewards(rows_logged, run_dir / "rewards.png")
    manifest = _manifest(config, sft, folder, template, tokenizer, stops, use_bf16, trainer, result, prompt_stats, rows_logged, elapsed)
    grading = {"planned_peak_gib": _planned(config, model, method, prompt_stats["longest"]), "graded": rewards.graded, "grading_s": round(rewards.seconds, 2),
               "graded_per_s": round(rewards.graded / rewards.seconds, 1) if rewards.seconds else None}
    manifest.grpo.update(grading)
    manifest = manifest.model_copy(update={"method": method, **trained_on})
    _save_final(trainer, tokenizer, run_dir, manifest)
    summary = manifest.model_dump(mode="json")
    summary["grpo"]["plot"] = str(run_dir / "rewards.png") if plotted else None
    return summary


def _planned(config: GrpoConfig, model, method: str, prompt_tokens: int) -> float:
    """The memory planner's peak for this run's shape on one GPU, in GiB (to compare with a measured peak)."""
    from students.planner import GIB, arch_from_config, grpo_estimate

    found = grpo_estimate(arch_from_config(model.config.to_dict()), method, prompt_tokens, config.batch_size * config.num_generations,
                          config.max_completion_length, config.beta, config.gradient_checkpointing, config.lora_r)
    return round(found.total / GIB, 3)


def _checkpoint_now(trainer) -> None:
    """Ctrl-C: the last finished step as a checkpoint, so that the same command resumes from it (a GRPO step is
    slow: losing the steps since the last scheduled checkpoint would cost minutes to hours)."""
    step = trainer.state.global_step
    if step > 0 and not (Path(trainer.args.output_dir) / f"checkpoint-{step}").exists():
        trainer._save_checkpoint(trainer.model, trial=None)


def _manifest(config, sft, folder, template, tokenizer, stops, use_bf16, trainer, result, prompt_stats, steps, elapsed) -> TrainManifest:
    first, last = (steps[0], steps[-1]) if steps else ({}, {})
    grpo = {
        "student_model": str(config.student_model), "prompts": dict(prompt_stats, source=str(config.prompts)),
        "reward_weights": config.weights, "length_buffer": config.length_buffer, "num_generations": config.num_generations,
        "max_completion_length": config.max_completion_length, "beta": config.beta, "epsilon": config.epsilon,
        "loss_type": config.loss_type, "temperature": config.temperature,
        "rollouts": "vllm " + config.vllm_mode if config.use_vllm else "transformers generate (TRL)",
        "completions": sum(row.get("completions", 0) for row in steps), "truncated": sum(row.get("truncated", 0) for row in steps),
        "first_step": first, "last_step": last, "steps_file": "steps.jsonl",
    }
    metrics = {"steps": trainer.state.global_step, "train_loss": round(result.training_loss, 6), "train_runtime_s": round(elapsed, 2)}
    return after_sft(config, sft, folder, template, tokenizer, stops, use_bf16, "grpo", grpo, metrics)


def present(summary: dict[str, Any], config: GrpoConfig) -> None:
    from rich.console import Console

    from students.report import grpo_table

    Console(stderr=True).print(grpo_table(summary))


STAGES = (
    Stage(
        name="grpo", section="grpo", config=GrpoConfig, run=run,
        reads={"student_model": "student_run", "prompts": "prompts"},
        writes={"output_dir": ""}, produces={"student_run": "", "grpo_run": ""},
        defaults={"student": "train.student", "prompts": "generate.prompts"}, operational=("workers",), resumable=True,
        command=Command("After SFT: GRPO with R1's rewards (accuracy by the verifier, format, language consistency, length).",
                        present=present),
    ),
)
