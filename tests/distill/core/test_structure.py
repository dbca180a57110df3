"""The architecture's rules, checked on the code itself: the foundation imports no stage, every
stage and backend implements its interface, and adding a rule or a setting needs no other edit."""

from __future__ import annotations

import ast
from pathlib import Path

from distill.core.flags import flags_for
from distill.core.stage import Stage
from distill.filters.config import FilterConfig
from distill.filters.registry import RULES, default_rules, ordered
from distill.pipeline.stages import STAGE_MODULES, registry, sections

ROOT = Path(__file__).resolve().parents[3]
STAGE_PACKAGES = ("distill.filters", "distill.evaluate", "distill.publish_data", "distill.pipeline", "distill.quickstart", "teacher", "students", "cli")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_foundation_imports_no_stage():
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / "distill" / "core").rglob("*.py"))
        for name in _imports(path)
        if name.startswith(STAGE_PACKAGES)
    ]
    assert offenders == []


def test_the_foundation_has_no_import_circles():
    """Every import between core modules (function-level ones too) points one way: a circle means two
    modules that are really one, or a function in the wrong one (data <-> hub, sandbox <-> verify)."""
    modules = {}
    for path in (ROOT / "distill" / "core").rglob("*.py"):
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[dotted] = path
    edges = {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for name in edges[start] - seen:
            seen.add(name)
            if name == goal or reaches(name, goal, seen):
                return True
        return False

    circles = sorted(name for name in edges if reaches(name, name, set()))
    assert circles == []


def test_every_stage_module_declares_stages_and_the_orchestrator_names_none():
    stages = registry()
    assert {"generate", "filter", "train", "publish", "eval", "teacher", "train-unfiltered", "compare"} <= set(stages)
    for stage in stages.values():
        assert isinstance(stage, Stage) and callable(stage.run)
        fields = set(stage.config.model_fields)
        for group in (stage.reads, stage.writes, stage.in_run):
            assert set(group) <= fields, (stage.name, set(group) - fields)
        for dotted in stage.operational:  # a field, or a nested one ("judge.price_in"): it must exist
            model, *path = dotted.split(".")
            section = stage.config.model_fields.get(model)
            assert section is not None, (stage.name, dotted)
            for name in path:
                section = section.annotation.model_fields.get(name)
                assert section is not None, (stage.name, dotted)
    # Every artifact a stage reads is produced by some stage (or is the run's own recipe copy).
    produced = {artifact for stage in stages.values() for artifact in stage.produces} | {"recipe"}
    wanted = {artifact for stage in stages.values() for artifact in stage.reads.values() if artifact}
    assert wanted <= produced, wanted - produced
    # The orchestrator's modules mention no stage by name (the registry module lists modules only).
    for name in ("run.py", "log.py", "stages.py"):
        text = (ROOT / "distill" / "pipeline" / name).read_text()
        for stage in ("'generate'", '"generate"', '"train"', '"publish"', '"quickstart"', '"teacher"', '"compare"'):
            assert stage not in text, (name, stage)
    assert "quickstart" in sections() and "compare" in sections() and len(STAGE_MODULES) >= 6


def test_every_backend_implements_the_protocol():
    from teacher import backends

    assert {"vllm", "openai"} <= set(backends.names())
    for name in backends.names():
        module = backends.load(name)
        assert isinstance(module, backends.Backend) and isinstance(module.remote, bool)


def test_every_rule_has_its_section_and_flags():
    names = [rule.name for rule in ordered()]
    assert names == list(RULES) or set(names) == set(RULES)
    assert default_rules() == ["format", "length", "decontaminate", "repetition", "readability", "language", "correctness", "judge", "dedup"]
    flags = {decl for flag in flags_for(FilterConfig, ["input"]) for decl in flag.decls}
    for rule in ordered():
        assert rule.name in FilterConfig.model_fields
        for option in rule.options.model_fields:
            canonical = f"--{rule.name}-{option}".replace("_", "-")
            assert canonical in flags or f"{canonical}/--no-{canonical[2:]}" in flags, canonical


def test_flags_follow_recipe_keys_and_keep_old_spellings():
    from students.config import TrainConfig
    from teacher.config import GenerateConfig

    train = {decl: flag for flag in flags_for(TrainConfig) for decl in flag.decls}
    assert train["--learning-rate"].path == train["--lr"].path == ("learning_rate",)
    assert train["--lora"].kind == "switch" and train["--lora"].value == "lora" and train["--qlora"].value == "qlora"
    assert "--packing/--no-packing" in train and "--gradient-checkpointing/--no-gradient-checkpointing" in train
    # One name, one meaning: --max-length was the sequence length in train and the completion length in filter; the
    # old spelling still works in both (and in onpolicy, where it was the prompt length), out of the help.
    assert train["--max-seq-length"].path == train["--max-length"].path == ("max_seq_length",) and train["--max-length"].hidden
    from distill.filters.config import FilterConfig as Filter
    from students.onpolicy_config import OnPolicyConfig

    filter_ = {decl: flag for flag in flags_for(Filter) for decl in flag.decls}
    assert filter_["--max-completion-length"].path == filter_["--max-length"].path == ("length", "max")
    assert filter_["--min-completion-length"].path == filter_["--min-length"].path == ("length", "min")
    onpolicy = {decl: flag for flag in flags_for(OnPolicyConfig) for decl in flag.decls}
    assert onpolicy["--max-prompt-length"].path == onpolicy["--max-length"].path == ("max_prompt_length",)
    # onpolicy's schedule, checkpoints and LoRA shape are train's models: the same flags, help and limits
    for name in ("--max-grad-norm", "--bf16/--no-bf16", "--save-total-limit", "--resume/--no-resume", "--lora-r", "--lora-targets"):
        assert onpolicy[name].help == train[name].help, name
    generate = {decl: flag for flag in flags_for(GenerateConfig, ["prompts"]) for decl in flag.decls}
    assert generate["--field-problem"].path == generate["--fields-problem"].path == ("fields", "problem")
    assert generate["--tp"].path == ("tensor_parallel_size",) and generate["-o"].path == ("output",)
    # Every field of every stage config has exactly one flag (no two settings share a spelling).
    for stage in registry().values():
        decls = [decl for flag in flags_for(stage.config) for decl in flag.decls]
        assert len(decls) == len(set(decls)), stage.name


def test_cli_is_wiring_only():
    """A stage's command comes from its declaration: cli.py names no stage command (a new stage is its module
    and its line in the stage list), and stays short."""
    import cli

    text = (ROOT / "cli.py").read_text()
    assert len(text.splitlines()) <= 150
    commands = [command.name for command in cli.app.registered_commands]
    declared = [stage.name for stage in registry().values() if stage.command is not None]
    assert set(declared) <= set(commands)
    assert [name for name in declared if f'command(app, "{name}"' in text or f'command("{name}")' in text] == []
