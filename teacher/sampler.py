"""The sampling layer's one call: sample a list of prompts into a sink.

A prompt is a `Job`: chat messages, the text the response opens with (`prefill`), and the sample
indices still wanted. `sample(config, jobs, sink)` hands them to the backend named in the
`SamplingConfig` (teacher/backends), which hands every finished sample to the sink the moment it
is done. Two sinks: `teacher.sink.TraceSink` writes trace records to a JSONL file (resumable: a
re-run samples only what the file lacks), `MemorySink` keeps the samples in memory (a judge's
verdicts, a batch of rollouts).

The prefill is the response's opening ("<think>\\n") or, with `continuation`, a whole partial
completion to continue (budget forcing: the reasoning closed at N tokens, then the answer sampled):
the model continues from it, and the completion handed to the sink starts with it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from distill.core.logprobs import TokenLogprobs
from distill.core.r1_format import compose, compose_unfinished, restore_prefill
from distill.core.records import Problem
from teacher import backends
from teacher.sampling import SamplingConfig


@dataclass
class Job:
    """One prompt and the sample indices it still needs."""

    key: str  # the prompt's id: samples are reported under it
    messages: list[dict[str, str]]
    indices: list[int]
    prefill: str = ""  # the response starts with it; restored in every completion
    # The prefill is a completion to continue, not an opening a chat template may add itself:
    # a chat endpoint cannot continue one (`api: completions` or an engine can).
    continuation: bool = False
    problem: Problem | None = None  # what a record sink writes the samples of; backends never read it


@dataclass
class Sample:
    index: int
    completion: str
    finish_reason: str | None
    tokens: int | None  # completion tokens
    prompt_tokens: int | None = None
    logprobs: TokenLogprobs | None = None


@dataclass
class MemorySink:
    """Samples kept in memory, per prompt key: for jobs small enough to hold (a judge, RL rollouts)."""

    samples: dict[str, list[Sample]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # key -> why it got no samples
    retries: int = 0
    errors: int = 0
    stopped: str | None = None  # a memory sink never stops a run early
    finish: Counter = field(default_factory=Counter)

    def missing(self, jobs: list[Job]) -> list[Job]:
        """What is still to sample: a memory sink starts empty, so everything."""
        return jobs

    def start(self, jobs: list[Job]) -> None:
        pass

    def stop(self) -> None:
        pass

    def emit(self, job: Job, index: int, completion: str, finish_reason: str | None, tokens: int | None,
             prompt_tokens: int | None = None, token_logprobs: TokenLogprobs | None = None) -> None:
        self.emit_many(job, [(index, completion, finish_reason, tokens, token_logprobs)], prompt_tokens)

    def emit_many(self, job: Job, samples: list[tuple], prompt_tokens: int | None = None) -> None:
        for index, completion, finish_reason, tokens, *extra in samples:
            self.samples.setdefault(job.key, []).append(
                Sample(index, completion, finish_reason, tokens, prompt_tokens, extra[0] if extra else None))
            self.finish[finish_reason or "unknown"] += 1

    def skip(self, job: Job, reason: str, samples: int) -> None:
        self.skipped[job.key] = reason

    def retried(self) -> None:
        self.retries += 1

    def failed(self) -> None:
        self.errors += 1


def sample(config: SamplingConfig, jobs: list[Job], sink: Any, keep_engine: bool = False) -> None:
    """Sample every job's missing indices into `sink` (a TraceSink resumes from its file).

    keep_engine: leave the vLLM engine (or llama.cpp server) up for the next call with the same
    engine options (RL rounds, several benchmarks); `release(config)` gives it back.
    """
    backend = backends.load(config.backend)
    backend.check(config)
    jobs = sink.missing(jobs)
    if not jobs:
        return
    backend.prepare(config)  # the load stays out of the sink's tokens/s figure
    sink.start(jobs)
    try:
        backend.generate(config, jobs, sink)
    finally:
        sink.stop()
        if not keep_engine:
            backend.release()


def release(config: SamplingConfig) -> None:
    """Give back what a `sample(..., keep_engine=True)` kept."""
    backends.load(config.backend).release()


def render(job: Job, tokenizer: Any) -> str:
    """The full prompt text: the chat template over the messages, then the prefill.

    R1-distill templates already open the response with "<think>\\n"; others get it appended
    here, so the model always continues inside its reasoning (DeepSeek's advice: without it
    R1 sometimes skips thinking). A completion to continue starts with that opening too: it
    follows the template's, not a second one.
    """
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(job.messages, add_generation_prompt=True, tokenize=False)
    else:  # a model without a chat template gets the bare user turn
        text = "\n\n".join(message["content"] for message in job.messages)
    prefill = job.prefill
    if job.continuation:  # a completion that opens the way the template already did ("<think>\n") goes on from it, not after a second one
        return text + prefill[_overlap(text, prefill):]
    if prefill and not text.endswith(prefill) and not text.rstrip().endswith(prefill.strip()):
        text += prefill
    return text


_OPENING_MAX = 64  # a template opens the response with a short tag ("<think>\n"): no need to look further back


def _overlap(text: str, prefill: str) -> int:
    """How much of `prefill`'s start `text` already ends with (more than whitespace), or 0."""
    for size in range(min(len(text), len(prefill), _OPENING_MAX), 0, -1):
        if prefill[:size].strip() and text.endswith(prefill[:size]):
            return size
    return 0


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
