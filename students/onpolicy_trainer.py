"""The on-policy step, as a transformers `Trainer`: sample, score, update.

One training loop (transformers' Trainer, as `distill train` uses): optimizer, schedule,
gradient accumulation, clipping, checkpoints and `--resume` are its own. What this subclass adds
happens inside `compute_loss`, for each micro-batch of prompts:

1. sample: the student writes a completion for each prompt (`generate`, in this process, in eval
   mode; seeded by the step, so a resumed run samples what the uninterrupted one would have).
   TRL's DistillationTrainer samples through a vLLM engine whose weights it syncs over NCCL, which
   CPUs lack; in-process generation runs everywhere.
2. score: the teacher reads prompt + completion (students/onpolicy_teacher.py).
3. loss, per completion token t (the positions the student visits), averaged over the tokens:
   - local teacher: the generalized JSD with `beta` over the whole vocabulary, computed from both
     models' last hidden states through their heads a chunk at a time (TRL's
     `ChunkedDivergenceFunction`: beta 1 = reverse KL(student||teacher), 0 = forward KL);
   - server teacher: the reverse KL estimated on the sampled token x_t,
     k_t = log p_s(x_t) - log p_t(x_t). Its expectation over x_t ~ p_s is KL(p_s||p_t) at that
     position, and E[k_t * grad log p_s(x_t)] is that KL's gradient (the score-function identity;
     E[grad log p_s] = 0), so the loss is written to have value k_t and gradient k_t * grad log p_s.
     The student's log-probabilities come from TRL's `ChunkedLogProbFunction` (no full logits).
   Tokens after the student's stop token are masked; the stop token itself is trained.

Positions: prompts are left-padded, so position ids are counted from the first real token (as
generate does, and as the server sees the unpadded sequence).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback

from students.onpolicy_teacher import positions

TOTALS = "onpolicy_totals.json"  # cumulative counters, saved in each checkpoint for --resume


def completion_mask(completion: torch.Tensor, stop_ids: list[int]) -> torch.Tensor:
    """1 up to and including the first stop token of each row, 0 after it."""
    stops = torch.isin(completion, torch.tensor(stop_ids, device=completion.device))
    after = (stops.long().cumsum(dim=1) - stops.long()) > 0
    return (~after).long()


def divergence_loss(student_hidden, student_head, teacher_hidden, teacher_head, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token generalized JSD over the full vocabulary (local teacher); returns (loss values, the same detached)."""
    from trl.kernels.chunked_divergence import ChunkedDivergenceFunction

    per_token, _entropy = ChunkedDivergenceFunction.apply(
        student_hidden, student_head, None, teacher_hidden.to(student_hidden.dtype), teacher_head.to(student_head.dtype), None,
        beta, 1.0, 1.0, None, 1.0, None)
    return per_token, per_token.detach()


def sampled_reverse_kl(student_hidden, student_head, tokens, teacher_logprobs) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token reverse-KL estimate on the sampled tokens (server teacher): value k_t, gradient k_t * grad log p_s."""
    from trl.kernels.chunked_logprob import ChunkedLogProbFunction

    student_logprobs = ChunkedLogProbFunction.apply(student_hidden, student_head, None, tokens, 1.0, 4096, None, 1.0, ())[0]
    gap = (student_logprobs - teacher_logprobs).detach()
    surrogate = gap * student_logprobs
    return surrogate - surrogate.detach() + gap, gap


def overlap(prompt: list[int], tokens: list[int], most: int = 16) -> int:
    """How many first tokens of the completion the teacher's prompt already ends with (a prefill such as the R1
    template's `<think>\n`, which the student writes itself): the teacher takes those as given."""
    for k in range(min(most, len(prompt), len(tokens)), 0, -1):
        if prompt[-k:] == tokens[:k]:
            return k
    return 0


def teacher_rows(teacher_prompts, completion, mask, stop_ids: list[int], teacher_stop: int | None):
    """Per row: the teacher's own prompt + the student's completion (its prefill overlap dropped, its stop token read
    as the teacher's end of turn), the prompt length, and how many first completion tokens the teacher does not score."""
    rows, starts, skips = [], [], []
    for prompt, comp, keep in zip(teacher_prompts, completion.tolist(), mask.tolist(), strict=True):
        tokens = [token for token, kept in zip(comp, keep, strict=True) if kept]
        skip = overlap(prompt, tokens)
        tokens = tokens[skip:]
        if teacher_stop is not None and tokens and tokens[-1] in stop_ids:
            tokens[-1] = teacher_stop
        rows.append(list(prompt) + tokens)
        starts.append(len(prompt))
        skips.append(skip)
    return rows, starts, skips


class OptimizerClock(TrainerCallback):
    """Adds the optimizer step to the update's seconds (training_step times forward and backward only)."""

    def __init__(self, totals: dict):
        self.totals = totals
        self.started = 0.0

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.totals["update_s"] += time.perf_counter() - self.started


class OnPolicyTrainer(Trainer):
    def __init__(self, *args, teacher, settings, stop_ids: list[int], teacher_stop: int | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher = teacher
        self.settings = settings
        self.stop_ids = stop_ids
        self.teacher_stop = teacher_stop
        self.model_accepts_loss_kwargs = False  # our loss is a per-micro-batch mean: the Trainer divides by grad_accum
        self.totals = {"sample_s": 0.0, "score_s": 0.0, "update_s": 0.0, "sampled_tokens": 0, "completions": 0,
                       "stopped": 0, "teacher_prompt_tokens": 0, "teacher_completion_tokens": 0, "kl_sum": 0.0,
                       "scored_tokens": 0}
        self._logged = dict(self.totals)
        self._micro = 0
        self.add_callback(OptimizerClock(self.totals))

    # ------------------------------------------------------------------ the step

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        student = self.accelerator.unwrap_model(model)
        prompt_ids, prompt_mask = inputs["input_ids"], inputs["attention_mask"]
        started = time.perf_counter()
        completion = self._sample(student, prompt_ids, prompt_mask)
        visible = completion_mask(completion, self.stop_ids)  # what the student wrote, up to its stop token
        mask = visible.clone()  # what the loss sees
        sampled = time.perf_counter()

        rows, starts, skips = teacher_rows(inputs["teacher_ids"], completion, mask, self.stop_ids, self.teacher_stop)
        for row, skip in enumerate(skips):
            mask[row, :skip] = 0  # the teacher's prompt already holds these tokens: no signal for them
        input_ids = torch.cat([prompt_ids, completion], dim=1)
        attention = torch.cat([prompt_mask, visible], dim=1)
        width = prompt_ids.shape[1]
        tokens = completion[mask.bool()]
        before = (self.teacher.tokens.prompt, self.teacher.tokens.completion)
        if self.teacher.mode == "local":
            teacher_hidden = self.teacher.hidden(rows, starts)
        else:
            scored = self.teacher.logprobs(rows, starts)
            teacher_logprobs = torch.tensor([lp for row in scored for lp in row], dtype=torch.float32, device=input_ids.device)
        scored_at = time.perf_counter()

        out = student.get_decoder()(input_ids=input_ids, attention_mask=attention, position_ids=positions(attention), use_cache=False)
        hidden = out.last_hidden_state[:, width - 1 : -1][mask.bool()]  # position t predicts token t+1
        head = student.get_output_embeddings().weight
        if self.teacher.mode == "local":
            per_token, kl = divergence_loss(hidden, head, teacher_hidden, self.teacher.head, self.settings.beta)
        else:
            per_token, kl = sampled_reverse_kl(hidden, head, tokens, teacher_logprobs)
        loss = per_token.sum() / max(len(tokens), 1)

        self._micro += 1
        stopped = int(torch.isin(completion, torch.tensor(self.stop_ids, device=completion.device)).any(dim=1).sum())
        self._count(sampled - started, scored_at - sampled, visible, kl, before, stopped)
        return (loss, None) if return_outputs else loss

    @torch.no_grad()
    def _sample(self, student, prompt_ids, prompt_mask) -> torch.Tensor:
        # seeded by (seed, step, micro-step): a resumed run draws what the uninterrupted one drew
        torch.manual_seed(self.settings.seed * 1_000_003 + self.state.global_step * 1_009 + self._micro % self.args.gradient_accumulation_steps)
        was_training = student.training
        student.eval()
        try:
            out = student.generate(input_ids=prompt_ids, attention_mask=prompt_mask, do_sample=True,
                                   temperature=self.settings.sampling.temperature, top_p=1.0, top_k=0,
                                   max_new_tokens=self.settings.sampling.max_tokens, eos_token_id=self.stop_ids,
                                   pad_token_id=self.processing_class.pad_token_id, use_cache=True)
        finally:
            student.train(was_training)
        return out[:, prompt_ids.shape[1]:]

    def training_step(self, model, inputs, num_items_in_batch=None):
        started = time.perf_counter()
        spent = self.totals["sample_s"] + self.totals["score_s"]
        loss = super().training_step(model, inputs, num_items_in_batch)
        self.totals["update_s"] += time.perf_counter() - started - (self.totals["sample_s"] + self.totals["score_s"] - spent)
        return loss

    def _count(self, sample_s: float, score_s: float, mask, kl, before, stopped: int) -> None:
        t = self.totals
        t["sample_s"] += sample_s
        t["score_s"] += score_s
        t["sampled_tokens"] += int(mask.sum())
        t["completions"] += mask.shape[0]
        t["stopped"] += stopped
        t["teacher_prompt_tokens"] += self.teacher.tokens.prompt - before[0]
        t["teacher_completion_tokens"] += self.teacher.tokens.completion - before[1]
        t["kl_sum"] += float(kl.sum())
        t["scored_tokens"] += kl.numel()

    # ------------------------------------------------------------------ logging and resume

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            now, last = self.totals, self._logged
            tokens = now["sampled_tokens"] - last["sampled_tokens"]
            scored = now.get("scored_tokens", 0) - last.get("scored_tokens", 0)
            logs["reverse_kl" if self.settings.beta == 1 else "divergence"] = round((now["kl_sum"] - last["kl_sum"]) / max(scored, 1), 6)
            logs["completion_tokens"] = round(tokens / max(now["completions"] - last["completions"], 1), 1)
            logs["teacher_prompt_tokens"] = now["teacher_prompt_tokens"]
            logs["teacher_completion_tokens"] = now["teacher_completion_tokens"]
            self._logged = dict(now)
        super().log(logs, start_time)

    def _save_checkpoint(self, model, trial) -> None:
        super()._save_checkpoint(model, trial)
        folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        if self.is_world_process_zero() and folder.is_dir():
            (folder / TOTALS).write_text(json.dumps(self.totals))

    def restore_totals(self, checkpoint: str) -> None:
        path = Path(checkpoint) / TOTALS
        if path.is_file():
            self.totals.update(json.loads(path.read_text()))
            self._logged = dict(self.totals)
