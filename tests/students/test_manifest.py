"""train.json is typed where it is read, and run folders written by earlier versions still read."""

from __future__ import annotations

import json

import pytest

from distill.core.errors import InputError
from distill.core.models import NF4, bnb_config
from students.manifest import TrainManifest


def test_old_spellings_of_the_quantization_record_read_as_one(tmp_path):
    path = tmp_path / "train.json"
    for spelling in ({"bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True, "bnb_4bit_compute_dtype": "torch.bfloat16"},
                     {"quant_type": "nf4", "use_double_quant": True, "compute_dtype": "bfloat16"},
                     NF4):
        path.write_text(json.dumps({"student": "qwen-1.5b", "method": "qlora", "quantization": spelling, "extra_key": 1}))
        manifest = TrainManifest.read(path)
        assert manifest.quantization == NF4 and manifest.model_extra == {"extra_key": 1}
        config = bnb_config(manifest.quantization)
        assert config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant


def test_a_minimal_old_manifest_reads_and_a_bad_one_is_one_line(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"base_model": "b", "config_overrides": None}))
    manifest = TrainManifest.read(path)
    assert manifest.method == "full" and manifest.config_overrides == {} and manifest.stop_token_ids == []
    path.write_text(json.dumps({"stop_token_ids": "eos"}))
    with pytest.raises(InputError, match=r"train\.json: field 'stop_token_ids'"):
        TrainManifest.read(path)
    path.write_text("{")
    with pytest.raises(InputError, match=r"train\.json:1: malformed JSON"):
        TrainManifest.read(path)


def test_train_json_says_learning_rate_and_old_files_still_read(tmp_path):
    """train.json uses the recipe's names (learning_rate, max_seq_length); one written as lr/max_length reads the same."""
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"student": "qwen-1.5b", "lr": 2e-5, "max_length": 4096}))
    manifest = TrainManifest.read(path)
    assert manifest.learning_rate == 2e-5 and manifest.max_seq_length == 4096 and manifest.model_extra == {}
    manifest.write(path)
    written = json.loads(path.read_text())
    assert written["learning_rate"] == 2e-5 and written["max_seq_length"] == 4096 and "lr" not in written and "max_length" not in written


def test_a_key_in_the_onpolicy_teachers_url_is_written_nowhere(tmp_path):
    """Issue 27: a key written into a URL is a secret; onpolicy's train.json (its config) and train-settings.json
    (what a re-run must match) hold the URL without it, and the same command still resumes."""
    from distill.core.config import settings
    from students import resume
    from students.onpolicy_config import OnPolicyConfig

    config = OnPolicyConfig(student="qwen-1.5b", student_model="s", prompts="p.jsonl", teacher="t", output_dir=str(tmp_path),
                            base_url="http://user:KEY0123456789abcdef@127.0.0.1:9/v1?api_key=KEY0123456789abcdef")
    resume.record(config, tmp_path, fresh=True)
    TrainManifest(student="qwen-1.5b", config=settings(config)).write(tmp_path / "train.json")
    for name in ("train.json", resume.SETTINGS):
        text = (tmp_path / name).read_text()
        assert "KEY0123456789abcdef" not in text and "127.0.0.1:9/v1" in text, name
    assert resume._saved(tmp_path) == resume._settings(config)  # the re-run's settings compare equal: it resumes
