"""Real training on the tiny models: loss goes down (full, LoRA, QLoRA x Qwen, Llama), the model
learns to stop where the data stops, --resume reproduces the uninterrupted loss curve, the run
directory holds what publish reads, and bad input fails fast."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from distill.core.errors import InputError
from students.train import run

from .conftest import PROBLEMS, completion, tiny_config, write_kept

pytestmark = pytest.mark.slow

METHODS = {  # steps/lr per method: adapters need a higher lr to move in 24 steps
    "full": {"learning_rate": 5e-3},
    "lora": {"learning_rate": 5e-2, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0},
    "qlora": {"learning_rate": 5e-2, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0},
}
FAMILY = {"tiny_qwen": "qwen-1.5b", "tiny_llama": "llama-8b"}


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
    return write_kept(tmp_path_factory.mktemp("data") / "kept.jsonl")


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory, kept):
    """Train each (model, method) once per module; tests share the results."""
    done = {}

    def get(fixture: str, method: str):
        if (fixture, method) not in done:
            out = tmp_path_factory.mktemp(f"{fixture}-{method}")
            config = tiny_config(request.getfixturevalue(fixture), kept, out, FAMILY[fixture], method=method,
                                 **METHODS[method], **({"eval_fraction": 0.2} if method == "lora" else {}))
            done[fixture, method] = (config, run(config))
        return done[fixture, method]

    return get


@pytest.mark.parametrize("method", ["full", "lora", "qlora"])
@pytest.mark.parametrize("fixture", ["tiny_qwen", "tiny_llama"])
def test_loss_decreases(runs, fixture, method):
    _, summary = runs(fixture, method)
    losses = [loss for _, loss in summary["metrics"]["train_loss_curve"]]
    assert len(losses) == 24 and all(math.isfinite(loss) for loss in losses)
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    if method == "full":
        assert last < 0.6 * first, losses
    else:  # through a rank-8 adapter a random-init base plateaus near its unigram loss (~5.5)
        assert last < first - 0.3, losses


def test_run_dir_contract_full(runs):
    config, summary = runs("tiny_qwen", "full")
    final = f"{config.output_dir}/final"
    saved = json.loads(open(f"{config.output_dir}/train.json").read())
    assert saved["student"] == "qwen-1.5b" and saved["method"] == "full" and saved["max_seq_length"] == 128
    assert saved["metrics"]["dropped_too_long"] == 0 and saved["metrics"]["tokens_per_s"] > 0
    assert saved["eos_token"] == "<|im_end|>" and saved["pad_token"] == "<|endoftext|>"
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(final)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token != tokenizer.eos_token
    assert "{% generation %}" in tokenizer.chat_template
    generation = json.loads(open(f"{final}/generation_config.json").read())
    assert generation["eos_token_id"][0] == tokenizer.eos_token_id


def test_run_dir_contract_adapters(runs):
    config, summary = runs("tiny_llama", "qlora")
    saved = json.loads(open(f"{config.output_dir}/train.json").read())
    assert saved["quantization"] == {"load_in_4bit": True, "quant_type": "nf4", "double_quant": True, "compute_dtype": "bfloat16"}
    assert saved["lora"]["r"] == 8
    adapter = json.loads(open(f"{config.output_dir}/final/adapter_config.json").read())
    assert adapter["r"] == 8
    _, lora = runs("tiny_qwen", "lora")
    assert lora["metrics"]["eval_loss"] is not None and math.isfinite(lora["metrics"]["eval_loss"])


def test_model_emits_eos_where_the_data_does(tiny_qwen, tmp_path):
    """After training on a small set, teacher-forced on each training conversation, the model
    predicts the stop token right after the answer and nowhere earlier in its turn; greedy
    generation then stops with it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from students.dataset import tokenize

    small = write_kept(tmp_path / "small.jsonl", copies=2, problems=PROBLEMS[:2])
    config = tiny_config(tiny_qwen, small, tmp_path / "run", max_steps=60, save_steps=1000, learning_rate=5e-3)
    run(config)
    final = f"{config.output_dir}/final"
    tokenizer = AutoTokenizer.from_pretrained(final)
    model = AutoModelForCausalLM.from_pretrained(final).eval()
    eos = tokenizer.eos_token_id
    for a, b in PROBLEMS[:2]:
        messages = [{"role": "user", "content": f"What is {a} plus {b}?"}, {"role": "assistant", "content": "<think>\n" + completion(a, b)}]
        ids, labels = tokenize(tokenizer, messages)
        with torch.no_grad():
            predicted = model(input_ids=torch.tensor([ids])).logits[0].argmax(-1).tolist()
        targets = [i - 1 for i, label in enumerate(labels) if label != -100]  # positions that predict the turn
        assert predicted[targets[-1]] == eos == labels[targets[-1] + 1], (a, b)
        assert eos not in [predicted[i] for i in targets[:-1]], (a, b)
        prompt = tokenizer.apply_chat_template(messages[:1], add_generation_prompt=True, return_dict=True, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**prompt, max_new_tokens=80, do_sample=False)
        assert out[0, -1].item() == eos, tokenizer.decode(out[0])


def test_resume_gives_the_uninterrupted_loss_curve(runs, request, tmp_path, kept):
    from transformers import TrainerCallback

    config, uninterrupted = runs("tiny_qwen", "full")

    class StopAt12(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 12:
                control.should_training_stop = True

    out = tmp_path / "interrupted"
    first = tiny_config(request.getfixturevalue("tiny_qwen"), kept, out, **METHODS["full"])
    run(first, callbacks=[StopAt12()])
    assert (out / "checkpoints" / "checkpoint-12").is_dir()
    resumed = run(first.model_copy(update={"resume": True}))
    expected = dict(map(tuple, uninterrupted["metrics"]["train_loss_curve"]))
    got = dict(map(tuple, resumed["metrics"]["train_loss_curve"]))
    assert sorted(got) == list(range(1, 25))  # steps 1-12 come back with the checkpoint's log history
    for step, loss in got.items():
        assert loss == pytest.approx(expected[step], rel=1e-4, abs=1e-5), step


def test_after_an_interrupt_the_same_command_resumes_from_the_newest_checkpoint(request, tmp_path, kept):
    from transformers import TrainerCallback

    from distill.core.errors import Interrupted

    class Steps(TrainerCallback):
        def __init__(self, stop_at=None):
            self.stop_at, self.seen = stop_at, []

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == self.stop_at:  # Ctrl-C, or SIGTERM (raised as KeyboardInterrupt), mid-run
                raise KeyboardInterrupt
            self.seen.append(state.global_step + 1)

    config = tiny_config(request.getfixturevalue("tiny_qwen"), kept, tmp_path / "run", max_steps=6, save_steps=2)
    with pytest.raises(Interrupted, match="re-run the same command to resume from checkpoint-4"):
        run(config, callbacks=[Steps(stop_at=5)])
    again = Steps()
    summary = run(config, callbacks=[again])  # the same command: no --resume
    assert again.seen == [5, 6] and summary["metrics"]["steps"] == 6  # steps 1-4 (in checkpoint-4) were not trained again

    other = config.model_copy(update={"learning_rate": 1e-3, "output_dir": str(tmp_path / "run2")})
    with pytest.raises(Interrupted):
        run(other, callbacks=[Steps(stop_at=3)])
    with pytest.raises(InputError, match="unfinished run \\(checkpoint-2\\) started with other settings"):
        run(other.model_copy(update={"learning_rate": 2e-3}))
    fresh = Steps()
    run(other.model_copy(update={"learning_rate": 2e-3, "overwrite": True}), callbacks=[fresh])  # starting over is explicit
    assert fresh.seen[0] == 1


# ---------------------------------------------------------------------------- bad input, before heavy loading


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-c", "import cli; cli.main()", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_bad_input_fails_fast_with_one_line(tmp_path, tiny_qwen, kept):
    empty = tmp_path / "wrong.jsonl"
    empty.write_text(json.dumps({"question": "q", "output": "a"}) + "\n")
    notmodel = tmp_path / "notmodel"
    notmodel.mkdir()
    out = tmp_path / "run"
    cases = [
        (["--student", "qwen-7", "--data", str(kept)], "unknown student 'qwen-7' (did you mean 'qwen-7b'?)"),
        (["--student", "qwen-1.5b", "--data", str(empty), "--base-model", str(tiny_qwen)], "wrong.jsonl:1: field 'problem': missing"),
        (["--student", "qwen-1.5b", "--data", str(kept), "--base-model", str(notmodel)], "not a model directory"),
        (["--student", "qwen-1.5b", "--data", str(kept), "--base-model", str(tmp_path / "nope")], "no such model directory"),
        (["--student", "qwen-1.5b", "--data", str(kept), "--base-model", str(tiny_qwen), "--max-length", "20"], "no usable rows"),
    ]
    for args, message in cases:
        result = _cli("train", "-o", str(out), *args)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr
        assert not out.exists()


def test_finished_run_is_not_overwritten(runs):
    config, _ = runs("tiny_qwen", "full")
    with pytest.raises(InputError, match="already holds a finished run"):
        run(config)


def test_plan_works_for_every_preset_without_data_or_heavy_imports():
    """`distill train --student NAME --plan` needs no data, no run dir, and imports no transformers."""
    from students.presets import STUDENTS

    script = (
        "import json, sys\n"
        "from rich.console import Console\n"
        "from students.config import TrainConfig\n"
        "from students.report import plan_report\n"
        "out = {}\n"
        "for name in sys.argv[1:]:\n"
        "    out[name] = plan_report(TrainConfig(student=name), Console(width=120, file=open('/dev/null', 'w')))\n"
        "print(json.dumps({'plans': out, 'transformers': 'transformers' in sys.modules}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, *STUDENTS], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert not answer["transformers"]
    for name, preset in STUDENTS.items():
        plan = answer["plans"][name]
        assert plan["tokens"] == preset.max_length and plan["gpus"] == preset.gpus
        assert plan["methods"][preset.method]["fits"], (name, plan)  # each preset's own method fits its GPUs
    cli = _cli("train", "--student", "qwen-7b", "--plan")
    assert cli.returncode == 0 and "qlora" in cli.stdout, cli.stderr
    missing = _cli("train", "--student", "qwen-7b", "-o", "x")
    assert missing.returncode == 2 and "field 'data': required for training" in missing.stderr
