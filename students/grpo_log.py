"""`distill grpo`'s per-step record (DIR/steps.jsonl) and its reward curves (DIR/rewards.png).

One row per logged optimizer step (every step by default), from what TRL logs there: each reward's
mean (`reward/accuracy`, ...), the weighted total (`reward`), `accuracy` (the share of
completions the verifier passes), `mixing` (the share the language filter would reject), the
mean completion length, the KL to the reference (with beta > 0), and the rollouts cut at
max_completion_length (`truncated`, of `completions`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from students.grpo_config import REWARDS

# steps.jsonl key -> TRL's log key
TRL_KEYS = {**{f"reward/{name}": f"rewards/{name}/mean" for name in REWARDS}, "reward": "reward", "mixing": "mixing",
            "completion_length": "completions/mean_length", "kl": "kl", "loss": "loss", "learning_rate": "learning_rate"}


class StepLog(TrainerCallback):
    """Appends one row per step to steps.jsonl. A resumed run first drops the rows past its
    checkpoint (they are trained again); a fresh run starts an empty file."""

    def __init__(self, path: Path, completions_per_step: int, keep_until: int = 0):
        self.path, self.completions = path, completions_per_step
        kept = [row for row in self.rows() if row["step"] <= keep_until]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in kept), encoding="utf-8")
        os.replace(tmp, path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "reward" not in logs:
            return
        row: dict[str, Any] = {"step": state.global_step}
        row.update({key: _round(logs[trl]) for key, trl in TRL_KEYS.items() if logs.get(trl) is not None})
        row["accuracy"] = row.get("reward/accuracy")
        row["completions"] = self.completions
        row["truncated"] = round(logs.get("completions/clipped_ratio", 0.0) * self.completions)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _round(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


def plot_rewards(rows: list[dict[str, Any]], path: Path) -> bool:
    """Each reward's mean and the weighted total per step as a PNG; False with fewer than two steps."""
    if len(rows) < 2:
        return False
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5), dpi=100)
    for key in (*(f"reward/{name}" for name in REWARDS), "reward", "mixing"):
        points = [(row["step"], row[key]) for row in rows if row.get(key) is not None]
        if points:
            axis.plot(*zip(*points, strict=True), label=key, linewidth=2.5 if key == "reward" else 1.2)
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("mean over the step's completions")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    tmp = path.with_name(".rewards.tmp.png")
    figure.savefig(tmp)
    plt.close(figure)
    os.replace(tmp, path)
    return True
