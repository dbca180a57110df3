"""`distill doctor MODEL_DIR`: a folder `distill publish` wrote passes; copies broken one way each fail for that reason."""

from __future__ import annotations

import json
import shutil

import pytest

from .conftest import tiny_config, write_kept


@pytest.fixture(scope="module")
def published(tiny_qwen, tmp_path_factory):
    """A tiny student trained for two steps and published as `distill publish` writes it."""
    from students.publish import PublishConfig
    from students.publish import run as publish
    from students.train import run as train

    root = tmp_path_factory.mktemp("doctor-folder")
    config = tiny_config(tiny_qwen, write_kept(root / "kept.jsonl", copies=1), root / "run", max_steps=2, save_steps=100)
    train(config)
    publish(PublishConfig(run_dir=root / "run", output=root / "model"))
    return root / "model"


def copy_of(published, tmp_path):
    return shutil.copytree(published, tmp_path / "model")


def doctor_json(distill_cli, folder) -> tuple[int, dict, str]:
    code, out, err = distill_cli("doctor", folder, "--json")
    return code, {c["name"]: c for c in json.loads(out)["checks"]}, err


def with_modelfile(folder, *changes: tuple[str, str]):
    """The Modelfile publish --gguf writes, FROM a weights file beside it (no llama.cpp needed here)."""
    from students.inference import CHAT_FORMATS
    from students.modelfile import render_modelfile

    (folder / "weights.bin").write_bytes(b"")
    text = render_modelfile(CHAT_FORMATS["chatml"], "weights.bin", ["<|im_end|>", "<|endoftext|>"], 128)
    for old, new in changes:
        assert old in text
        text = text.replace(old, new)
    (folder / "Modelfile").write_text(text)
    return folder


def test_bar_published_student_passes_and_a_missing_eos_id_fails(distill_cli, published, tmp_path):
    code, checks, err = doctor_json(distill_cli, published)
    assert code == 0, err
    assert {c["status"] for c in checks.values()} <= {"pass", "warn"}
    assert checks["eos ids: end-of-turn stops generation"]["status"] == "pass"
    assert checks["template: prompt = training prefix"]["status"] == "pass"
    assert checks["sampling: R1's 0.6 / 0.95"]["status"] == "pass"

    broken = copy_of(published, tmp_path)
    generation = json.loads((broken / "generation_config.json").read_text())
    end = generation["eos_token_id"][0]  # publish puts the end-of-turn id first
    generation["eos_token_id"] = [i for i in generation["eos_token_id"] if i != end]
    (broken / "generation_config.json").write_text(json.dumps(generation))
    code, checks, err = doctor_json(distill_cli, broken)
    assert code == 2 and err.startswith("error: doctor: eos ids") and len(err.strip().splitlines()) == 1
    failed = [c for c in checks.values() if "eos" in c["name"] and c["status"] == "fail"]
    assert failed and f"add {end} to eos_token_id" in failed[0]["fix"]
    code, out, _ = distill_cli("doctor", broken)  # the table names the failure too
    assert code == 2 and "fail" in out and "1 failed" in out


def test_modelfile_whose_stop_token_differs(distill_cli, published, tmp_path):
    folder = with_modelfile(copy_of(published, tmp_path))
    code, checks, err = doctor_json(distill_cli, folder)
    assert code == 0, err
    assert checks["Modelfile: stop tokens"]["status"] == checks["Modelfile: template"]["status"] == "pass"
    assert checks["Modelfile: model file"]["status"] == "pass"
    with_modelfile(folder, ('PARAMETER stop "<|im_end|>"', 'PARAMETER stop "<|end|>"'))
    code, checks, _ = doctor_json(distill_cli, folder)
    assert code == 2 and checks["Modelfile: stop tokens"]["status"] == "fail"
    assert "the template ends a turn with <|im_end|>" in checks["Modelfile: stop tokens"]["figure"]


def test_modelfile_template_without_think_and_greedy_sampling(distill_cli, published, tmp_path):
    folder = with_modelfile(copy_of(published, tmp_path), ("assistant\n<think>\n{{ end }}", "assistant\n{{ end }}"),
                            ("PARAMETER temperature 0.6", "PARAMETER temperature 0"))
    code, checks, _ = doctor_json(distill_cli, folder)
    assert code == 2 and checks["Modelfile: template"]["status"] == "fail"
    assert checks["sampling: R1's 0.6 / 0.95"]["status"] == "warn" and "Modelfile: temperature 0," in checks["sampling: R1's 0.6 / 0.95"]["figure"]


def test_jinja_template_that_drops_think_fails_the_prefix_check(distill_cli, published, tmp_path):
    folder = copy_of(published, tmp_path)
    template = (folder / "chat_template.jinja").read_text()
    (folder / "chat_template.jinja").write_text(template.replace("<think>\n", ""))
    code, checks, _ = doctor_json(distill_cli, folder)
    check = checks["template: prompt = training prefix"]
    assert code == 2 and check["status"] == "fail" and "2 of 2 prompts differ" in check["figure"]


def test_base_model_with_pad_equal_to_eos_only_warns(distill_cli, tiny_qwen):
    """The tiny Qwen base ships pad == eos, as Qwen2.5 does: served, that is fine (a warning); its R1 template passes."""
    code, checks, err = doctor_json(distill_cli, tiny_qwen)
    assert code == 0, err
    assert checks["pad vs eos"]["status"] == "warn" and "pad <|endoftext|>" in checks["pad vs eos"]["figure"]
    assert checks["template: prompt = training prefix"]["status"] == "pass"


def test_not_a_model_folder_is_one_line(distill_cli, tmp_path):
    code, _, err = distill_cli("doctor", tmp_path)
    assert code == 2 and err == f"error: {tmp_path}: not a model folder (no config.json)\n"
    code, _, err = distill_cli("doctor")
    assert code == 2 and "give a model folder to check, or a training run's flags" in err


def test_gguf_metadata_against_the_folder(distill_cli, published, tmp_path):
    """GGUF files carrying the folder's template, stop id and context pass; one stopping elsewhere fails."""
    gguf = pytest.importorskip("gguf", reason="llama.cpp's gguf package (the gguf extra) is not installed")
    from transformers import AutoTokenizer

    folder = copy_of(published, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    end = json.loads((folder / "generation_config.json").read_text())["eos_token_id"][0]
    template = AutoTokenizer.from_pretrained(folder).chat_template

    def write(name: str, eos: int) -> None:  # metadata only: the doctor reads no tensors
        writer = gguf.GGUFWriter(str(folder / name), "qwen2")
        writer.add_context_length(config["max_position_embeddings"])
        writer.add_chat_template(template)
        writer.add_eos_token_id(eos)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    write("student-F32.gguf", end)
    code, checks, err = doctor_json(distill_cli, folder)
    assert code == 0 and checks["GGUF: student-F32.gguf"]["status"] == "pass", err
    write("student-Q8_0.gguf", end + 1)
    code, checks, _ = doctor_json(distill_cli, folder)
    assert code == 2 and checks["GGUF: student-Q8_0.gguf"]["status"] == "fail"
    assert f"not at the end-of-turn id {end}" in checks["GGUF: student-Q8_0.gguf"]["figure"]


def test_a_template_that_cannot_render_a_conversation_is_one_failing_check(distill_cli, published, tmp_path):
    folder = copy_of(published, tmp_path)
    (folder / "chat_template.jinja").write_text("{{ raise_exception('system messages only') }}")
    code, checks, err = doctor_json(distill_cli, folder)
    assert code == 2 and list(checks) == ["chat template"] and "system messages only" in checks["chat template"]["figure"]
