"""Taking completions apart: reasoning vs final answer, and the final boxed answer.

Shared by the data layer (answers from worked solutions), the filter and the evaluator, so
that "the answer" means the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field


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


def _braced(text: str, index: int) -> str | None:
    while index < len(text) and text[index] == " ":
        index += 1
    if index >= len(text):
        return None
    if text[index] != "{":  # "\boxed 5" style
        end = index
        while end < len(text) and not text[end].isspace() and text[end] not in "$.,":
            end += 1
        return text[index:end] or None
    depth = 0
    for position in range(index, len(text)):
        char = text[position]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[index + 1:position]
    return None
