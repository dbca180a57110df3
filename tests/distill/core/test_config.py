"""Recipes: unknown keys are errors with a did-you-mean and a line; flags override the recipe."""

from __future__ import annotations

import pytest
import yaml
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


# ---------------------------------------------------------------------------- hostile and malformed recipes


def _bomb(levels: int) -> str:
    lines = ["generate:", "  extra_body:", "    a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"    a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("generate: " + "[" * 10000 + "]" * 10000 + "\n", "nested too deeply"),
        ("generate:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 80)), "nested too deeply"),
        (_bomb(9), "aliases expand to more than"),
        ("generate: &a\n  n: [*a]\n", "alias refers to its own anchor"),
        ("generate:\n  n: 2\ngenerate:\n  n: 3\n", r"r\.yaml:3: duplicate key 'generate'"),
        ("generate:\n  n: 2\n  n: 3\n", r"r\.yaml:3: duplicate key 'n'"),
        ("generate: !!python/object/apply:os.system [id]\n", "tag '!!python/object/apply:os.system' is not allowed"),
        ("generate: {n: !!binary aGVsbG8=}\n", "tag '!!binary' is not allowed"),
        ("generate: {n: [\n", "invalid YAML"),
    ],
)
def test_hostile_recipes_are_one_line_errors(tmp_path, text, message):
    import time

    started = time.monotonic()
    with pytest.raises(InputError, match=message) as err:
        load_yaml(write(tmp_path, text))
    assert "\n" not in str(err.value) and time.monotonic() - started < 20


def test_aliases_within_budget_and_merge_keys_still_work(tmp_path):
    text = "generate: &g\n  n: 2\n  when: 2020-01-01\nfilter:\n  <<: *g\n  n: 3\n" + _bomb(3).replace("generate:\n  extra_body:", "extra:")
    doc = load_yaml(write(tmp_path, text))
    assert len(doc["extra"]["a3"]) == 10
    assert doc["filter"] == {"n": 3, "when": "2020-01-01"}  # a merge key, then an own key: not a duplicate
    assert doc["generate"]["when"] == "2020-01-01"  # dates stay text (JSON has no dates)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("run: [filter]\n", "field 'run': must be a mapping of settings, got a list"),
        ("filter: 3\n", "field 'filter': must be a mapping of settings, got a number"),
        ("name: /some/dir\n", "field 'name': must be a name"),
        ("name: /\n", "field 'name': must be a name"),
        ("name: ..\n", "field 'name': must be a name"),
        ("name: [a]\n", "field 'name': must be text"),
    ],
)
def test_sections_have_their_shape(tmp_path, text, message):
    from distill.core.config import load_recipe

    with pytest.raises(InputError, match=message):
        load_recipe(write(tmp_path, text), ["name", "description", "run", "filter"])


def test_renamed_settings_load_under_their_old_names_and_fingerprint_as_before(tmp_path):
    """train's max_length is max_seq_length now (filter's completion length kept its own): a recipe with the
    old key loads, a flag's new name overrides it, both names at once is an error; the fingerprint sees the
    settings as before the rename and before the preset's defaults were filled in, so finished stages stay."""
    from distill.core.config import fingerprint_view
    from students.config import TrainConfig
    from students.onpolicy_config import OnPolicyConfig
    from students.presets import STUDENTS

    old = write(tmp_path, "train:\n  student: qwen-1.5b\n  max_length: 256\n")
    config = resolve(TrainConfig, old, "train")
    assert config.max_seq_length == 256
    assert resolve(TrainConfig, old, "train", {"max_seq_length": 512}).max_seq_length == 512
    both = write(tmp_path, "train:\n  student: qwen-1.5b\n  max_length: 256\n  max_seq_length: 512\n")
    with pytest.raises(InputError, match="'max_length' is the old name of 'max_seq_length'"):
        resolve(TrainConfig, both, "train")
    # What --print-config shows is what runs: the preset's defaults are filled in ...
    preset = STUDENTS["qwen-1.5b"]
    printed = yaml.safe_load(dump(config))
    assert printed["learning_rate"] == preset.learning_rate and printed["epochs"] == preset.epochs
    assert printed["max_seq_length"] == 256 and "max_length" not in printed
    # ... and the fingerprint sees what the recipe gave, under the names it had.
    view = fingerprint_view(config)
    assert view["max_length"] == 256 and "max_seq_length" not in view
    assert view["learning_rate"] is None and view["epochs"] is None
    assert fingerprint_view(TrainConfig(student="qwen-1.5b"))["max_length"] is None
    given = fingerprint_view(TrainConfig(student="qwen-1.5b", learning_rate=1e-5))
    assert given["learning_rate"] == 1e-5
    onpolicy = OnPolicyConfig(student="qwen-1.5b", max_length=512)
    assert onpolicy.max_prompt_length == 512 and fingerprint_view(onpolicy)["max_length"] == 512
    assert OnPolicyConfig(student="qwen-1.5b").max_prompt_length == preset.max_length
    assert fingerprint_view(OnPolicyConfig(student="qwen-1.5b"))["max_length"] is None
