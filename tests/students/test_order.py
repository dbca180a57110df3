"""`train --order`: length and difficulty curricula reach the trainer's data loader in order, packs keep
the order, and a difficulty order without pass rates is one line of bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from distill.core.errors import InputError
from students.dataset import LoadStats
from students.order import ordered_packs
from students.train import datasets, load_tokenizer, sft_examples

from .conftest import PROBLEMS, tiny_config, write_kept

ROOT = Path(__file__).resolve().parents[2]
RATES = {"p0": (1, 4), "p1": (0, 4), "p2": (3, 4), "p3": (2, 4), "p4": (4, 4), "p5": (1, 4)}  # correct of drawn


def write_rates(path: Path) -> Path:
    path.write_text("".join(json.dumps({"problem_id": p, "correct": c, "drawn": d, "pass_rate": 0.0}) + "\n" for p, (c, d) in RATES.items()))
    return path


def prompts_read(config) -> list[str]:
    """The user prompts in the order the trainer's data loader yields them (one sample per batch)."""
    from students.trainer import build_trainer

    tokenizer, _ = load_tokenizer(config.base_model, config)
    train, held, _, levels = sft_examples(config, tokenizer, 128, LoadStats())
    train_set, _, collator = datasets(train, held, levels, config.packing, 128, tokenizer)
    trainer = build_trainer(config, config.base_model, tokenizer, train_set, None, collator, {}, False, 1, [])
    seen = []
    for batch in trainer.get_train_dataloader():
        text = tokenizer.decode(batch["input_ids"][0])
        seen.append(re.search(r"What is (.+?)\?", text).group(1))
    return seen


def test_difficulty_order_puts_hard_prompts_last(tiny_qwen, tmp_path):
    kept = write_kept(tmp_path / "kept.jsonl", copies=2)
    config = tiny_config(tiny_qwen, kept, tmp_path / "run", order="difficulty", pass_rates=str(write_rates(tmp_path / "prompts.jsonl")),
                         packing=False)
    seen = prompts_read(config)
    rate = {f"{a} plus {b}": RATES[f"p{n}"][0] / 4 for n, (a, b) in enumerate(PROBLEMS)}
    assert [rate[p] for p in seen] == sorted((rate[p] for p in seen), reverse=True) and len(seen) == 12
    assert seen[-2:] == ["12 plus 30"] * 2  # p1: never solved


def test_length_order_reads_the_shortest_first(tiny_qwen, tmp_path):
    kept = write_kept(tmp_path / "kept.jsonl", copies=1, problems=[(123456, 654321), (1, 2), (1234, 4321), (12, 21)])  # longest first
    seen = prompts_read(tiny_config(tiny_qwen, kept, tmp_path / "a", order="length", packing=False))
    assert seen == ["1 plus 2", "12 plus 21", "1234 plus 4321", "123456 plus 654321"]


def test_ordered_packs_keep_the_levels_in_order_within_capacity():
    lengths = [5, 3, 8, 2, 6, 4, 7, 1]
    levels = [0, -1, 0, -1, -0.5, -0.5, -1, 0]
    packs = ordered_packs(lengths, 10, levels)
    assert sorted(i for pack in packs for i in pack) == list(range(8))
    assert all(sum(lengths[i] for i in pack) <= 10 for pack in packs)
    pack_levels = [{levels[i] for i in pack} for pack in packs]
    assert all(len(found) == 1 for found in pack_levels)
    assert [found.pop() for found in pack_levels] == sorted(levels[pack[0]] for pack in packs)


def test_difficulty_needs_pass_rates_and_a_prompt_without_one_is_bad_input(tiny_qwen, tmp_path):
    kept = write_kept(tmp_path / "kept.jsonl", copies=1)
    done = subprocess.run([sys.executable, "-m", "cli", "train", "-s", "qwen-1.5b", "-d", str(kept), "-o", str(tmp_path / "run"),
                           "--order", "difficulty"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--order difficulty needs --pass-rates file" in done.stderr
    assert not (tmp_path / "run").exists()
    partial = tmp_path / "partial.jsonl"
    partial.write_text(json.dumps({"problem_id": "p0", "correct": 1, "drawn": 2}) + "\n")
    config = tiny_config(tiny_qwen, kept, tmp_path / "run", order="difficulty", pass_rates=str(partial))
    with pytest.raises(InputError, match="prompt 'p1' has no pass rate"):
        prompts_read(config)


def test_hard_subset_keeps_the_prompts_at_most_the_threshold(tiny_qwen, tmp_path):
    kept = write_kept(tmp_path / "kept.jsonl", copies=2)
    config = tiny_config(tiny_qwen, kept, tmp_path / "run", subset="hard", pass_rates=str(write_rates(tmp_path / "prompts.jsonl")))
    tokenizer, _ = load_tokenizer(config.base_model, config)
    train, _, _, _ = sft_examples(config, tokenizer, 128, LoadStats())
    prompts = {re.search(r"What is (.+?)\?", tokenizer.decode(ids)).group(1) for ids, _ in train}
    assert prompts == {"3 plus 4", "12 plus 30", "25 plus 17", "40 plus 2"} and len(train) == 8  # p0, p1, p3 (0.5), p5


def test_train_hard_is_a_second_stage_on_the_train_section_continued_from_train(tmp_path):
    from distill.pipeline.stages import Context, wire

    ctx = Context(run_dir=tmp_path, stages=["generate", "filter", "train", "train-hard", "publish"], doc={})
    values = wire("train-hard", {"student": "qwen-1.5b", "learning_rate": 1e-5}, ctx)
    assert values == {"student": "qwen-1.5b", "learning_rate": 1e-5, "data": [str(tmp_path / "filter" / "kept.jsonl")],
                      "base_model": str(tmp_path / "train" / "final"), "pass_rates": str(tmp_path / "filter" / "prompts.jsonl"),
                      "output_dir": str(tmp_path / "train-hard"), "subset": "hard"}
    assert wire("train", {}, ctx)["pass_rates"] == str(tmp_path / "filter" / "prompts.jsonl")  # for --order difficulty
    assert wire("publish", {}, ctx)["run_dir"] == str(tmp_path / "train-hard")  # the run's student is the second stage's
