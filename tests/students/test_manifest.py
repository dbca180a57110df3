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
