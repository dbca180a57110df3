"""`distill doctor` before a training run: each broken setup fails its check for the right reason, and passes
once fixed. Tiny models (tests/conftest.py), kept traces written here; nothing is trained except where train's
own preflight is shown stopping a run."""

from __future__ import annotations

import dataclasses
import json

import pytest

from distill.core.errors import InputError
from students.doctor.training import training_checks

from .conftest import tiny_config, write_kept


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
    return write_kept(tmp_path_factory.mktemp("doctor") / "kept.jsonl")


def checks_of(base, kept, tmp_path, **overrides) -> dict:
    checks = training_checks(tiny_config(base, kept, tmp_path / "run", **overrides))
    return {check.name: check for check in checks}


def test_bar_well_formed_traces_pass_with_train_flags(distill_cli, tiny_qwen, kept):
    code, out, err = distill_cli("doctor", "--student", "qwen-1.5b", "--base-model", tiny_qwen, "--data", kept, "--max-length", "128", "--json")
    assert code == 0, err
    checks = json.loads(out)["checks"]
    assert {c["status"] for c in checks} <= {"pass", "warn"} and len(checks) >= 12
    assert all(set(c) == {"name", "status", "figure", "fix"} for c in checks)
    by_name = {c["name"]: c for c in checks}
    assert by_name["loss mask: non-empty"]["figure"] == "24 of 24 samples have label tokens"
    assert by_name["data: duplicates"]["status"] == "warn"  # write_kept repeats each sample four times
    code, out, _ = distill_cli("doctor", "--student", "qwen-1.5b", "--base-model", tiny_qwen, "--data", kept, "--max-length", "128")
    assert code == 0 and "template: prompt = training prefix" in out and "passed" in out


def test_template_without_generation_marks_leaves_the_loss_mask_empty(tiny_qwen, kept, tmp_path, monkeypatch):
    from students.templates import TEMPLATES

    good = TEMPLATES["chatml"]
    plain = good.jinja.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    monkeypatch.setitem(TEMPLATES, "chatml", dataclasses.replace(good, jinja=plain))
    broken = checks_of(tiny_qwen, kept, tmp_path)
    assert broken["loss mask: non-empty"].status == "fail"
    assert broken["loss mask: non-empty"].figure.startswith("0 of 24 samples have label tokens")
    assert "{% generation %}" in broken["loss mask: non-empty"].fix
    assert broken["loss mask: end-of-turn token"].status == "fail"
    monkeypatch.setitem(TEMPLATES, "chatml", good)
    fixed = checks_of(tiny_qwen, kept, tmp_path)
    assert fixed["loss mask: non-empty"].status == fixed["loss mask: end-of-turn token"].status == "pass"


def test_pad_equal_to_eos_fails_before_anything_is_rendered(tiny_qwen, kept, tmp_path, monkeypatch):
    from students.presets import STUDENTS

    good = STUDENTS["qwen-1.5b"]
    monkeypatch.setitem(STUDENTS, "qwen-1.5b", good.model_copy(update={"pad_token": "<|im_end|>"}))
    broken = checks_of(tiny_qwen, kept, tmp_path)
    assert broken["pad vs eos"].status == "fail" and broken["pad vs eos"].figure == "pad <|im_end|> vs eos <|im_end|>"
    assert "never stops" in broken["pad vs eos"].fix
    monkeypatch.setitem(STUDENTS, "qwen-1.5b", good)
    assert checks_of(tiny_qwen, kept, tmp_path)["pad vs eos"].status == "pass"


def test_inference_template_that_drops_think_from_the_prompt(tiny_qwen, kept, tmp_path, monkeypatch):
    from students.inference import INFERENCE_TEMPLATES

    good = INFERENCE_TEMPLATES["chatml"]
    monkeypatch.setitem(INFERENCE_TEMPLATES, "chatml", good.replace("<think>\\n", "").replace("<think>\n", ""))
    check = checks_of(tiny_qwen, kept, tmp_path)["template: prompt = training prefix"]
    assert check.status == "fail" and check.figure.startswith("24 of 24 prompts differ from the training prefix")
    # the prompt stops where training opens <think>
    assert "<|im_start|>assistant\\n' vs training" in check.figure and check.figure.endswith("<|im_start|>assistant\\n<think>\\n'")
    monkeypatch.setitem(INFERENCE_TEMPLATES, "chatml", good)
    check = checks_of(tiny_qwen, kept, tmp_path)["template: prompt = training prefix"]
    assert check.status == "pass" and "24 of 24" in check.figure


def test_max_length_past_the_models_positions(tiny_llama, kept, tmp_path):
    # llama-8b's preset has no long-context rope_theta: positions past the base's 4096 would be untrained
    check = checks_of(tiny_llama, kept, tmp_path, student="llama-8b", max_seq_length=8192)["context: max_seq_length vs positions"]
    assert check.status == "fail" and "max_seq_length 8192, base max_position_embeddings 4096" in check.figure
    assert "--max-length 4096" in check.fix
    assert checks_of(tiny_llama, kept, tmp_path, student="llama-8b", max_seq_length=4096)["context: max_seq_length vs positions"].status == "pass"
    # qwen-1.5b's preset raises rope_theta past the window, as train will: the figure says so
    check = checks_of(tiny_llama, kept, tmp_path, max_seq_length=8192)["context: max_seq_length vs positions"]
    assert check.status == "pass" and "train sets rope_theta 300000, max_position_embeddings 32768" in check.figure


def test_samples_too_long_warn_with_the_length_that_keeps_99_percent(tiny_qwen, kept, tmp_path):
    check = checks_of(tiny_qwen, kept, tmp_path, max_length=50)["context: samples too long"]
    assert check.status == "warn" and "are longer than max_length 50 and dropped; 99% fit in" in check.figure
    keep = int(check.fix.split()[1])
    assert checks_of(tiny_qwen, kept, tmp_path, max_length=keep)["context: samples too long"].status == "pass"


def test_kd_teacher_with_another_vocabulary(tiny_qwen, tiny_llama, tmp_path):
    from .test_kd import write_kd_data

    data = write_kd_data(tmp_path / "kd.jsonl", tiny_qwen)
    check = checks_of(tiny_qwen, data, tmp_path, objective="kd", teacher_tokenizer=str(tiny_llama))["kd: teacher tokenizer"]
    assert check.status == "fail" and "tokenizers differ on" in check.figure and "--objective sft" in check.fix
    check = checks_of(tiny_qwen, data, tmp_path, objective="kd")["kd: teacher tokenizer"]  # the teacher the records name
    assert check.status == "pass" and "read alike" in check.figure


def test_data_checks_truncated_unclosed_bare_duplicate_and_benchmark_prompts(distill_cli, tiny_qwen, tmp_path):
    rows = [
        {"problem": "What is 3 plus 4?", "completion": "3 + 4 = 7.\n</think>\n\nThe answer is 7.", "finish_reason": "stop"},
        {"problem": "A train leaves the station at noon and runs for three hours. When does it arrive?", "completion": "<think>\nNoon plus three", "finish_reason": "length"},
        {"messages": [{"role": "user", "content": "Say hello."}, {"role": "assistant", "content": "Hello!"}]},
        {"problem": "What is 3 plus 4?", "completion": "3 + 4 = 7.\n</think>\n\nThe answer is 7.", "finish_reason": "stop"},
    ]
    data = tmp_path / "kept.jsonl"
    data.write_text("".join(json.dumps({"problem_id": f"p{i}", "id": f"p{i}#0", "sample_index": 0, **row}) + "\n"
                            if "problem" in row else json.dumps(row) + "\n" for i, row in enumerate(rows)))
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"problem": "Problem 7. A train leaves the station at noon and runs for three hours.", "answer": "3pm"}) + "\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"train: {{student: qwen-1.5b, max_length: 128}}\neval: {{model: x, benchmarks: [{bench}, aime24]}}\n")
    code, out, err = distill_cli("doctor", "--recipe", recipe, "--base-model", tiny_qwen, "--data", data, "--json")
    assert code == 2 and err.startswith("error: doctor: ") and len(err.strip().splitlines()) == 1
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert checks["data: truncated samples"]["status"] == "fail" and checks["data: truncated samples"]["figure"].startswith("1 of 4")
    assert checks["data: reasoning closed"]["status"] == "fail"  # the cut sample opened <think> and never closed it
    assert checks["data: general turns"]["status"] == "fail" and "1 of 4 samples have an answer without" in checks["data: general turns"]["figure"]
    assert checks["data: duplicates"]["status"] == "warn" and checks["data: duplicates"]["figure"].startswith("1 of 4")
    assert checks["data: benchmark prompts"]["status"] == "fail" and "1 of 4 prompts share a 8-gram with bench.jsonl" in checks["data: benchmark prompts"]["figure"]
    assert checks["template: prompt = training prefix"]["status"] == "fail"  # the bare answer has no <think> for the prompt to open


def test_train_runs_the_fast_checks_first_and_no_doctor_skips_them(distill_cli, tiny_qwen, kept, tmp_path, monkeypatch):
    from students.templates import TEMPLATES

    good = TEMPLATES["chatml"]
    monkeypatch.setitem(TEMPLATES, "chatml", dataclasses.replace(good, jinja=good.jinja.replace("{% generation %}", "").replace("{% endgeneration %}", "")))
    args = ["train", "--student", "qwen-1.5b", "--base-model", tiny_qwen, "--data", kept, "--max-length", "128", "--max-steps", "1",
            "--eval-fraction", "0", "--no-gradient-checkpointing"]
    code, _, err = distill_cli(*args, "-o", tmp_path / "run")
    (line,) = err.strip().splitlines()
    assert code == 2 and line.startswith("error: doctor: loss mask: non-empty failed: 0 of 24 samples") and "--no-doctor" in line
    assert not (tmp_path / "run" / "final").exists()
    with pytest.raises(InputError, match="doctor: loss mask"):
        from students.train import run

        run(tiny_config(tiny_qwen, kept, tmp_path / "run2"))
    monkeypatch.setitem(TEMPLATES, "chatml", good)
    code, _, err = distill_cli(*args, "-o", tmp_path / "run3")  # warnings print, training goes on, train.json records them
    assert code == 0 and "warning: doctor: data: duplicates: 18 of 24 samples repeat an earlier one" in " ".join(err.split()), err
    recorded = json.loads((tmp_path / "run3" / "train.json").read_text())["warnings"]
    assert any(line.startswith("doctor: data: duplicates: 18 of 24") for line in recorded)
    code, _, err = distill_cli(*args, "-o", tmp_path / "run4", "--no-doctor")
    assert code == 0 and "doctor" not in err and (tmp_path / "run4" / "final").is_dir()


def test_released_qwen_tokenizer_passes(released_qwen, kept, tmp_path):
    """The deploy recipe's student: Qwen2.5's real tokenizer, <think> as plain text."""
    checks = checks_of(released_qwen, kept, tmp_path)
    assert all(check.status != "fail" for check in checks.values()), [c for c in checks.values() if c.status == "fail"]
    assert checks["template: prompt = training prefix"].status == "pass"


def test_onpolicy_teacher_of_the_recipe_must_share_the_students_vocabulary(distill_cli, tiny_qwen, tiny_llama, kept, tmp_path):
    for teacher, status in ((tiny_llama, "fail"), (tiny_qwen, "pass")):
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(f"train: {{student: qwen-1.5b, max_length: 128}}\nonpolicy: {{teacher: {teacher}}}\n")
        code, out, _ = distill_cli("doctor", "--recipe", recipe, "--base-model", tiny_qwen, "--data", kept, "--json")
        check = {c["name"]: c for c in json.loads(out)["checks"]}["on-policy: teacher tokenizer"]
        assert (code, check["status"]) == ((2, "fail") if status == "fail" else (0, "pass")), check
        if status == "fail":
            assert "the teacher's tokenizer differs from the student's" in check["figure"]
