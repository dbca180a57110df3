"""Training chat templates, one per family, with the assistant span marked for the loss.

DeepSeek's inference template (the one shipped with the R1 distills, see distill/tiny.py)
drops everything up to `</think>` from earlier assistant turns. Rendering training data with
it deletes the chain of thought, and the student learns to answer without reasoning. These
templates keep the assistant content verbatim and wrap it, together with the turn's closing
token, in `{% generation %}...{% endgeneration %}`: `apply_chat_template(...,
return_assistant_tokens_mask=True)` turns that into the loss mask, so the student is trained
on its own turns only, including the token that ends them (without it the model never
learns to stop).

The closing token of the assistant turn becomes the tokenizer's eos (so generation stops
there); the pad token is set to a different token (pad == eos makes collators mask the eos
out of the labels: the classic "never stops" bug). BOS comes from the template only, once:
the token ids come from `apply_chat_template`, which tokenises without adding special tokens,
so a Llama-style tokenizer's automatic BOS is not added a second time.

Jinja note: transformers renders with trim_blocks, which eats a newline right after a block
tag; newlines after tags are therefore written as {{ '\\n' }}.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    jinja: str
    eos_token: str  # closes an assistant turn; the student's stop token
    bos_token: str | None  # emitted once at the start by the template, if the family uses one
    tokens: tuple[str, ...]  # special tokens the tokenizer must already have


CHATML = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "<|im_start|>assistant\n{% generation %}{{ message['content'] }}<|im_end|>{% endgeneration %}{{ '\\n' }}"
    "{% else %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>{{ '\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

LLAMA3 = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] }}<|eot_id|>{% endgeneration %}"
    "{% else %}"
    "{{ message['content'] }}<|eot_id|>"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

# DeepSeek's own format with the reasoning kept (their distills' vocabulary has these tokens;
# the plain Qwen2.5 / Llama-3 bases do not, so this one needs a tokenizer that carries them).
R1 = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}<｜User｜>{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}"
    "<｜Assistant｜>{% generation %}{{ message['content'] }}<｜end▁of▁sentence｜>{% endgeneration %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<｜Assistant｜>{% endif %}"
)

TEMPLATES: dict[str, ChatTemplate] = {
    "chatml": ChatTemplate("chatml", CHATML, "<|im_end|>", None, ("<|im_start|>", "<|im_end|>")),
    "llama3": ChatTemplate(
        "llama3", LLAMA3, "<|eot_id|>", "<|begin_of_text|>", ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
    ),
    "r1": ChatTemplate("r1", R1, "<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>", ("<｜User｜>", "<｜Assistant｜>")),
}


def known_template(name: str | None) -> str | None:
    """A validator's check: None or the name of a template above."""
    if name is not None and name not in TEMPLATES:
        raise ValueError(f"unknown template '{name}' (known: {', '.join(TEMPLATES)})")
    return name


def prepare_tokenizer(tokenizer, template: ChatTemplate, pad_token: str, where: str = "tokenizer"):
    """Give `tokenizer` the training template and its eos/bos/pad; returns it.

    Raises InputError if the tokenizer lacks a token the template needs, or if pad would equal eos.
    """
    from distill.core.errors import InputError

    needed = [*template.tokens, template.eos_token, pad_token] + ([template.bos_token] if template.bos_token else [])
    vocab = tokenizer.get_vocab()
    missing = [token for token in needed if token not in vocab]
    if missing:
        raise InputError(
            f"tokenizer has no {', '.join(missing)} needed by the '{template.name}' template "
            "(pick another --template or a base of that family)",
            where=where,
        )
    if pad_token == template.eos_token:
        raise InputError("pad token equals eos: the eos would be masked out and the model would never stop", where=where)
    tokenizer.chat_template = template.jinja
    tokenizer.eos_token = template.eos_token
    tokenizer.pad_token = pad_token
    if template.bos_token:
        tokenizer.bos_token = template.bos_token
    return tokenizer


def stop_token_ids(tokenizer, template: ChatTemplate, base_eos_id: int | list[int] | None) -> list[int]:
    """Ids generation should stop at: the turn end first, then the base's own eos."""
    ids = [tokenizer.convert_tokens_to_ids(template.eos_token)]
    for extra in base_eos_id if isinstance(base_eos_id, list) else [base_eos_id]:
        if extra is not None and extra not in ids:
            ids.append(extra)
    return ids
