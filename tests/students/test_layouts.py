"""`train` on the public layouts as they are: each preset's fixture becomes R1-form conversations
(one per sample), and a tiny model trains on it for a couple of steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.core.trace_layout import TraceLayout
from students.dataset import load_conversations

from .conftest import tiny_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "layouts"
SAMPLES = {"openr1": 5, "sharegpt": 4, "s1k": 3, "messages": 3, "distill": 3}


@pytest.mark.parametrize("preset", list(SAMPLES))
def test_each_layout_gives_r1_form_conversations(preset):
    conversations = load_conversations(FIXTURES / f"{preset}.jsonl", layout=TraceLayout(preset=preset))
    assert len(conversations) == SAMPLES[preset]
    first = conversations[0]
    assert [m["role"] for m in first] == ["user", "assistant"]
    assert first[1]["content"].startswith("<think>\n") and "\n</think>\n\n" in first[1]["content"]
    assert "<|begin_of_thought|>" not in first[1]["content"]  # Sky-T1 markers are rewritten


def test_samples_the_filter_rejected_are_skipped(tmp_path):
    from distill.filters.config import FilterConfig
    from distill.filters.stage import run

    config = FilterConfig(input=str(FIXTURES / "openr1.jsonl"), output=str(tmp_path / "k.jsonl"), rejected=str(tmp_path / "r.jsonl"), preset="openr1")
    run(config)
    both = tmp_path / "both.jsonl"
    both.write_text((tmp_path / "k.jsonl").read_text() + (tmp_path / "r.jsonl").read_text())
    assert len(load_conversations(both)) == 3  # kept records: our layout, their columns carried along


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(SAMPLES))
def test_train_reads_every_layout(tiny_qwen, tmp_path, preset):
    from students.train import run

    # doctor off: the fixtures carry what public sets carry (openr1 a truncated generation, sharegpt an answer
    # without reasoning markers), which `distill doctor` stops a run for (tests/students/test_doctor.py)
    config = tiny_config(tiny_qwen, FIXTURES / f"{preset}.jsonl", tmp_path / "run", max_steps=2, save_steps=1000, max_seq_length=256,
                         preset=preset, doctor=False)
    summary = run(config)
    assert summary["metrics"]["steps"] == 2 and summary["metrics"]["examples"] == SAMPLES[preset]
    saved = json.loads((tmp_path / "run" / "train.json").read_text())
    assert saved["config"]["preset"] == preset and saved["config"]["delimiters"] == ("sky-t1" if preset == "sharegpt" else "r1")
