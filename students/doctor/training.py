"""`distill doctor` with a training run's flags: the run checked before it starts.

Everything is computed by the functions `train` itself calls: the base's config
(`check_base_model`), the tokenizer with the training template (`load_tokenizer`), the context
overrides (`context_overrides`), the stop ids train saves (`stop_token_ids`), the samples
(`conversations_of`) and their tokens and labels (`tokenize`); the inference template is the one
`publish` will save for that template. `preflight` is what `train` runs before loading the model:
the fast checks, a failure stopping it with the doctor's one line.
"""

from __future__ import annotations

import math
from typing import Any

from distill.core.errors import InputError
from students.config import TrainConfig
from students.doctor import Check, fail, judged, message, ok, warn
from students.doctor.data import data_checks, read_samples
from students.doctor.rendering import mask_checks, prefix_checks
from students.templates import TEMPLATES, stop_token_ids

FAST_SAMPLES = 64  # samples `train`'s preflight renders (the doctor renders all of them)
DROP_WARN = 0.01  # share of samples dropped as too long above which the doctor warns


def training_checks(config: TrainConfig, benchmarks: list[str] = (), problem_field: str = "problem", fast: bool = False,
                    onpolicy_teacher: str | None = None) -> list[Check]:
    from students.dataset import tokenize
    from students.inference import INFERENCE_TEMPLATES
    from students.train import check_base_model, load_tokenizer

    if config.data is None:
        raise InputError("the data to check is required (--data)", field="data")
    preset = config.student_preset
    base = config.base_model or preset.model_id
    base_config = check_base_model(base)
    template = TEMPLATES[config.template or preset.template]
    max_length = config.max_seq_length
    checks = [context_check(config, base_config, max_length)]
    samples = read_samples([path for path, _ in config.sources()], config)
    if not samples:
        raise InputError("no usable rows (every record is marked rejected)", where=", ".join(path for path, _ in config.sources()))
    pad_check = judged("pad vs eos", preset.pad_token == template.eos_token, f"pad {preset.pad_token} vs eos {template.eos_token}",
                       "a pad token other than the end-of-turn token: with pad == eos the eos is masked out of the labels "
                       "and the model never stops")
    checks.append(pad_check)
    if pad_check.status == "pass":
        try:
            tokenizer, template = load_tokenizer(base, config)
        except InputError as exc:
            checks.append(fail("tokenizer", message(exc), "a --template of the base's family (distill students)"))
            tokenizer = None
        if tokenizer is not None:
            stops = stop_token_ids(tokenizer, template, base_config.get("eos_token_id"))
            shown = [s.messages for s in samples[:FAST_SAMPLES]] if fast else [s.messages for s in samples]
            rendered = [(messages, *tokenize(tokenizer, messages)) for messages in shown]
            checks += mask_checks(tokenizer, template.eos_token, rendered, stops)
            checks += prefix_checks(tokenizer, template.jinja, INFERENCE_TEMPLATES[template.name], shown)
            if not fast:
                checks.append(length_check([len(ids) for _, ids, _ in rendered], max_length))
            if config.objective == "kd" and not fast:  # train's own KD preparation runs the same check
                checks.append(kd_check(config, tokenizer, base_config))
            if onpolicy_teacher:
                checks.append(onpolicy_check(tokenizer, onpolicy_teacher))
    return checks + data_checks(samples, list(benchmarks), problem_field)


def rope_of(base_config: dict[str, Any]) -> tuple[float | None, str | None]:
    rope = base_config.get("rope_parameters") or base_config.get("rope_scaling") or {}
    return rope.get("rope_theta", base_config.get("rope_theta")), rope.get("rope_type") or rope.get("type")


def context_check(config: TrainConfig, base_config: dict[str, Any], max_length: int) -> Check:
    """max_length against the base's positions, with the rope override train will make (presets.py)."""
    from students.train import context_overrides

    native = base_config.get("max_position_embeddings") or config.student_preset.native_context
    theta, kind = rope_of(base_config)
    overrides = context_overrides(config, base_config, max_length)
    rope = f"rope_theta {theta:g}" if theta else "rope_theta unset"
    rope += f" ({kind})" if kind and kind != "default" else ""
    figure = f"max_seq_length {max_length}, base max_position_embeddings {native}, {rope}"
    if overrides:
        figure += f"; train sets rope_theta {overrides['rope_theta']:g}, max_position_embeddings {overrides['max_position_embeddings']}"
        if max_length > overrides["max_position_embeddings"]:
            return fail("context: max_seq_length vs positions", figure, f"--max-seq-length {overrides['max_position_embeddings']} or less")
        return ok("context: max_seq_length vs positions", figure)
    return judged("context: max_seq_length vs positions", max_length > native, figure,
                  f"--max-length {native} or less, or train past the window with a larger --rope-theta (or --extend-context "
                  "where the preset has a long-context rope_theta)")


def length_check(lengths: list[int], max_length: int) -> Check:
    """The share of samples train drops as too long (never truncated), and the length that keeps 99%."""
    name = "context: samples too long"
    if not lengths:
        return fail(name, "no samples", "--data with kept traces")
    ordered = sorted(lengths)
    keep99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
    dropped = sum(1 for length in lengths if length > max_length)
    figure = (f"{dropped} of {len(lengths)} samples ({dropped / len(lengths):.1%}) are longer than max_seq_length {max_length} "
              f"and dropped; 99% fit in {keep99} tokens, the longest has {ordered[-1]}")
    fix = f"--max-length {keep99} keeps 99% (mind memory: distill train --plan)"
    if dropped == len(lengths):
        return fail(name, figure, fix)
    return judged(name, dropped / len(lengths) > DROP_WARN, figure, fix, status="warn")


def kd_check(config: TrainConfig, tokenizer, base_config: dict[str, Any]) -> Check:
    """KD: teacher and student read every recorded token id alike (students/kd.py's check, reused)."""
    from students.kd import (
        check_tokenizers,
        load_kd_records,
        load_teacher_tokenizer,
        recorded_ids,
        teacher_tokenizer_name,
    )

    data = load_kd_records(config.sources()[0][0])
    name = teacher_tokenizer_name(config, data)
    ids = recorded_ids(data)
    try:
        note = check_tokenizers(load_teacher_tokenizer(name), tokenizer, ids, int(base_config.get("vocab_size") or len(tokenizer)))
    except InputError as exc:
        return fail("kd: teacher tokenizer", message(exc), "a teacher of the student's family, or --objective sft")
    figure = f"{len(ids)} recorded token ids read alike in the teacher's ({name}) and the student's tokenizer"
    return warn("kd: teacher tokenizer", note, "none: training does this itself") if note else ok("kd: teacher tokenizer", figure)


def onpolicy_check(tokenizer, teacher: str) -> Check:
    """On-policy (the recipe's onpolicy.teacher): the teacher scores the student's token ids, so both need one
    vocabulary (students/onpolicy_teacher.py's check, reused)."""
    from students.onpolicy_teacher import check_same_vocabulary

    try:
        check_same_vocabulary(tokenizer, teacher)
    except InputError as exc:
        return fail("on-policy: teacher tokenizer", message(exc), "an on-policy teacher with the student's tokenizer")
    return ok("on-policy: teacher tokenizer", f"the teacher {teacher} has the student's vocabulary ({len(tokenizer.get_vocab())} tokens)")


def preflight(config: TrainConfig) -> list[str]:
    """`train`'s fast checks before it loads the model: a failure is the doctor's one line (InputError); returns
    the warnings, which train prints once its data is read (so that bad input stays one line) and records."""
    from students.doctor.report import failure_line

    checks = training_checks(config, fast=True)
    line = failure_line(checks)
    if line:
        raise InputError(line + " (--no-doctor skips these checks)")
    return [f"doctor: {check.name}: {check.figure} ({check.fix})" for check in checks if check.status == "warn"]
