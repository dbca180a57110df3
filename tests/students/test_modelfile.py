"""The Ollama Modelfile: its Go template is written from the same ChatFormat as the Jinja one, and
carries what Ollama needs to run an R1 student (Ollama itself cannot run here, so the markers
Ollama's own code looks for are checked)."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

from students.inference import CHAT_FORMATS, INFERENCE_TEMPLATES, jinja_template
from students.modelfile import PROMPT_ROOM, go_template, pick_gguf, render_modelfile

HISTORY = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "<think>\nold reasoning\n</think>\n\n4"},
    {"role": "user", "content": "And 3+3?"},
]


def _render(fmt_name: str, messages) -> str:
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()))
    return tokenizer.apply_chat_template(messages, chat_template=INFERENCE_TEMPLATES[fmt_name], add_generation_prompt=True, tokenize=False)


@pytest.mark.parametrize("name", sorted(CHAT_FORMATS))
def test_jinja_template_is_written_from_the_format(name):
    fmt = CHAT_FORMATS[name]
    assert INFERENCE_TEMPLATES[name] == jinja_template(fmt)
    text = _render(name, HISTORY)
    user_open, user_close = fmt.turn("user")
    assistant_open, assistant_close = fmt.turn("assistant")
    assert f"{user_open}And 3+3?{user_close}" in text and f"{assistant_open}4{assistant_close}" in text
    assert text.endswith(fmt.generation_prompt()) and "old reasoning" not in text


@pytest.mark.parametrize("name", sorted(CHAT_FORMATS))
def test_go_template_has_ollamas_thinking_markers(name):
    fmt = CHAT_FORMATS[name]
    template = go_template(fmt)
    assistant_open, assistant_close = fmt.turn("assistant")
    # Ollama finds the thinking tags as the text around {{ .Thinking }} inside the range over .Messages.
    assert template.startswith("{{ range $i, $_ := .Messages }}")
    assert "{{ if and $last .Thinking }}<think>\n{{ .Thinking }}\n</think>\n\n{{ end }}" in template
    # Earlier assistant turns: their content only (Ollama keeps the reasoning apart), closed as in the Jinja template.
    assert f'{{{{ if eq .Role "assistant" }}}}{assistant_open}' in template
    assert f"{{{{ .Content }}}}{{{{ if not $last }}}}{assistant_close}{{{{ end }}}}" in template
    # The answer opens with the reasoning tag, as the Jinja template's generation prompt.
    assert f'{{{{ if and $last (ne .Role "assistant") }}}}{fmt.generation_prompt()}{{{{ end }}}}' in template
    for role, (before, after) in fmt.turns.items():
        if role == "*":
            generic = f"{{{{ else }}}}{before}{{{{ .Content }}}}{after}".replace("{role}", "{{ .Role }}")
            assert generic in template
        elif role != "assistant":
            assert f'{{{{ else if eq .Role "{role}" }}}}{before}{{{{ .Content }}}}{after}' in template
    assert "bos_token" not in template and "<|begin_of_text|>" not in template  # Ollama adds BOS from the GGUF
    assert template.count("{{ if") + template.count("{{ range") == template.count("{{ end }}")


def test_modelfile_lines():
    text = render_modelfile(CHAT_FORMATS["chatml"], "m-Q4_K_M.gguf", ["<|im_end|>", "<|im_end|>", "<|endoftext|>"], 16384,
                            others=["m-Q8_0.gguf"])
    lines = text.splitlines()
    assert "FROM ./m-Q4_K_M.gguf" in lines and any("m-Q8_0.gguf" in line and line.startswith("#") for line in lines)
    assert [line for line in lines if line.startswith("PARAMETER stop")] == ['PARAMETER stop "<|im_end|>"', 'PARAMETER stop "<|endoftext|>"']
    assert "PARAMETER temperature 0.6" in lines and "PARAMETER top_p 0.95" in lines
    assert f"PARAMETER num_ctx {16384 + PROMPT_ROOM}" in lines
    assert 'TEMPLATE """{{ range' in text and text.count('"""') == 2
    assert pick_gguf({"f16": "a", "q8_0": "b"}) == "b" and pick_gguf({"q4_k_m": "c", "q8_0": "b"}) == "c"
