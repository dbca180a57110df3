"""recipes/deploy.yaml, reduced (few problems, few steps), end to end through `distill run`: the
quickstart's stages with a student on Qwen2.5's real tokenizer, published as bf16, q8_0 and q4_k_m
GGUF files with a Modelfile, each file served by llama.cpp and evaluated on the held-out problems."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.pipeline.run import execute, plan

pytest.importorskip("llama_cpp", reason="needs the gguf extra (llama-cpp-python)")

RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "deploy.yaml"
REDUCED = [
    "quickstart.teacher_problems=600",
    "quickstart.prompts=12",
    "quickstart.heldout=4",
    "quickstart.teacher.steps=120",
    "filter.rules=[format, language]",
    "generate.n=2",
    "generate.reproducible=true",  # an in-process engine starts in seconds, a separate one in a minute or two
    "train.epochs=1",
    "quantized.k=1",
    "quantized.max_tokens=24",
]


@pytest.mark.slow
def test_reduced_deploy_recipe_runs_end_to_end(tmp_path):
    out = tmp_path / "deploy"
    ctx, planned = plan(RECIPE, out, None, None, REDUCED)
    assert [p.name for p in planned] == ["teacher", "generate", "filter", "train", "publish", "quantized"]
    execute(ctx, planned, RECIPE.read_text())

    student = json.loads((out / "teacher" / "student-base" / "config.json").read_text())
    assert student["hidden_size"] == 256 and student["vocab_size"] == 151936  # k-quant blocks fit; the real vocabulary
    model = out / "publish" / "model"
    sizes = {kind: (model / f"model-{kind}.gguf").stat().st_size for kind in ("BF16", "Q8_0", "Q4_K_M")}
    assert sizes["BF16"] > sizes["Q8_0"] > sizes["Q4_K_M"]
    assert "FROM ./model-Q4_K_M.gguf" in (model / "Modelfile").read_text().splitlines()

    result = json.loads((out / "quantized" / "results.json").read_text())
    rows = result["rows"]
    assert [r["model"] for r in rows] == ["bf16", "q8_0", "q4_k_m"]
    assert all(r["problems"] == 4 and r["tokens_per_s"] > 0 and r["path"].endswith(".gguf") for r in rows)
    table = (out / "quantized" / "table.md").read_text()
    assert "| model | held-out problems | accuracy (pass@1) | mixes languages | no answer | tokens/s | file size |" in table
    assert "q4_k_m:" in table and "for bf16" in table  # what each quantization costs, in words
    assert (out / "quantized" / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
