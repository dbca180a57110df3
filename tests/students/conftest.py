"""Helpers shared by the student tests: small kept-trace files and cheap training configs."""

from __future__ import annotations

import json
from pathlib import Path

PROBLEMS = [(3, 4), (12, 30), (7, 6), (25, 17), (9, 9), (40, 2)]


def completion(a: int, b: int) -> str:
    # R1 form as the server returns it: the opening <think> is prefilled, so absent here.
    return f"{a} + {b} = {a + b}.\n</think>\n\nThe answer is \\boxed{{{a + b}}}."


def write_kept(path: Path, copies: int = 4, problems=PROBLEMS) -> Path:
    """Kept Trace records: each problem `copies` times (sample_index 0..copies-1)."""
    with open(path, "w", encoding="utf-8") as handle:
        for number, (a, b) in enumerate(problems):
            for index in range(copies):
                row = {
                    "problem_id": f"p{number}", "id": f"p{number}#{index}", "sample_index": index,
                    "problem": f"What is {a} plus {b}?", "answer": str(a + b), "completion": completion(a, b),
                    "verdicts": {"math": {"passed": True}},
                }
                handle.write(json.dumps(row) + "\n")
    return path


def tiny_config(base: Path, data: Path, out: Path, student: str = "qwen-1.5b", **overrides):
    from students.config import TrainConfig

    values = dict(
        student=student, data=str(data), output_dir=str(out), base_model=str(base), max_seq_length=128, max_steps=24,
        batch_size=1, grad_accum=1, learning_rate=5e-3, warmup_ratio=0.0, logging_steps=1, save_steps=12,
        eval_fraction=0.0, gradient_checkpointing=False, seed=0,
    )
    values.update(overrides)
    return TrainConfig(**values)
