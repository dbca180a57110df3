"""Prompts in, completions out: the user turn, the rendered prompt with its "<think>\\n" prefill,
and the completion restored to R1 form (`<think>\\n...\\n</think>\\n\\nanswer`) whatever the
backend returned.
"""

from __future__ import annotations

from typing import Any

from distill.core.r1_format import compose, compose_unfinished, restore_prefill
from distill.core.records import Problem
from teacher.config import GenerateConfig


def user_turn(problem: Problem, config: GenerateConfig) -> str:
    """The user message: the template around the problem, plus the math instruction for math, and
    for general prompts the chain-of-thought instruction when `general_cot` asks for one."""
    text = config.prompt_template.replace("{problem}", problem.problem)
    instruction = (config.math_instruction or "").strip()
    if problem.domain == "math" and instruction and instruction not in text:
        text = f"{text.rstrip()}\n{instruction}"
    cot = config.general_cot_instruction.strip()
    if problem.domain == "general" and config.general_cot and cot and cot not in text:
        text = f"{text.rstrip()}\n{cot}"
    return text


def messages_for(problem: Problem, config: GenerateConfig) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": config.system_prompt}] if config.system_prompt else []
    return messages + [{"role": "user", "content": user_turn(problem, config)}]


def render(problem: Problem, config: GenerateConfig, tokenizer: Any) -> str:
    """The full prompt text, ending with the think prefill.

    R1-distill templates already open the response with "<think>\\n"; others get it appended
    here, so the model always continues inside its reasoning (DeepSeek's advice: without it
    R1 sometimes skips thinking).
    """
    messages = messages_for(problem, config)
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    else:  # a model without a chat template gets the bare user turn
        text = "\n\n".join(message["content"] for message in messages)
    prefill = config.think_prefill
    if prefill and not text.endswith(prefill) and not text.rstrip().endswith(prefill.strip()):
        text += prefill
    return text


def stitch(message: dict[str, Any], prefill: str) -> str:
    """One R1-form completion from an OpenAI-style message or completion choice.

    Servers with a reasoning parser (vLLM's `reasoning`, DeepSeek's `reasoning_content`)
    return the thinking apart from the answer; it goes back between the think tags. Servers
    without one return the raw text, which lacks the opening tag when the template prefilled it.
    """
    content = message.get("content") or message.get("text") or ""
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if reasoning and not content.strip():
        # No answer after the reasoning (cut off at max_tokens, or the model never closed its
        # thinking): the tag stays open, as in the raw output, so filters see it unfinished.
        return compose_unfinished(reasoning)
    if reasoning:
        return compose(reasoning, content)
    return restore_prefill(content, prefill)
