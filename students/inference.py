"""What a published student needs for inference: the R1-distill-style chat template in the
student's own turn format, and the generation config with the recommended sampling.
"""

from __future__ import annotations

from pathlib import Path

from distill.core.errors import StageError

RECOMMENDED_SAMPLING = {"do_sample": True, "temperature": 0.6, "top_p": 0.95}


# Inference templates in each format the training template may use. All three drop the
# reasoning of earlier assistant turns (the R1 distills never see old reasoning) and open
# the new assistant turn with "<think>\n" so the model always starts by reasoning.
_DROP_REASONING = "{% set content = message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1].lstrip() %}{% endif %}"
INFERENCE_TEMPLATES = {
    "chatml": (
        "{% for message in messages %}"
        "{% if message['role'] == 'assistant' %}" + _DROP_REASONING + "<|im_start|>assistant\n{{ content }}<|im_end|>\n"
        "{% else %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
    ),
    "llama3": (
        "{{ bos_token }}{% for message in messages %}"
        "{% if message['role'] == 'assistant' %}" + _DROP_REASONING + "<|start_header_id|>assistant<|end_header_id|>\n\n{{ content }}<|eot_id|>"
        "{% else %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n{{ message['content'] }}<|eot_id|>{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n<think>\n{% endif %}"
    ),
    "r1": (
        "{% if bos_token %}{{ bos_token }}{% endif %}{% for message in messages %}"
        "{% if message['role'] == 'system' %}{{ message['content'] }}"
        "{% elif message['role'] == 'user' %}<｜User｜>{{ message['content'] }}"
        "{% elif message['role'] == 'assistant' %}" + _DROP_REASONING + "<｜Assistant｜>{{ content }}<｜end▁of▁sentence｜>{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}<｜Assistant｜><think>\n{% endif %}"
    ),
}
END_OF_TURN = {"chatml": "<|im_end|>", "llama3": "<|eot_id|>", "r1": "<｜end▁of▁sentence｜>"}


def template_format(tokenizer) -> str:
    """Which turn format the student was trained in: read from the training template, else the vocabulary."""
    text = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
    vocab = tokenizer.get_vocab()
    for name, marker in (("r1", "<｜Assistant｜>"), ("chatml", "<|im_start|>"), ("llama3", "<|start_header_id|>")):
        if marker in text:
            return name
    for name, marker in (("chatml", "<|im_start|>"), ("llama3", "<|start_header_id|>"), ("r1", "<｜Assistant｜>")):
        if marker in vocab:
            return name
    raise StageError("cannot tell the student's chat format (no ChatML, Llama-3 or R1 markers in its tokenizer)")


def generation_config(model_dir: Path, tokenizer, fmt: str, extra_stops: list[int] | None = None):
    """Recommended R1 sampling, stopping at end of text and at the end-of-turn marker."""
    from transformers import GenerationConfig

    try:
        config = GenerationConfig.from_pretrained(model_dir)
    except OSError:
        config = GenerationConfig()
    stops = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    turn_end = tokenizer.get_vocab().get(END_OF_TURN[fmt])
    stops = [*stops, tokenizer.eos_token_id, turn_end, *(extra_stops or [])]
    config.eos_token_id = list(dict.fromkeys(s for s in stops if s is not None))  # ordered, no repeats
    if config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else config.eos_token_id[0]
    config.update(**RECOMMENDED_SAMPLING)
    return config
