"""bench/gpu_check.py: the wheel list fits what a GPU machine can be sent (no download), its figures
are the conventions docs/gpu-check.md states, and the whole check runs end to end on this CPU
(--cpu-smoke: the rehearsal that keeps the script from rotting before a GPU appears)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import gpu_check_parts  # noqa: E402
import gpu_wheels  # noqa: E402


def test_wheel_list_fits_the_budget_and_the_machine():
    wheels = gpu_wheels.read_list()
    assert sum(wheel.size for wheel in wheels) < gpu_wheels.BUDGET_MIB * gpu_wheels.MIB
    assert gpu_wheels.BUDGET_MIB <= 48  # the working tree travels in the same 64 MiB
    assert all(count == 1 for count in Counter(wheel.name for wheel in wheels).values())  # two versions stop the install
    for wheel in wheels:
        assert wheel.file.startswith(f"{wheel.name.replace('-', '_')}-{wheel.version}-"), wheel
        tags = wheel.file.removesuffix(".whl").split("-")[-3:]
        assert tags[:2] in (["py3", "none"], ["py2.py3", "none"], ["cp312", "cp312"]), wheel  # the machine's CPython 3.12
        assert tags[2] == "any" or "x86_64" in tags[2] and "manylinux" in tags[2], wheel
        assert re.fullmatch(r"[0-9a-f]{64}", wheel.sha256) and wheel.why, wheel
    names = {wheel.name for wheel in wheels}
    assert {"pydantic", "pydantic-core", "liger-kernel", "typer"} <= names  # what the image lacks and train imports
    assert not names & {"vllm", "flash-attn", "bitsandbytes", "torch", "trl", "datasets"}  # not on the train path / too big


def test_wheels_folder_check_names_what_is_wrong(tmp_path):
    wheels = gpu_wheels.read_list()[:2]
    (tmp_path / wheels[0].file).write_bytes(b"x" * wheels[0].size)  # right size, wrong bytes
    (tmp_path / "stray-1.0-py3-none-any.whl").write_bytes(b"")
    found = gpu_wheels.problems(tmp_path, wheels)
    assert any(wheels[0].file in line and "sha256" in line for line in found)
    assert any(wheels[1].file in line and "missing" in line for line in found)
    assert any("stray" in line and "not in" in line for line in found)


def test_flops_per_token_and_gpu_peaks():
    arch = {"hidden": 4, "layers": 2, "heads": 2, "kv_heads": 1, "intermediate": 8, "vocab": 10, "tied": True}
    linear = 2 * (2 * 16 + 2 * 4 * 2 + 3 * 4 * 8) + 10 * 4  # q,o + k,v + MLP per layer, then the head
    attention = 6 * 2 * 4 * (3 * 3 + 1 * 1) / 4  # samples of 3 and 1 tokens
    assert gpu_check_parts.flops_per_token(arch, [3, 1], "full") == pytest.approx(6 * linear + attention)
    lora = 64 * 2 * ((4 + 4) + 2 * (4 + 2) + (4 + 4) + 2 * (4 + 8) + (8 + 4))
    assert gpu_check_parts.flops_per_token(arch, [3, 1], "lora") == pytest.approx(4 * linear + 6 * lora + attention)
    assert gpu_check_parts.peak_tflops("NVIDIA H100 80GB HBM3")["tflops"] == 989
    assert gpu_check_parts.peak_tflops("NVIDIA H100 PCIe")["tflops"] == 756
    assert gpu_check_parts.peak_tflops("NVIDIA H200")["tflops"] == 989
    assert gpu_check_parts.peak_tflops("Some GPU") is None and gpu_check_parts.peak_tflops("x", 100.0)["tflops"] == 100.0


@pytest.mark.slow
@pytest.mark.gpu_rehearsal
def test_cpu_smoke_runs_the_whole_check(tmp_path):
    """The rehearsal: the same script, the real `distill train`, a tiny model on the CPU."""
    done = subprocess.run([sys.executable, "bench/gpu_check.py", "--cpu-smoke", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    ran = {(row["method"], row["loss"]): row for row in report["rows"]}
    assert set(ran) == {("full", "chunked"), ("lora", "chunked"), ("full", "liger"), ("lora", "liger")}
    for method in ("full", "lora"):
        row = ran[method, "chunked"]
        assert row["status"] == "ok" and row["ran_loss"] == "chunked" and row["steps"] == report["steps"]
        # what train.json records for the table: steady speed, peaks and the planner's figure
        assert row["tokens_per_s"] > 0 and row["peak_rss_bytes"] > 0 and row["predicted_peak_bytes"] > 0
        assert row["peak_gpu_allocated_bytes"] is None and row["flops_per_token"] > 0
        assert ran[method, "liger"]["status"].startswith("skipped")
    assert report["isolation"]["passed"] and report["isolation"]["control_max_abs_diff"] > 0
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| tokens/micro-step |" in table and "planner GiB" in table and table.strip() in done.stdout
    assert (tmp_path / "gpu_check.log").read_text().count("cli train") == 2
