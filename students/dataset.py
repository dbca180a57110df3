"""Training examples: render with the training template, tokenise, mask, drop, pack.

- Each record becomes a conversation: its `messages`, or (problem, completion) when a record
  has none. R1 completions often lack the opening `<think>` (the server prefills it); it is
  put back so the student learns to open its reasoning itself. Public trace sets are read
  through their layout (distill.core.trace_layout); their completions are rewritten in R1 form.
  A `general` record without any reasoning block gets an empty one (R1's form for simple
  queries: `assistant_turn`).
- Token ids and the loss mask come from one `apply_chat_template` call (templates.py): the
  labels are the assistant turns including their closing eos; everything else is -100.
- Samples longer than max_length are dropped and counted, never truncated: a cut chain of
  thought loses its answer and its eos, and trains the model to ramble without stopping.
- Packing is best-fit decreasing into bins of max_length tokens. A micro-batch is flattened
  into one row with per-sample position ids restarting at 0 and no attention mask. From such
  position ids transformers builds the attention boundaries itself: flash-attention gets
  varlen cu_seqlens, sdpa/eager get a block-diagonal causal mask
  (masking_utils.find_packed_sequence_indices). So packed samples never see each other on
  GPU or CPU. Two conditions matter and are kept here and in train.py: no `attention_mask`
  in packed batches and no KV cache during training (either disables the detection).
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field
from typing import Any

from distill.core.data import iter_rows, validate_record
from distill.core.errors import InputError
from distill.core.ids import UniqueIds
from distill.core.r1_format import DELIMITER_PRESETS, compose, in_r1_form
from distill.core.records import Trace
from distill.core.trace_layout import PRESETS, TraceLayout, map_row

ROLES = ("system", "user", "assistant")


@dataclass
class LoadStats:
    rows: int = 0
    rejected_skipped: int = 0  # rows the filter rejected (rejected_by set), if any slipped in
    dropped_too_long: int = 0
    examples: int = 0
    tokens: int = 0
    label_tokens: int = 0
    lengths: list[int] = field(default_factory=list, repr=False)


# ---------------------------------------------------------------------------- records -> conversations


def conversations_of(row: dict[str, Any], where: str, layout: TraceLayout | None = None) -> list[list[dict[str, str]] | None]:
    """The SFT conversations of one input row (one per sample it holds); None for a sample the
    filter rejected. Completions in other delimiters are rewritten in R1 form."""
    layout = layout or TraceLayout()
    if PRESETS[layout.preset].own and "messages" in row and "completion" not in row:
        return [checked_conversation(row["messages"], where)]  # plain SFT rows ({"messages": [...]}) are accepted too
    out: list[list[dict[str, str]] | None] = []
    for values in map_row(row, layout, where):
        trace = validate_record(Trace, values, where)
        if trace.rejected_by:
            out.append(None)
            continue
        out.append(checked_conversation(messages_of(trace, layout.delimiters), where))
    return out


def conversation_of(row: dict[str, Any], where: str) -> list[dict[str, str]] | None:
    """The SFT conversation of one row of this project's layout (a kept record or plain SFT row)."""
    (conversation,) = conversations_of(row, where)
    return conversation


def messages_of(trace: Trace, delimiters: str = "r1") -> list[dict[str, str]]:
    """The trace's SFT conversation: the filter's `messages`, else (problem, completion in R1 form
    whatever its `delimiters`)."""
    return trace.messages or [
        {"role": "user", "content": trace.problem},
        {"role": "assistant", "content": assistant_turn(trace, delimiters)},
    ]


def assistant_turn(trace: Trace, delimiters: str = "r1") -> str:
    """The completion in R1 form, whatever its `delimiters`. A `general` record without a reasoning
    block (a non-reasoning source) gets an empty one, `<think>\n\n</think>\n\nanswer`: how the R1
    distills answer simple queries, and what the published student's template (which opens every
    answer with `<think>\n`) makes it continue with."""
    d = DELIMITER_PRESETS[delimiters]
    if trace.domain == "general" and d.think_open not in trace.completion and d.think_close not in trace.completion:
        return compose("", trace.completion)
    return in_r1_form(trace.completion, d)


def checked_conversation(messages: Any, where: str) -> list[dict[str, str]]:
    """`messages` when it is a conversation a student can learn from; InputError naming the turn otherwise."""
    if not isinstance(messages, list) or not messages:
        raise InputError("must be a non-empty list of {role, content}", where=where, field="messages")
    for index, message in enumerate(messages):
        name = f"messages.{index}"
        if not isinstance(message, dict) or message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            raise InputError(f"expected {{role: {'|'.join(ROLES)}, content: str}}, got {message!r:.80}", where=where, field=name)
    assistant = [m for m in messages if m["role"] == "assistant" and m["content"].strip()]
    if not assistant:
        raise InputError("no non-empty assistant turn to learn from", where=where, field="messages")
    if messages[0]["role"] == "assistant":
        raise InputError("the conversation starts with the assistant (no prompt)", where=where, field="messages.0")
    return messages


def load_conversations(source: str | os.PathLike, stats: LoadStats | None = None, layout: TraceLayout | None = None) -> list[list[dict[str, str]]]:
    """All usable conversations of `source` (in `layout`, this project's by default); InputError if there are none."""
    stats = stats if stats is not None else LoadStats()
    layout = layout or TraceLayout()
    own = PRESETS[layout.preset].own
    conversations = []
    ids = UniqueIds()  # one sample twice would be trained on twice
    for where, row in iter_rows(source):
        stats.rows += 1
        if own and isinstance(row.get("id"), str):  # public layouts' ids are derived, duplicates are theirs
            ids.see(row["id"], where)
        for conversation in conversations_of(row, where, layout):
            if conversation is None:
                stats.rejected_skipped += 1
                continue
            conversations.append(conversation)
    if not conversations:
        raise InputError(f"no usable rows ({stats.rows} read, {stats.rejected_skipped} marked rejected)", where=str(source))
    return conversations


# ---------------------------------------------------------------------------- tokenising


def tokenize(tokenizer, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one conversation; labels are -100 outside assistant turns."""
    encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids = list(encoded["input_ids"])
    mask = encoded["assistant_masks"]
    labels = [token if keep else -100 for token, keep in zip(ids, mask, strict=True)]
    # The first token is never a target; with packing this also keeps a sample's first token
    # from being the target of the previous sample's last position.
    labels[0] = -100
    return ids, labels


def tokenize_all(tokenizer, conversations, max_length: int, stats: LoadStats, progress=None) -> list[tuple[list[int], list[int]]]:
    examples = []
    for messages in conversations:
        ids, labels = tokenize(tokenizer, messages)
        stats.lengths.append(len(ids))
        if progress is not None:
            progress()
        if len(ids) > max_length:
            stats.dropped_too_long += 1
            continue
        examples.append((ids, labels))
        stats.tokens += len(ids)
        stats.label_tokens += sum(1 for label in labels if label != -100)
    stats.examples = len(examples)
    return examples


# ---------------------------------------------------------------------------- packing


def best_fit_packs(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices grouped into bins of at most `capacity` tokens, best-fit decreasing.

    Longest first, each into the open bin whose free space fits it most tightly. Deterministic:
    ties keep input order, so the same data always gives the same packs (needed by --resume).
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    free: list[tuple[int, int]] = []  # (free tokens, bin number), sorted
    bins: list[list[int]] = []
    for index in order:
        size = lengths[index]
        if size > capacity:
            raise ValueError(f"sample {index} has {size} tokens, more than the bin capacity {capacity}")
        slot = bisect.bisect_left(free, (size, -1))
        if slot < len(free):
            room, number = free.pop(slot)
        else:
            room, number = capacity, len(bins)
            bins.append([])
        bins[number].append(index)
        if room - size > 0:
            bisect.insort(free, (room - size, number))
    return bins


TEACHER_KEYS = ("teacher_ids", "teacher_logprobs")  # KD examples (students/kd.py): per-token top-K arrays


def _with_teacher(item: dict[str, Any], examples: list[tuple]) -> dict[str, Any]:
    """An example is (ids, labels) or, for KD, (ids, labels, top_ids, top_logprobs)."""
    if len(examples[0]) > 2:
        import numpy as np

        for position, key in enumerate(TEACHER_KEYS, start=2):
            item[key] = np.concatenate([example[position] for example in examples])
    return item


class PackedDataset:
    """Each item is one bin: concatenated ids and labels with per-sample position ids."""

    def __init__(self, examples: list[tuple], capacity: int, packs: list[list[int]] | None = None):
        self.examples = examples  # `packs`: given when the order matters (students/order.py)
        self.packs = packs if packs is not None else best_fit_packs([len(example[0]) for example in examples], capacity)

    def __len__(self) -> int:
        return len(self.packs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        ids, labels, positions = [], [], []
        members = [self.examples[member] for member in self.packs[index]]
        for sample_ids, sample_labels, *_ in members:
            ids += sample_ids
            labels += sample_labels
            positions += range(len(sample_ids))
        return _with_teacher({"input_ids": ids, "labels": labels, "position_ids": positions}, members)


class PaddedDataset:
    """One sample per item (the non-packed baseline)."""

    def __init__(self, examples: list[tuple[list[int], list[int]]]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        ids, labels, *_ = self.examples[index]
        return _with_teacher({"input_ids": ids, "labels": labels}, [self.examples[index]])


def collate_packed(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Flatten a micro-batch of packs into one row: no padding at all, no attention mask."""
    import torch

    row = {key: [value for item in items for value in item[key]] for key in ("input_ids", "labels", "position_ids")}
    batch = {key: torch.tensor([values], dtype=torch.long) for key, values in row.items()}
    if TEACHER_KEYS[0] in items[0]:
        import numpy as np

        batch.update({key: torch.from_numpy(np.concatenate([item[key] for item in items]))[None] for key in TEACHER_KEYS})
    return batch


class PaddedCollator:
    """Right-pads a micro-batch to its longest sample, with an attention mask."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(item["input_ids"]) for item in items)
        ids = [item["input_ids"] + [self.pad_token_id] * (width - len(item["input_ids"])) for item in items]
        labels = [item["labels"] + [-100] * (width - len(item["labels"])) for item in items]
        mask = [[1] * len(item["input_ids"]) + [0] * (width - len(item["input_ids"])) for item in items]
        batch = {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}
        if TEACHER_KEYS[0] in items[0]:
            import numpy as np

            for key, fill in zip(TEACHER_KEYS, (-1, -np.inf), strict=True):
                rows = [np.pad(item[key], ((0, width - len(item[key])), (0, 0)), constant_values=fill) for item in items]
                batch[key] = torch.from_numpy(np.stack(rows))
        return batch


def split_eval(conversations: list, fraction: float, seed: int) -> tuple[list, list]:
    """Hold out a share of conversations for the eval loss (grouped by prompt so a problem's
    samples never sit on both sides)."""
    import random

    if fraction <= 0 or len(conversations) < 2:
        return conversations, []
    prompts = sorted({prompt_key(c) for c in conversations})
    rng = random.Random(seed)
    rng.shuffle(prompts)
    held = set(prompts[: max(1, round(len(prompts) * fraction))]) if len(prompts) > 1 else set()
    train = [c for c in conversations if prompt_key(c) not in held]
    held_out = [c for c in conversations if prompt_key(c) in held]
    return train, held_out


def prompt_key(messages: list[dict[str, str]]) -> str:
    return "\x00".join(m["content"] for m in messages if m["role"] != "assistant")
