"""From a problem to the prompt the model is asked: the user turn (template, math instruction,
chain-of-thought instruction), the system message and the "<think>\\n" prefill. Generate and eval
ask their problems this way; the sampling layer (teacher.sampler) takes the resulting jobs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from distill.core.r1_format import MATH_INSTRUCTION
from distill.core.records import Problem
from teacher.sampler import Job, stitch
from teacher.sampler import render as render_job

__all__ = ["GENERAL_COT_INSTRUCTION", "PromptSettings", "job_for", "messages_for", "render", "stitch", "user_turn"]

# A non-reasoning model (R1 used DeepSeek-V3) writes a chain of thought only when asked, in the
# R1 form the filter and the students expect.
GENERAL_COT_INSTRUCTION = ("Before answering, think the request through step by step inside <think> and </think> tags; "
                           "then write your answer after </think>.")


class PromptSettings(BaseModel):
    """How a problem becomes a prompt (R1's advice: no system prompt, the instruction in the user turn)."""

    system_prompt: str | None = Field(default=None, description="System message; R1 recommends none (instructions go in the user turn).")
    prompt_template: str = Field(default="{problem}", description="User turn; '{problem}' is replaced by the prompt text.")
    math_instruction: str | None = Field(
        default=MATH_INSTRUCTION, description="Appended (on a new line) to math prompts; empty or null to leave them as they are."
    )
    general_cot: bool = Field(
        default=False, description="Ask for a chain of thought before the answer on general (non-reasoning) prompts too, as R1 "
                                   "prompted DeepSeek-V3 (default: general prompts are asked as they are, answered without one).")
    general_cot_instruction: str = Field(
        default=GENERAL_COT_INSTRUCTION, description="With general_cot: appended (on a new line) to general prompts.")
    think_prefill: str = Field(
        default="<think>\n", description="Opens the response (unless the chat template already does); restored in every completion."
    )

    @field_validator("prompt_template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        if "{problem}" not in value:
            raise ValueError("prompt_template must contain '{problem}'")
        return value


def user_turn(problem: Problem, config: PromptSettings) -> str:
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


def messages_for(problem: Problem, config: PromptSettings) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": config.system_prompt}] if config.system_prompt else []
    return messages + [{"role": "user", "content": user_turn(problem, config)}]


def job_for(problem: Problem, indices: list[int], config: PromptSettings) -> Job:
    """The sampling layer's job for `indices` of this problem."""
    return Job(problem.problem_id, messages_for(problem, config), indices, prefill=config.think_prefill, problem=problem)


def render(problem: Problem, config: PromptSettings, tokenizer: Any) -> str:
    """The full prompt text of a problem, ending with the think prefill (see teacher.sampler.render)."""
    return render_job(job_for(problem, [], config), tokenizer)
