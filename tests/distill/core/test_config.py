"""Recipes: unknown keys are errors with a did-you-mean and a line; flags override the recipe."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field

from distill.core.config import dump, load_yaml, resolve
from distill.core.errors import InputError


class Engine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tensor_parallel_size: int = 1


class Sampling(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(default=0.6, ge=0)
    n: int = 4
    engine: Engine = Engine()


def write(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_section_then_flags(tmp_path):
    recipe = write(tmp_path, "name: x\ngenerate:\n  temperature: 0.7\n  n: 8\n")
    config = resolve(Sampling, recipe, "generate", {"n": 2, "temperature": None})
    assert (config.temperature, config.n) == (0.7, 2)
    assert "temperature: 0.7" in dump(config)


def test_unknown_key_has_did_you_mean_and_line(tmp_path):
    recipe = write(tmp_path, "generate:\n  n: 8\n  temprature: 0.7\n")
    with pytest.raises(InputError) as err:
        resolve(Sampling, recipe, "generate")
    assert str(err.value) == f"{recipe}:3: field 'generate.temprature': unknown key (did you mean 'temperature'?)"


def test_nested_unknown_key(tmp_path):
    recipe = write(tmp_path, "generate:\n  engine:\n    tensor_paralel_size: 2\n")
    with pytest.raises(InputError, match=r"r\.yaml:3: field 'generate\.engine\.tensor_paralel_size': unknown key \(did you mean 'tensor_parallel_size'\?\)"):
        resolve(Sampling, recipe, "generate")


def test_unknown_section_and_bad_values(tmp_path):
    with pytest.raises(InputError, match=r"r\.yaml:1: field 'generat': unknown section \(did you mean 'generate'\?\)"):
        resolve(Sampling, write(tmp_path, "generat:\n  n: 1\n"), "generate", sections=("name", "generate"))
    with pytest.raises(InputError, match=r"r\.yaml:2: field 'generate\.temperature': input should be greater than or equal to 0"):
        resolve(Sampling, write(tmp_path, "generate:\n  temperature: -1\n"), "generate")
    with pytest.raises(InputError, match=r"field 'n': input should be a valid integer"):
        resolve(Sampling, None, "generate", {"n": "many"})


def test_yaml_errors(tmp_path):
    with pytest.raises(InputError, match=r"r\.yaml:2: invalid YAML"):
        load_yaml(write(tmp_path, "generate:\n  n: a: b\n"))
    with pytest.raises(InputError, match="no such recipe file"):
        load_yaml(tmp_path / "absent.yaml")
    with pytest.raises(InputError, match="a recipe must be a mapping"):
        load_yaml(write(tmp_path, "- a\n- b\n"))
