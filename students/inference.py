"""What a published student needs for inference: the R1-distill-style chat template in the
student's own turn format, and the generation config with the recommended sampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distill.core.errors import StageError

RECOMMENDED_SAMPLING = {"do_sample": True, "temperature": 0.6, "top_p": 0.95}


THINK_OPEN = "<think>\n"  # every answer starts by reasoning, as DeepSeek recommends for the R1 distills


@dataclass(frozen=True)
class ChatFormat:
    """The text around each turn of one chat format.

    Both inference templates are written from it, so they cannot drift apart: the Jinja one (the
    tokenizer's, which the GGUF converter embeds and llama.cpp, vLLM and SGLang render) and the Go
    one in the Ollama Modelfile (`students/modelfile.py`).
    """

    name: str
    turns: dict[str, tuple[str, str]]  # role -> (before, after) its content; "*": any other role, "{role}" its name
    end_of_turn: str  # closes an assistant turn: the student's stop token
    bos: str = "none"  # "always", "if set" (when the tokenizer has one) or "none"

    def turn(self, role: str) -> tuple[str, str]:
        before, after = self.turns.get(role) or self.turns["*"]
        return before.replace("{role}", role), after

    def generation_prompt(self) -> str:
        """What opens the model's answer: the assistant turn's header and the reasoning tag."""
        return self.turn("assistant")[0] + THINK_OPEN


CHAT_FORMATS = {
    fmt.name: fmt
    for fmt in (
        ChatFormat("chatml", {"*": ("<|im_start|>{role}\n", "<|im_end|>\n")}, "<|im_end|>"),
        ChatFormat("llama3", {"*": ("<|start_header_id|>{role}<|end_header_id|>\n\n", "<|eot_id|>")}, "<|eot_id|>", bos="always"),
        ChatFormat(
            "r1", {"system": ("", ""), "user": ("<｜User｜>", ""), "assistant": ("<｜Assistant｜>", "<｜end▁of▁sentence｜>")},
            "<｜end▁of▁sentence｜>", bos="if set",
        ),
    )
}

# Earlier assistant turns lose their reasoning (the R1 distills never see old reasoning).
_DROP_REASONING = "{% set content = message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1].lstrip() %}{% endif %}"
_BOS = {"always": "{{ bos_token }}", "if set": "{% if bos_token %}{{ bos_token }}{% endif %}", "none": ""}


def jinja_template(fmt: ChatFormat) -> str:
    """The format's R1-distill inference template in Jinja (Hugging Face chat templates)."""
    before, after = fmt.turn("assistant")
    branches = [f"{{% if message['role'] == 'assistant' %}}{_DROP_REASONING}{before}{{{{ content }}}}{after}"]
    for role, (before, after) in fmt.turns.items():
        if role not in ("assistant", "*"):
            branches.append(f"{{% elif message['role'] == '{role}' %}}{before}{{{{ message['content'] }}}}{after}")
    if "*" in fmt.turns:
        before, after = (part.replace("{role}", "{{ message['role'] }}") for part in fmt.turns["*"])
        branches.append(f"{{% else %}}{before}{{{{ message['content'] }}}}{after}")
    return (
        _BOS[fmt.bos] + "{% for message in messages %}" + "".join(branches) + "{% endif %}{% endfor %}"
        + "{% if add_generation_prompt %}" + fmt.generation_prompt() + "{% endif %}"
    )


INFERENCE_TEMPLATES = {name: jinja_template(fmt) for name, fmt in CHAT_FORMATS.items()}
END_OF_TURN = {name: fmt.end_of_turn for name, fmt in CHAT_FORMATS.items()}


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
