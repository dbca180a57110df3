"""The R1 text form, in one place: `<think>\nreasoning\n</think>\n\nanswer` taken apart and put together.

Parsing (split at the reasoning delimiters, the last `\\boxed{}`) is shared by the data layer
(answers from worked solutions), the filter and the evaluator, so that "the answer" means the
same thing everywhere; composing (`compose`, `with_think_open`, `restore_prefill`) is shared by
the backends, the filter's SFT messages and the training data, so that every stage writes the
same form.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
# The R1 paper's / DeepSeek's instruction for math prompts (generate and eval append it).
MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


class Delimiters(BaseModel):
    """Where the reasoning and the final answer sit in a completion."""

    think_open: str = Field(default="<think>", description="Opens the reasoning (may be absent: R1 prefills it).")
    think_close: str = Field(default="</think>", description="Closes the reasoning; exactly one is required.")
    answer_open: str | None = Field(default=None, description="Opens the final answer, if the style marks it.")
    answer_close: str | None = Field(default=None, description="Closes the final answer, if the style marks it.")


DELIMITER_PRESETS: dict[str, Delimiters] = {
    "r1": Delimiters(),
    "sky-t1": Delimiters(
        think_open="<|begin_of_thought|>",
        think_close="<|end_of_thought|>",
        answer_open="<|begin_of_solution|>",
        answer_close="<|end_of_solution|>",
    ),
}


@dataclass(frozen=True)
class Parts:
    """A completion split at its reasoning delimiters."""

    reasoning: str
    answer: str
    closes: int  # how many closing reasoning tags the completion has (1 is well formed)


def split_completion(completion: str, delimiters: Delimiters | None = None) -> Parts:
    """Split into reasoning and final answer. Without a closing tag, everything is reasoning."""
    d = delimiters or DELIMITER_PRESETS["r1"]
    closes = completion.count(d.think_close)
    if closes == 0:
        reasoning, answer = completion, ""
    else:
        reasoning, _, answer = completion.rpartition(d.think_close)
    start = reasoning.find(d.think_open)
    if start != -1:
        reasoning = reasoning[start + len(d.think_open):]
    if d.answer_open and d.answer_open in answer:
        answer = answer.split(d.answer_open, 1)[1]
    if d.answer_close and d.answer_close in answer:
        answer = answer.rsplit(d.answer_close, 1)[0]
    return Parts(reasoning=reasoning.strip(), answer=answer.strip(), closes=closes)


def compose(reasoning: str, answer: str, delimiters: Delimiters | None = None) -> str:
    """The R1 form of a finished sample: reasoning between the think tags, a blank line, the answer.

    With other `delimiters`, the same sample in their form (a dataset that stores reasoning and
    answer apart, read with the delimiters the user chose, must split back into the same parts)."""
    d = delimiters or DELIMITER_PRESETS["r1"]
    answer = answer.lstrip()
    if d.answer_open:
        answer = f"{d.answer_open}\n{answer.strip()}\n{d.answer_close or ''}".rstrip()
    return f"{d.think_open}\n{reasoning.strip()}\n{d.think_close}\n\n{answer}"


def in_r1_form(completion: str, delimiters: Delimiters | None = None) -> str:
    """A completion as the student should learn it: R1 form whatever the input's delimiters
    (one closed reasoning block is rewritten; anything else is left as it is)."""
    d = delimiters or DELIMITER_PRESETS["r1"]
    if d == DELIMITER_PRESETS["r1"]:
        return with_think_open(completion)
    parts = split_completion(completion, d)
    return compose(parts.reasoning, parts.answer) if parts.closes == 1 else completion


def compose_unfinished(reasoning: str) -> str:
    """A sample that never closed its reasoning (cut off, or no answer): the tag stays open, so
    the format rule sees it unfinished, as in the raw output."""
    return f"{THINK_OPEN}\n{reasoning.lstrip()}"


def restore_prefill(text: str, prefill: str) -> str:
    """A completion that continued after the prompt's prefill, with the prefill put back in front."""
    if not prefill or text.lstrip().startswith(prefill.strip()):
        return text
    return prefill + text


def with_think_open(completion: str) -> str:
    """R1 completions often lack the opening tag (the template prefilled it): put it back, so a
    student trained on them learns to open its reasoning itself."""
    if THINK_CLOSE in completion and THINK_OPEN not in completion:
        return f"{THINK_OPEN}\n" + completion.lstrip("\n")
    return completion


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}) with balanced braces, or None."""
    for command in ("\\boxed", "\\fbox"):
        start = text.rfind(command)
        while start != -1:
            content = _braced(text, start + len(command))
            if content is not None:
                return content.strip()
            start = text.rfind(command, 0, start)
    return None


def boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """Every \\boxed{...} (or \\fbox{...}) of `text` in order, as (start, end, stripped content);
    a box inside another is part of the outer one's content."""
    spans: list[tuple[int, int, str]] = []
    position = 0
    while True:
        starts = [found for found in (text.find(c, position) for c in ("\\boxed", "\\fbox")) if found != -1]
        if not starts:
            return spans
        start = min(starts)
        command = "\\boxed" if text.startswith("\\boxed", start) else "\\fbox"
        braced = _braced_span(text, start + len(command))
        if braced is None:
            position = start + len(command)
            continue
        content, end = braced
        if content.strip():
            spans.append((start, end, content.strip()))
        position = end


def _braced(text: str, index: int) -> str | None:
    span = _braced_span(text, index)
    return span[0] if span else None


def _braced_span(text: str, index: int) -> tuple[str, int] | None:
    """The braced argument starting at `index` (after spaces) and the position after it."""
    while index < len(text) and text[index] == " ":
        index += 1
    if index >= len(text):
        return None
    if text[index] != "{":  # "\\boxed 5" style
        end = index
        while end < len(text) and not text[end].isspace() and text[end] not in "$.,":
            end += 1
        return (text[index:end], end) if end > index else None
    depth = 0
    for position in range(index, len(text)):
        char = text[position]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[index + 1:position], position + 1
    return None
