"""GRPO on CPU: `distill grpo` vs a bare TRL GRPOTrainer script (prints a table; not a test).

The same tiny student (distill.quickstart.tiny: 2 layers, width 128, random weights), the same
arithmetic prompts with answers, the same group size, lengths, learning rate and steps. The bare
script grades with a plain reward function calling math-verify in the trainer's process (what a
user writes from TRL's docs); `distill grpo` grades in the filter's worker processes with the
verifier (accuracy only here, so both compute the same reward). Reported: optimizer steps per
second, and reward throughput (completions graded per second of grading time).

    .venv/bin/python bench/bench_grpo.py [--steps 4] [--prompts 8] [--generations 4] [--length 64]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bare_trl(student: Path, problems: list[dict], args, out: Path) -> dict:
    """What a user writes from TRL's docs: GRPOTrainer, a reward function with math-verify in-process."""
    import torch
    from datasets import Dataset
    from math_verify import parse, verify
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from students.presets import STUDENTS
    from students.templates import TEMPLATES, prepare_tokenizer

    preset = STUDENTS["qwen-1.5b"]
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(student), TEMPLATES[preset.template], preset.pad_token)
    graded = {"n": 0, "s": 0.0}

    def accuracy(completions, answer, **_):
        started = time.perf_counter()
        rewards = [float(verify(parse(f"${ref}$"), parse(c[0]["content"]))) for c, ref in zip(completions, answer, strict=True)]
        graded["n"] += len(rewards)
        graded["s"] += time.perf_counter() - started
        return rewards

    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": p["problem"]}], "answer": p["answer"]} for p in problems])
    config = GRPOConfig(output_dir=str(out), per_device_train_batch_size=args.prompts * args.generations,
                        num_generations=args.generations, max_completion_length=args.length, learning_rate=1e-4,
                        max_steps=args.steps, logging_steps=1, save_strategy="no", report_to=[], use_cpu=not torch.cuda.is_available(),
                        disable_tqdm=True, seed=0)
    trainer = GRPOTrainer(model=str(student), reward_funcs=accuracy, args=config, train_dataset=dataset, processing_class=tokenizer)
    started = time.perf_counter()
    trainer.train()
    return {"seconds": time.perf_counter() - started, "graded": graded["n"], "grading_s": graded["s"]}


def distill_grpo(student: Path, prompts: Path, args, out: Path) -> dict:
    from students.grpo import run
    from students.grpo_config import GrpoConfig

    started = time.perf_counter()
    summary = run(GrpoConfig(student="qwen-1.5b", student_model=str(student), prompts=str(prompts), output_dir=str(out),
                             max_steps=args.steps, batch_size=args.prompts, num_generations=args.generations,
                             max_completion_length=args.length, learning_rate=1e-4, format_weight=0, language_weight=0,
                             save_steps=100000, seed=0))
    return {"seconds": time.perf_counter() - started, "graded": summary["grpo"]["graded"], "grading_s": summary["grpo"]["grading_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=8, help="prompts per step")
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--length", type=int, default=64, help="max completion tokens")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from distill.quickstart.tiny import build_model

    work = Path(tempfile.mkdtemp(prefix="bench-grpo-"))
    student = build_model(work / "student", family="qwen", layers=2, seed=0)
    problems = [{"problem": f"What is {i} plus {i + 3}?", "answer": str(2 * i + 3)} for i in range(args.prompts * args.steps)]
    prompts = work / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(p) + "\n" for p in problems))
    rows = {"bare TRL GRPOTrainer (math-verify in the trainer)": bare_trl(student, problems, args, work / "trl"),
            "distill grpo (verifier in worker processes)": distill_grpo(student, prompts, args, work / "distill")}

    table = Table(title=f"GRPO on CPU: {args.steps} steps x {args.prompts} prompts x {args.generations} completions, "
                        f"<= {args.length} tokens (tiny student)")
    for column in ("run", "wall s", "steps/s", "graded", "graded/s (grading time)"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for name, r in rows.items():
        table.add_row(name, f"{r['seconds']:.1f}", f"{args.steps / r['seconds']:.3f}", str(r["graded"]),
                      f"{r['graded'] / r['grading_s']:.0f}" if r["grading_s"] else "-")
    Console().print(table)


if __name__ == "__main__":
    main()
