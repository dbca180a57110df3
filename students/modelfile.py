"""The Ollama `Modelfile` `distill publish --gguf` writes beside the GGUF files.

Ollama renders prompts with its own Go-template language, not the Jinja template the GGUF
carries, so a Modelfile without TEMPLATE runs an R1 student as a plain completion model, and one
with a generic template drops the `<think>\\n` that opens every answer. The template here is
written from the same `ChatFormat` as the tokenizer's Jinja template (`students/inference.py`):

- the answer opens with `<think>\\n` (Ollama sees that the prompt ends with the opening tag and
  parses the reasoning into the message's `thinking` field);
- `{{ .Thinking }}` appears between `<think>` and `</think>` inside the loop over `.Messages`,
  which is how Ollama recognises a thinking model (`thinking.InferTags`); earlier assistant turns
  are written with their `.Content` only, so their reasoning is dropped as in the Jinja template.
  Ollama keeps the reasoning apart from the content when it parsed it; a client that sends old
  turns with the reasoning inline gets it back in the prompt (Go templates cannot cut strings);
- BOS is not written: Ollama adds it from the GGUF's `tokenizer.ggml.add_bos_token`.
"""

from __future__ import annotations

from students.inference import RECOMMENDED_SAMPLING, THINK_OPEN, ChatFormat

# Room for the user's prompt on top of the longest sequence the student was trained on.
PROMPT_ROOM = 1024
# Ollama's default quantization; the others follow by size.
PREFERRED = ("q4_k_m", "q5_k_m", "q6_k", "q8_0", "bf16", "f16", "f32")


def go_template(fmt: ChatFormat) -> str:
    """The format's R1-distill inference template in Ollama's template language."""

    def text(part: str) -> str:
        return part.replace("{role}", "{{ .Role }}")

    before, after = fmt.turn("assistant")
    thinking = f"{{{{ if and $last .Thinking }}}}{THINK_OPEN}{{{{ .Thinking }}}}\n</think>\n\n{{{{ end }}}}"
    branches = [f'{{{{ if eq .Role "assistant" }}}}{before}{thinking}{{{{ .Content }}}}{{{{ if not $last }}}}{after}{{{{ end }}}}']
    for role, (before, after) in fmt.turns.items():
        if role not in ("assistant", "*"):
            branches.append(f'{{{{ else if eq .Role "{role}" }}}}{text(before)}{{{{ .Content }}}}{text(after)}')
    if "*" in fmt.turns:
        before, after = fmt.turns["*"]
        branches.append(f"{{{{ else }}}}{text(before)}{{{{ .Content }}}}{text(after)}")
    return (
        "{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}"
        + "".join(branches) + "{{ end }}"
        + f'{{{{ if and $last (ne .Role "assistant") }}}}{fmt.generation_prompt()}{{{{ end }}}}'
        + "{{ end }}"
    )


def pick_gguf(files: dict[str, str]) -> str:
    """The GGUF the Modelfile runs: Ollama's usual choice (q4_k_m) when there is one."""
    for kind in PREFERRED:
        if kind in files:
            return files[kind]
    return next(iter(files.values()))


def context_window(max_length: int | None) -> int:
    """num_ctx: the longest trained sequence plus room for the prompt (32k generation when unknown)."""
    return (max_length or 32768) + PROMPT_ROOM


def render_modelfile(fmt: ChatFormat, gguf: str, stops: list[str], max_length: int | None, others: list[str] = ()) -> str:
    """Modelfile text: FROM the GGUF, the template, stops, R1 sampling and a window for the reasoning."""
    if '"""' in go_template(fmt):
        raise ValueError("template contains a triple quote")
    lines = [
        "# Ollama: `ollama create NAME -f Modelfile`, then `ollama run NAME`.",
        *([f"# Other quantizations in this folder: {', '.join(others)} (change FROM to use one)."] if others else []),
        f"FROM ./{gguf}",
        "",
        "# R1-distill chat template: the answer opens with <think>, earlier turns' reasoning is dropped.",
        f'TEMPLATE """{go_template(fmt)}"""',
        "",
        *[f'PARAMETER stop "{stop}"' for stop in dict.fromkeys(stops)],
        f"PARAMETER temperature {RECOMMENDED_SAMPLING['temperature']}",
        f"PARAMETER top_p {RECOMMENDED_SAMPLING['top_p']}",
        f"# num_ctx: room for the longest reasoning the student was trained on ({max_length or 32768} tokens) plus a prompt",
        f"# of up to {PROMPT_ROOM}. A shorter window (Ollama's default is a few thousand tokens) cuts the start of the",
        "# conversation mid-thought: the model loses the question and loops.",
        f"PARAMETER num_ctx {context_window(max_length)}",
    ]
    return "\n".join(lines) + "\n"
