"""Chats as public datasets store them, read into a prompt and an answer.

Two spellings are common: OpenAI's `[{role, content}]` (DeepSeek's API adds `reasoning_content`
to the assistant turn) and ShareGPT's `[{from, value}]` with `human`/`gpt` (OpenThoughts and
Bespoke-Stratos use `user`/`assistant`). Both are read here, for prompts (the last user turn)
and for traces (the last assistant turn, and the user turn before it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from distill.core.errors import InputError

ROLES = {"user": "user", "human": "user", "system": "system", "developer": "system",
         "assistant": "assistant", "gpt": "assistant", "model": "assistant"}
# A turn with only these keys says nothing the record does not hold.
PLAIN_KEYS = frozenset({"role", "from", "content", "value", "reasoning_content"})


@dataclass(frozen=True)
class Chat:
    prompt: str  # the last user turn before the answer (or the last user turn, when there is none)
    answer: str | None  # the last assistant turn's text
    reasoning: str | None  # that turn's `reasoning_content`, when the reasoning is stored apart
    plain: bool  # exactly [user, assistant] with plain keys: prompt and answer hold all of it


def _text(content: Any) -> str | None:
    """A turn's text: a string, or OpenAI content parts ([{type: text, text}])."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return "".join(p.get("text") or "" for p in content if p.get("type", "text") == "text")
    return None


def read_chat(turns: Any, where: str, column: str, need_answer: bool = True) -> Chat:
    """The prompt and answer of a chat; a malformed chat is an InputError naming the turn."""
    if not isinstance(turns, list) or not turns:
        raise InputError("expected a non-empty list of {role, content} or {from, value} turns", where=where, field=column)
    roles: list[str | None] = []
    texts: list[str | None] = []
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise InputError(f"expected a turn {{role, content}} or {{from, value}}, got {turn!r:.60}", where=where, field=f"{column}.{index}")
        roles.append(ROLES.get(str(turn.get("role", turn.get("from", ""))).lower()))  # tool turns and the like: None
        texts.append(_text(turn.get("content", turn.get("value"))))
    answer_at = max((i for i, role in enumerate(roles) if role == "assistant"), default=None)
    if answer_at is None and need_answer:
        raise InputError("no assistant turn", where=where, field=column)
    end = len(turns) if answer_at is None else answer_at
    prompt_at = max((i for i in range(end) if roles[i] == "user"), default=None)
    if prompt_at is None or not (texts[prompt_at] or "").strip():
        raise InputError("no user turn with text" + (" before the assistant's" if answer_at is not None else ""), where=where, field=column)
    answer = reasoning = None
    if answer_at is not None:
        turn = turns[answer_at]
        answer = texts[answer_at] or ""
        reasoning = turn.get("reasoning_content") if isinstance(turn.get("reasoning_content"), str) else None
    plain = roles == ["user", "assistant"] and all(
        set(t) <= PLAIN_KEYS and isinstance(t.get("content", t.get("value")), str) and isinstance(t.get("reasoning_content", ""), str | None)
        for t in turns
    )
    return Chat(prompt=texts[prompt_at] or "", answer=answer, reasoning=reasoning or None, plain=plain)
