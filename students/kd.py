"""`distill train --objective kd`: examples on the teacher's own tokens, and the tokenizer check.

An example is the student's rendering of the prompt (not trained on), the think prefill the
teacher was given (trained on, cross-entropy only: the student must open its reasoning itself),
then the teacher's sampled token ids exactly as recorded (`generate --logprobs K`; never a
re-tokenisation of the text), each with the teacher's top-K distribution, and the student's
turn-closing token (cross-entropy only, unless the teacher itself closed with that very token).

Tokenizer compatibility, defined: every token id in the recorded data reads as the same token in
the student's tokenizer. Where the only differences are special tokens of both (R1-Distill-Qwen
teachers vs Qwen2.5 students: `<think>`, `</think>`... in the teacher where Qwen2.5 has
object/box tokens, ids 151643-151649), the student takes the teacher's tokenizer, as DeepSeek's
R1 distills did (the embedding rows exist in both; only their meaning changes), and a line says
so. Any other difference is refused before training, naming the first differing ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from distill.core import logprobs
from distill.core.data import iter_rows, validate_record
from distill.core.errors import InputError
from distill.core.ids import UniqueIds
from distill.core.records import Trace


@dataclass
class KdData:
    records: list[tuple[Trace, logprobs.TokenLogprobs]] = field(default_factory=list)
    rows: int = 0
    rejected_skipped: int = 0
    teacher_tokens: int = 0  # completion tokens with a recorded teacher distribution


def load_kd_records(source: str) -> KdData:
    """Kept traces and their recorded log-probabilities; InputError when any record has none."""
    side = logprobs.scan(logprobs.side_path(source))
    if not side.frames:
        raise InputError(f"--objective kd needs the teacher's log-probabilities, and {side.path.name} has none "
                         "(generate with --logprobs K; filter and merge carry them)", where=str(source), field="data")
    data = KdData()
    ids = UniqueIds()
    for where, row in iter_rows(source):
        data.rows += 1
        trace = validate_record(Trace, row, where)
        ids.see(trace.id, where)
        if trace.rejected_by:
            data.rejected_skipped += 1
            continue
        if trace.id not in side.frames:
            raise InputError(f"record '{trace.id}' has no log-probabilities in {side.path.name}", where=where, field="data")
        lp = side.read(trace.id)
        data.records.append((trace, lp))
        data.teacher_tokens += len(lp)
    if not data.records:
        raise InputError(f"no usable rows ({data.rows} read, {data.rejected_skipped} marked rejected)", where=str(source))
    return data


# ---------------------------------------------------------------------------- tokenizers


def recorded_ids(data: KdData) -> np.ndarray:
    parts = [np.concatenate([lp.ids, lp.top_ids.reshape(-1)]) for _, lp in data.records]
    found = np.unique(np.concatenate(parts))
    return found[found >= 0]


def _special(tokenizer) -> set[int]:
    return set(getattr(tokenizer, "added_tokens_decoder", {}) or {}) | set(tokenizer.all_special_ids)


def check_tokenizers(teacher, student, ids: np.ndarray, student_vocab: int) -> str | None:
    """None when every recorded id is the same token in both; a note when only special tokens of
    both differ (the student then takes the teacher's tokenizer); InputError otherwise."""
    beyond = [int(i) for i in ids if i >= student_vocab]
    if beyond:
        raise InputError(f"the teacher's token ids reach {max(beyond)}, past the student's {student_vocab} embeddings: "
                         "a different vocabulary cannot teach this student by KD (use --objective sft)", field="teacher_tokenizer")
    pieces = lambda tok: tok.convert_ids_to_tokens([int(i) for i in ids])  # noqa: E731
    differ = [(int(i), a, b) for i, a, b in zip(ids, pieces(teacher), pieces(student), strict=True) if a != b]
    if not differ:
        return None
    shown = ", ".join(f"{i}: {a!r} vs {b!r}" for i, a, b in differ[:4])
    both_special = _special(teacher) & _special(student)
    if all(i in both_special for i, _, _ in differ):
        return (f"the student takes the teacher's tokenizer, as DeepSeek's R1 distills do: {len(differ)} recorded ids are "
                f"other special tokens in the student's ({shown})")
    raise InputError(f"teacher and student tokenizers differ on {len(differ)} recorded token ids, first {shown}; "
                     "KD needs the same vocabulary (use --objective sft)", field="teacher_tokenizer")


def teacher_tokenizer_name(config, data: KdData) -> str:
    name = config.teacher_tokenizer or (data.records[0][0].teacher or {}).get("model")
    if not name:
        raise InputError("the records do not say which teacher wrote them; set --teacher-tokenizer", field="teacher_tokenizer")
    return name


def load_teacher_tokenizer(name: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as exc:  # hub/offline/missing-file errors come in many types
        raise InputError(f"cannot load the teacher's tokenizer '{name}' ({type(exc).__name__}); set --teacher-tokenizer",
                         field="teacher_tokenizer") from None


# ---------------------------------------------------------------------------- examples


def kd_example(tokenizer, eos_token: str, trace: Trace, lp: logprobs.TokenLogprobs):
    """(input_ids, labels, top_ids [L, K], top_logprobs [L, K]) of one trace; rows without a teacher
    distribution hold id -1."""
    messages = [m for m in (trace.messages or []) if m["role"] != "assistant"] or [{"role": "user", "content": trace.problem}]
    prompt = list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
    prefill = (trace.teacher or {}).get("think_prefill") or ""
    head = tokenizer.encode(prefill, add_special_tokens=False) if prefill and trace.completion.startswith(prefill) else []
    eos = tokenizer.convert_tokens_to_ids(eos_token)
    body, top_ids, top_lps = lp.ids.tolist(), lp.top_ids, lp.top_logprobs
    if body and body[-1] != eos and body[-1] in _special(tokenizer):  # the teacher's own stop token: the student closes with its own
        body, top_ids, top_lps = body[:-1], top_ids[:-1], top_lps[:-1]
    tail = [] if body and body[-1] == eos else [eos]
    ids = prompt + head + body + tail
    labels = [-100] * len(prompt) + head + body + tail
    k = lp.k
    none = lambda rows: (np.full((rows, k), -1, np.int32), np.full((rows, k), -np.inf, np.float16))  # noqa: E731
    before, after = none(len(prompt) + len(head)), none(len(tail))
    return (ids, labels, np.concatenate([before[0], top_ids, after[0]]), np.concatenate([before[1], top_lps, after[1]]))


def kd_examples(tokenizer, eos_token: str, records, max_length: int, stats) -> list[tuple]:
    examples = []
    for trace, lp in records:
        example = kd_example(tokenizer, eos_token, trace, lp)
        stats.lengths.append(len(example[0]))
        if len(example[0]) > max_length:
            stats.dropped_too_long += 1
            continue
        examples.append(example)
        stats.tokens += len(example[0])
        stats.label_tokens += sum(1 for label in example[1] if label != -100)
    stats.examples = len(examples)
    return examples


def prepare(config, base_config: dict, tokenizer, template, max_length: int, stats):
    """(tokenizer, train examples, eval examples, note): the records, the tokenizer check, the examples."""
    from students.dataset import split_eval
    from students.templates import prepare_tokenizer

    data = load_kd_records(config.sources()[0][0])  # one source: the config refuses a mixture for kd
    stats.rows, stats.rejected_skipped = data.rows, data.rejected_skipped
    name = teacher_tokenizer_name(config, data)
    teacher = load_teacher_tokenizer(name)
    note = check_tokenizers(teacher, tokenizer, recorded_ids(data), int(base_config.get("vocab_size") or len(tokenizer)))
    if note:
        tokenizer = prepare_tokenizer(teacher, template, config.preset.pad_token, where=name)
    if config.eval_data:
        train, held = data.records, load_kd_records(config.eval_data).records
    else:  # split by prompt, as SFT does
        prompts = {id(record): [{"role": "user", "content": record[0].problem}] for record in data.records}
        by_key = {id(prompts[id(record)]): record for record in data.records}
        kept, held_out = split_eval(list(prompts.values()), config.eval_fraction, config.seed)
        train, held = [by_key[id(c)] for c in kept], [by_key[id(c)] for c in held_out]
    train_examples = kd_examples(tokenizer, template.eos_token, train, max_length, stats)
    from students.dataset import LoadStats

    eval_examples = kd_examples(tokenizer, template.eos_token, held, max_length, LoadStats()) if held else []
    return tokenizer, train_examples, eval_examples, note
