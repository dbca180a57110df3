"""The `judge` rule: a model decides what the rules cannot (R1's generative reward model, which
fed "the ground truth and the model's prediction into DeepSeek-V3 for judgement").

The rules decide first. Records they cannot decide (no reference or tests, a prose reference, no
final answer the checker can read: `distill.core.verify.undecidable`) go to the judge when one
is configured (`policy: undecided`, the default with a model); `policy: all` also has the judge
confirm what the rules passed. The judge sees the problem, the reference and the final answer
only, never the reasoning, and must end its reply with `VERDICT: CORRECT` or `VERDICT:
INCORRECT`; anything else is undecided, counted apart and rejected unless `keep_undecided`.

This module is the worker side (options, prompt, verdict parsing, the verdict of a record); the
asking, caching and audit run in the parent: `distill.filters.judge_requests`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from distill.core.r1_format import Parts
from distill.core.records import Trace, Verdict
from distill.filters.registry import RuleOptions, rule
from teacher.sampling import Layout, NestsSampling, with_defaults

PROMPT = """You are grading an answer to a problem against a reference answer.

Problem:
{problem}

Reference answer:
{reference}

Answer to grade:
{answer}

Is the answer to grade correct, i.e. does it agree with the reference answer (or, when there is no reference, is it \
a correct and complete answer to the problem)? Ignore differences of form (wording, notation, units spelled out).
End your reply with one line, exactly "VERDICT: CORRECT" or "VERDICT: INCORRECT"."""
NO_REFERENCE = "(none given: judge the answer on its own)"
# The last non-empty line of the reply (after any reasoning): "VERDICT: CORRECT", optionally in bold, with a full stop.
_VERDICT = re.compile(r"^\W*verdict\W*:\W*(correct|incorrect)\W*$", re.IGNORECASE)


def _cache_default() -> str:
    import os

    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return str(root / "distill" / "judge-verdicts.jsonl")


JudgeSampling = with_defaults(
    "JudgeSampling",
    {"model": "The judge: a served model's name (openai backend) or a model path (vllm).",
     "backend": "Backend the judge is asked through (a module of teacher/backends: openai, vllm, llamacpp).",
     "base_url": "Endpoint root of the judge (openai backend), e.g. http://127.0.0.1:8000/v1.",
     "api_key_env": "Environment variable holding the judge's API key (never printed or written).",
     "temperature": "Judge sampling temperature.", "max_tokens": "Most tokens of one judge reply (a reasoning judge needs thousands).",
     "concurrency": "Judge requests in flight (openai backend).", "n": "Replies per prompt (the verdict is the first's)."},
    model=None, backend="openai", n=1, temperature=0.0, max_tokens=4096, concurrency=16,
)


class JudgeOptions(NestsSampling, RuleOptions):
    # The judge's recipe keys from before the sampling section (judge.model, judge.settings: {...}) still load.
    sampling_layout: ClassVar[Layout] = Layout(keys=("model", "backend", "base_url", "api_key_env", "temperature", "max_tokens", "concurrency"),
                                               merged="settings")

    # The flags the judge had; its other sampling settings through --judge-settings or the recipe's judge.sampling.
    sampling: JudgeSampling = Field(default_factory=JudgeSampling, description="How the judge is sampled (the sampling layer).",
                                    json_schema_extra={"flatten": True, "only": list(sampling_layout.keys)})
    policy: Literal["off", "undecided", "all"] | None = Field(
        default=None, json_schema_extra={"flags": ["--judge"]},
        description="off; undecided: records the rules cannot decide; all: also confirm what the rules passed "
                    "(default: undecided with a judge model, off without).")
    keep_undecided: bool = Field(default=False, json_schema_extra={"flags": ["--keep-undecided"]},
                                 description="Keep records the judge left undecided (unparseable verdict) instead of rejecting them.")
    audit: int = Field(default=0, ge=0, description="Also judge this many rule-decided records (a fixed sample) and report rule/judge "
                                                    "agreement; their verdicts stay the rules'.")
    cache: str = Field(default_factory=_cache_default, description="Verdict cache (JSONL, appended): a verdict is asked once per judge "
                                                                   "model and prompt, so re-runs cost nothing.")
    price_in: float | None = Field(default=None, ge=0, description="Money per million prompt tokens of the judge (the report's judge cost).")
    price_out: float | None = Field(default=None, ge=0, description="Money per million completion tokens of the judge (the report's judge cost).")
    prompt: str = Field(default=PROMPT, description="The judge prompt: {problem}, {reference} and {answer} are filled in.")
    settings: dict[str, Any] = Field(default_factory=dict, exclude=True, description="Further sampling settings for the judge's backend "
                                     "(max_retries, request_timeout, kv_cache_memory_bytes, enforce_eager...), merged into its sampling section.")

    @field_validator("prompt")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        missing = [name for name in ("{problem}", "{reference}", "{answer}") if name not in value]
        if missing:
            raise ValueError(f"the judge prompt must contain {', '.join(missing)}")
        return value

    @property
    def model(self) -> str | None:
        return self.sampling.model

    def resolved_policy(self) -> str:
        return self.policy or ("undecided" if self.model else "off")


def judge_prompt(trace: Trace, parts: Parts, options: JudgeOptions) -> str:
    """What the judge sees: problem, reference, final answer (never the reasoning)."""
    reference = str(trace.answer).strip() if trace.answer is not None and str(trace.answer).strip() else NO_REFERENCE
    answer = parts.answer if parts.closes else trace.completion  # no closing tag: the whole reply is the answer
    # str.replace, not format: problems and answers are full of braces.
    return options.prompt.replace("{problem}", trace.problem).replace("{reference}", reference).replace("{answer}", answer)


def prompt_key(model: str, prompt: str) -> str:
    """The cache key: the same judge and the same prompt give the same verdict, asked once."""
    return hashlib.sha256(f"{model}\0{prompt}".encode()).hexdigest()[:32]


def parse_verdict(reply: str, finish_reason: str | None = None) -> tuple[str, str]:
    """("correct" | "incorrect" | "undecided", why) from the judge's whole reply, strictly."""
    if finish_reason == "length":
        return "undecided", "judge reply cut off (max_tokens)"
    text = reply.rpartition("</think>")[2] if "</think>" in reply else reply
    if "<think>" in text:
        return "undecided", "judge never closed its reasoning"
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    match = _VERDICT.match(lines[-1]) if lines else None
    if match is None:
        last = " ".join(lines[-1].split())[:60] if lines else ""
        return "undecided", f"unparseable judge reply (last line: {last!r})" if last else "empty judge reply"
    return match.group(1).lower(), "judge: " + match.group(1).upper()


def judged_verdict(entry: dict[str, Any], options: JudgeOptions) -> Verdict:
    """The judge rule's verdict from what the parent asked (see distill.filters.judge_requests)."""
    verdict, why = entry["verdict"], entry.get("why", "")
    if verdict == "correct":
        return Verdict(passed=True, reason=why, score=1.0)
    if verdict == "incorrect":
        return Verdict(passed=False, reason=why, score=0.0)
    if options.keep_undecided:
        return Verdict(passed=True, reason=f"undecided, kept (keep_undecided): {why}")
    return Verdict(passed=False, reason=f"undecided: {why}")


@rule("judge", JudgeOptions, order=75)
def check_judge(trace: Trace, parts: Parts, config) -> Verdict:
    """Records the rules cannot decide, judged by a model (--judge-model); passes everything without one."""
    # Records the judge saw get their verdict from the stage (distill.filters.worker.judge); these are the others.
    if config.judge.resolved_policy() == "off":
        return Verdict(passed=True, reason="no judge")
    return Verdict(passed=True, reason="decided by the rules")
