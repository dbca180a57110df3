"""`distill train` under `accelerate launch` with 2 processes on this CPU (gloo), the way every
multi-GPU preset runs, checked against a single-process run with the same global batch:

- each rank trains on its own packed sequences, the two never overlap, and together they follow
  the single-process run's seeded order (rank r takes micro-batches r, r+2, ...);
- the loss curve equals the single-process one (token-normalised across ranks);
- checkpoints are written, and `--resume` on 2 ranks continues the same curve;
- the final model is one folder that loads (full weights, or the LoRA adapter).

The launches use students/accelerate/ddp.yaml, overriding only what a CPU needs (2 processes, no
bf16). fsdp2.yaml cannot run here: accelerate 1.15 turns FSDP on only for GPU-like device types
(state.py), so on CPU it would silently train as DDP; it and the DeepSpeed configs get the dry
run in test_launch_configs.py. Each launch takes about a minute.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from students.train import run

from .conftest import tiny_config, write_kept
from .launch_probe import recording_collator

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
PROBLEMS = [(a, 3 * a + 1) for a in range(2, 26)]  # 24 distinct traces -> 12 distinct packs of 128 tokens
METHODS = {
    "full": {"learning_rate": 5e-3},
    "lora": {"method": "lora", "learning_rate": 5e-2, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0},
}
STEPS = 6  # 2 packs per step over both ranks: one epoch


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _flags(config) -> list[str]:
    """The `distill train` flags that give `config` (what a user would type)."""
    flags = ["--student", config.student, "--data", config.data, "-o", config.output_dir, "--base-model", config.base_model,
             "--max-seq-length", str(config.max_seq_length), "--max-steps", str(config.max_steps), "--batch-size", "1",
             "--grad-accum", str(config.grad_accum), "--lr", str(config.learning_rate), "--warmup-ratio", "0",
             "--logging-steps", "1", "--save-steps", str(config.save_steps), "--eval-fraction", "0",
             "--no-gradient-checkpointing", "--seed", str(config.seed)]
    if config.method == "lora":
        flags += ["--lora", "--lora-r", str(config.lora_r), "--lora-alpha", str(config.lora_alpha), "--lora-dropout", "0"]
    if config.resume:
        flags.append("--resume")
    return flags


def launch(config, probe: Path) -> dict:
    """`accelerate launch --config_file students/accelerate/ddp.yaml --num_processes 2` of `distill train`."""
    probe.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "students/accelerate/ddp.yaml",
               "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(_free_port()),
               "tests/students/launch_probe.py", "train", *_flags(config)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DISTILL_PROBE_DIR": str(probe), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert result.stdout.count("distill train:") == 1  # one summary table, from rank 0
    for rank in (0, 1):  # the worktree's code ran on both ranks, not an installed copy
        assert Path((probe / f"rank{rank}.package").read_text()) == ROOT / "students"
    return json.loads((Path(config.output_dir) / "train.json").read_text())


def batches(path: Path) -> list[list[str]]:
    return [json.loads(line) for line in path.read_text().split("\n") if line]


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
    return write_kept(tmp_path_factory.mktemp("data") / "kept.jsonl", copies=1, problems=PROBLEMS)


@pytest.fixture(scope="module")
def single(tiny_qwen, kept, tmp_path_factory):
    """Single-process runs with the same global batch (2 packs per step by accumulation), recording their order."""
    import students.train as train

    done = {}

    def get(method: str):
        if method not in done:
            out = tmp_path_factory.mktemp(f"single-{method}")
            config = tiny_config(tiny_qwen, kept, out / "run", max_steps=STEPS, grad_accum=2, save_steps=3,
                                 **METHODS[method])
            original = train.collate_packed
            train.collate_packed = recording_collator(original, out / "order.jsonl")
            try:
                summary = run(config)
            finally:
                train.collate_packed = original
            done[method] = (config, summary, batches(out / "order.jsonl"))
        return done[method]

    return get


def _curve(summary) -> dict[int, float]:
    return dict(map(tuple, summary["metrics"]["train_loss_curve"]))


def _check_against_single(summary, probe: Path, reference):
    _, single_summary, order = reference
    rank0, rank1 = batches(probe / "rank0.jsonl"), batches(probe / "rank1.jsonl")
    assert len(rank0) == len(rank1) == STEPS
    seen0, seen1 = {p for b in rank0 for p in b}, {p for b in rank1 for p in b}
    assert not seen0 & seen1 and len(seen0 | seen1) == 2 * STEPS  # disjoint, every pack once
    assert rank0 == order[0::2] and rank1 == order[1::2]  # the single run's seeded order, dealt out
    assert summary["world_size"] == 2 and summary["grad_accum"] == 1
    got, want = _curve(summary), _curve(single_summary)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step, loss in want.items():
        assert got[step] == pytest.approx(loss, rel=2e-4), (step, got, want)


def test_ddp_full_matches_single_process_and_resumes(tiny_qwen, kept, single, tmp_path):
    from transformers import AutoModelForCausalLM

    reference = single("full")
    config = reference[0].model_copy(update={"output_dir": str(tmp_path / "ddp"), "grad_accum": 1})
    summary = launch(config, tmp_path / "probe")
    _check_against_single(summary, tmp_path / "probe", reference)
    checkpoints = sorted(p.name for p in (tmp_path / "ddp" / "checkpoints").iterdir())
    assert checkpoints == ["checkpoint-3", "checkpoint-6"]
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "ddp" / "final")  # one folder, whole weights
    assert sum(p.numel() for p in model.parameters()) > 0

    # interrupted after step 3: only checkpoint-3 is left; --resume on 2 ranks finishes the same curve
    resumed_dir = tmp_path / "resumed"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    shutil.copytree(tmp_path / "ddp" / "checkpoints" / "checkpoint-3", resumed_dir / "checkpoints" / "checkpoint-3")
    resumed = launch(config.model_copy(update={"output_dir": str(resumed_dir), "resume": True}), tmp_path / "probe-resume")
    rank0 = batches(tmp_path / "probe-resume" / "rank0.jsonl")
    assert rank0[-3:] == batches(tmp_path / "probe" / "rank0.jsonl")[3:]  # the data it had not seen yet, in order
    got, want = _curve(resumed), _curve(summary)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step in range(4, STEPS + 1):
        assert got[step] == pytest.approx(want[step], rel=1e-5), step
    assert (resumed_dir / "final" / "model.safetensors").is_file()


def test_ddp_lora_matches_single_process(tiny_qwen, kept, single, tmp_path):
    from peft import AutoPeftModelForCausalLM

    reference = single("lora")
    config = reference[0].model_copy(update={"output_dir": str(tmp_path / "ddp-lora"), "grad_accum": 1})
    summary = launch(config, tmp_path / "probe")
    _check_against_single(summary, tmp_path / "probe", reference)
    adapter = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "ddp-lora" / "final")
    assert adapter.peft_config["default"].r == 8
