"""The planner's loss kernels and sequence-parallel arithmetic, and the issue's targets: every preset
trains at 32k tokens on the GPUs it names; qwen-1.5b's logits column at 32k is at most 4 GiB;
qwen-7b full fine-tuning at 32k fits 8 x 80 GB with ZeRO-3."""

from __future__ import annotations

import pytest

from distill.core.errors import InputError
from students.config import TrainConfig
from students.device_layout import plan_inputs, predict
from students.planner import GIB, arch_from_config, check_sequence_parallel, estimate
from students.presets import STUDENTS

QWEN_1_5B = arch_from_config(STUDENTS["qwen-1.5b"].arch)
QWEN_7B = arch_from_config(STUDENTS["qwen-7b"].arch)


def test_issue_targets_at_32k():
    small = estimate(QWEN_1_5B, "full", 32768)
    assert small.logits <= 4 * GIB < estimate(QWEN_1_5B, "full", 32768, loss="plain").logits
    seven = estimate(QWEN_7B, "full", 32768, gpus=8, sharding="zero3")
    assert seven.total * 1.1 <= 80 * GIB
    assert estimate(QWEN_7B, "full", 32768, gpus=8, sharding="zero3", loss="plain").total * 1.1 > 80 * GIB


def test_every_preset_fits_its_gpus_at_32k():
    for name, preset in STUDENTS.items():
        config = TrainConfig(student=name, method=preset.method)
        inputs = plan_inputs(config)
        assert preset.max_length == inputs["tokens"] == 32768
        assert inputs["sp"] == preset.sequence_parallel and inputs["loss"] == "chunked"  # no GPU here: no Liger
        assert predict(config, inputs).total * 1.1 <= 80 * GIB, name


def test_loss_kernels_are_ordered_and_chunk_sized():
    plain, chunked, liger = (estimate(QWEN_1_5B, "full", 16384, loss=loss).logits for loss in ("plain", "chunked", "liger"))
    assert liger < chunked < plain / 10
    # the chunk is what grows with chunk size; the weight-gradient accumulator is what a frozen head saves
    assert estimate(QWEN_1_5B, "full", 16384, loss_chunk=2048).logits - chunked == pytest.approx(1024 * 151936 * 6)
    frozen = estimate(QWEN_1_5B, "lora", 16384).logits
    assert chunked - frozen == pytest.approx(151936 * 1536 * 6)
    with pytest.raises(ValueError, match="unknown loss kernel"):
        estimate(QWEN_1_5B, "full", 1024, loss="fused")


def test_sequence_parallel_divides_tokens_not_states():
    one = estimate(QWEN_7B, "full", 32768, gpus=8, sharding="zero3")
    two = estimate(QWEN_7B, "full", 32768, gpus=8, sharding="zero3", sp=2)
    sixteen_k = estimate(QWEN_7B, "full", 16384, gpus=8, sharding="zero3")
    assert (two.weights, two.grads, two.optimizer) == (one.weights, one.grads, one.optimizer)  # ZeRO shards over all 8
    assert two.activations == pytest.approx(one.activations / 2) == pytest.approx(sixteen_k.activations)
    assert two.logits == sixteen_k.logits and two.total == sixteen_k.total


def test_sequence_parallel_degrees_that_cannot_run():
    assert check_sequence_parallel(QWEN_7B, 1, 1, "none") is None
    assert check_sequence_parallel(QWEN_7B, 4, 8, "zero3") is None  # 28 heads / 4; 4 kv heads / 4
    assert "attention heads" in check_sequence_parallel(QWEN_7B, 8, 8, "zero3")  # 28 heads do not split in 8
    assert "multiple" in check_sequence_parallel(QWEN_7B, 4, 6, "zero3")
    assert "DeepSpeed" in check_sequence_parallel(QWEN_7B, 2, 8, "fsdp")
    assert "key/value heads" in check_sequence_parallel(QWEN_1_5B, 3, 6, "zero3")  # 12 heads / 3, but 2 kv heads
    with pytest.raises(InputError, match="28 attention heads do not split over 8 GPUs"):
        plan_inputs(TrainConfig(student="qwen-7b", sequence_parallel=8))
    # the preset's own degree steps aside where it cannot run (one GPU): each GPU takes whole sequences
    assert plan_inputs(TrainConfig(student="qwen-32b", gpus=1))["sp"] == 1
    assert plan_inputs(TrainConfig(student="qwen-32b", sequence_parallel=4))["sp"] == 4


def test_gpu_only_options_on_cpu_are_one_line(tiny_qwen, tmp_path):
    """--sp and --loss-kernel liger cannot run here: one line naming the field, exit 2, nothing written."""
    import subprocess
    import sys

    from .conftest import write_kept

    kept = write_kept(tmp_path / "kept.jsonl", copies=1)
    out = tmp_path / "run"
    for flags, message in ((["--sp", "2"], "field 'sequence_parallel': --sp 2 needs CUDA GPUs"),
                           (["--loss-kernel", "liger"], "field 'loss_kernel': liger needs a CUDA GPU")):
        result = subprocess.run([sys.executable, "-m", "cli", "train", "--student", "qwen-7b", *flags, "--data", str(kept),
                                 "-o", str(out), "--base-model", str(tiny_qwen)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], result.stderr
        assert not out.exists()
