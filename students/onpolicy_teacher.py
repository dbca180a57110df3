"""The teacher of on-policy distillation: it scores token ids the student sampled.

Two ways, one counter:
- `LocalTeacher`: a model folder loaded in this process (frozen, eval mode). It gives the last
  hidden states at the completion positions; the loss projects them through the teacher's head a
  chunk at a time (TRL's `ChunkedDivergenceFunction`), so the full vocabulary is compared.
- `ServerTeacher`: an OpenAI-compatible vLLM server. The sequence (prompt + completion token ids)
  is sent as the prompt of a /v1/completions request with `max_tokens: 1` and `prompt_logprobs: 0`:
  vLLM returns log p_teacher of every prompt token, i.e. of each sampled token given what precedes
  it. That is all a server gives cheaply, so only the reverse KL (estimated on the sampled tokens)
  runs against it. TRL's `VLLMClient.get_sequence_logprobs` sends the same request; we keep our own
  small client for the API key (read from the environment, never shown), retries with backoff,
  and the token counts.

Both require the student's tokenizer: the teacher reads the student's ids. `check_same_tokenizer`
compares the vocabularies (local) or the server's /tokenize of a probe text (server).
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass

import torch

from distill.core.errors import InputError, StageError
from distill.core.secrets import redact, register_env

# Digits, operators, words, CJK and the template's own markers: where two tokenizers usually differ.
PROBE = "Compute 7-3+5. <think>\nFirst, 7-3=4. 然后计算 4+5=9。\n</think>\n\nThe answer is \\boxed{9}."


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids counted from each row's first real token (prompts are left-padded), as generate counts them."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)


@dataclass
class TeacherTokens:
    """What the teacher read: prompt tokens and completion (student-sampled) tokens, separately."""

    prompt: int = 0
    completion: int = 0
    requests: int = 0

    def add(self, prompt: int, completion: int) -> None:
        self.prompt += prompt
        self.completion += completion
        self.requests += 1


class LocalTeacher:
    mode = "local"

    def __init__(self, path: str, dtype: torch.dtype):
        from distill.core.models import load_causal_lm

        self.model = load_causal_lm(path, dtype=dtype)
        self.model.eval().requires_grad_(False)
        self.tokens = TeacherTokens()
        self.swap: tuple[int, int] | None = None  # (student stop id, teacher stop id): read one as the other

    @torch.no_grad()
    def hidden(self, rows: list[list[int]], prompt_lengths: list[int]) -> torch.Tensor:
        """Last hidden states predicting each token after its row's prompt (rows in order, tokens in order)."""
        width = max(map(len, rows))
        device = self.model.device
        ids = torch.tensor([[0] * (width - len(row)) + row for row in rows], device=device)
        mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows], device=device)
        out = self.model.get_decoder()(input_ids=ids, attention_mask=mask, position_ids=positions(mask), use_cache=False)
        picked = []
        for index, (row, start) in enumerate(zip(rows, prompt_lengths, strict=True)):
            scored = len(row) - start
            picked.append(out.last_hidden_state[index, width - scored - 1 : width - 1])  # position t predicts token t+1
            self.tokens.add(start, scored)
        return torch.cat(picked)

    @property
    def head(self) -> torch.Tensor:
        weight = self.model.get_output_embeddings().weight
        if self.swap is None or self.swap[0] == self.swap[1]:
            return weight
        student, teacher = self.swap  # the teacher's end of turn, read as the student's (and back)
        order = torch.arange(weight.shape[0], device=weight.device)
        order[student], order[teacher] = teacher, student
        return weight.index_select(0, order)


class ServerTeacher:
    mode = "server"

    def __init__(self, base_url: str, model: str, api_key_env: str, timeout: float, max_retries: int):
        import httpx

        from teacher.backends.openai import endpoint_root

        register_env(api_key_env)  # its value is redacted from anything we print
        key = os.environ.get(api_key_env)
        self.root = endpoint_root(base_url)
        self.model = model
        self.max_retries = max_retries
        self.client = httpx.Client(headers={"Authorization": f"Bearer {key}"} if key else {},
                                   timeout=httpx.Timeout(timeout, connect=min(30.0, timeout)))
        self.tokens = TeacherTokens()

    def _post(self, path: str, body: dict, optional: bool = False) -> dict | None:
        """The JSON answer; None for a 404 when `optional` (an endpoint the server may not have)."""
        import httpx

        for attempt in range(self.max_retries + 1):
            try:
                response = self.client.post(path, json=body)
                if response.status_code < 400:
                    return response.json()
                if optional and response.status_code == 404:
                    return None
                if response.status_code in (401, 403):
                    raise StageError(f"the teacher server refused the API key (HTTP {response.status_code})")
                if response.status_code not in (408, 429, 500, 502, 503, 504) or attempt == self.max_retries:
                    raise StageError(f"the teacher server answered HTTP {response.status_code}: {redact(response.text)[:300]}")
            except httpx.TransportError as exc:
                if attempt == self.max_retries:
                    raise StageError(f"the teacher server at {self.root} is unreachable ({type(exc).__name__}) "
                                     f"after {self.max_retries} retries") from None
            time.sleep(min(30.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.0))
        raise AssertionError("unreachable")

    def check_same_tokenizer(self, tokenizer) -> None:
        root = self.root.removesuffix("/v1")
        data = self._post(f"{root}/tokenize", {"model": self.model, "prompt": PROBE, "add_special_tokens": False}, optional=True)
        if data is None:  # not vLLM (SGLang, a proxy): the check cannot run; the token ids are sent as they are
            from rich.console import Console

            Console(stderr=True).print("[yellow]warning:[/yellow] the teacher server has no /tokenize: "
                                       "cannot check that it shares the student's tokenizer")
            return
        if data.get("tokens") != tokenizer.encode(PROBE, add_special_tokens=False):
            raise InputError("the served teacher tokenizes differently from the student: on-policy distillation scores "
                             "the student's token ids, so both need one tokenizer", field="teacher")

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int] | None:
        """The prompt as the server's chat template renders it (vLLM's /tokenize with messages); None without one."""
        root = self.root.removesuffix("/v1")
        body = {"model": self.model, "messages": messages, "add_generation_prompt": True, "add_special_tokens": False}
        data = self._post(f"{root}/tokenize", body, optional=True)
        return None if data is None else data["tokens"]

    def logprobs(self, sequences: list[list[int]], prompt_lengths: list[int]) -> list[list[float]]:
        """log p_teacher(token | everything before it) for each completion token of each sequence (one request
        for the micro-batch: vLLM takes a list of token-id prompts and batches them)."""
        body = {"model": self.model, "prompt": sequences, "max_tokens": 1, "temperature": 1.0, "prompt_logprobs": 0}
        choices = sorted(self._post(f"{self.root}/completions", body)["choices"], key=lambda choice: choice["index"])
        if len(choices) != len(sequences):
            raise StageError(f"the teacher server answered {len(choices)} choices for {len(sequences)} sequences")
        out = []
        for ids, start, choice in zip(sequences, prompt_lengths, choices, strict=True):
            scored = choice.get("prompt_logprobs") or []
            if len(scored) != len(ids):
                raise StageError(f"the teacher server returned {len(scored)} prompt log-probabilities for {len(ids)} tokens")
            out.append([scored[i][str(ids[i])]["logprob"] for i in range(start, len(ids))])
            self.tokens.add(start, len(ids) - start)
        return out

    def close(self) -> None:
        self.client.close()


def end_of_turn(tokenizer) -> int | None:
    """The token a chat template closes an assistant turn with (R1's <｜end▁of▁sentence｜>, ChatML's <|im_end|>)."""
    if not getattr(tokenizer, "chat_template", None):
        return tokenizer.eos_token_id
    marker = "Zq9xMarker"
    text = tokenizer.apply_chat_template([{"role": "user", "content": "u"}, {"role": "assistant", "content": marker}],
                                         tokenize=False)
    after = text[text.rfind(marker) + len(marker):]
    ids = tokenizer(after, add_special_tokens=False)["input_ids"] if after else []
    return ids[0] if ids else tokenizer.eos_token_id


def check_same_vocabulary(student_tokenizer, teacher_path: str):
    """The teacher's tokenizer (its own chat template); InputError when its vocabulary is not the student's."""
    from transformers import AutoTokenizer

    teacher_tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    if teacher_tokenizer.get_vocab() != student_tokenizer.get_vocab():
        raise InputError("the teacher's tokenizer differs from the student's: on-policy distillation scores the "
                         "student's token ids, so both need one tokenizer (vocabulary)", where=teacher_path, field="teacher")
    return teacher_tokenizer
