"""The training loss from the last hidden states and the output head, without the full logits.

Why: a causal LM's head turns T hidden states into T x vocab logits. At R1 lengths (32k tokens,
a 152k vocabulary) that is 5 billion logits: 10 GB in bf16, and transformers' loss adds an fp32
copy, cross-entropy's saved log-softmax and the fp32 gradient (~65 GB, more than a GPU). The loss
only needs, per target token, the log-sum-exp over the vocabulary and one logit, and the
gradient (softmax minus one-hot) can be formed and consumed a chunk of tokens at a time.

How: `ChunkedHeadLoss` (an autograd Function) walks the target tokens in chunks of
`chunk_size`; for each chunk it computes the logits, the loss and, when training, the gradient
with respect to the chunk's hidden states and the head's weight, then drops the chunk. Backward
only scales the stored gradients by the incoming gradient. At most one chunk of logits exists at
any time, in forward and backward. Computing the gradients in forward also means the head's
weight is not needed again in backward, which keeps this correct under ZeRO-3 (the weight is
gathered while the model's forward runs and released after) and FSDP2 (same, per unit).

Normalisation is transformers' own (loss_utils.ForCausalLMLoss + fixed_cross_entropy): labels
shifted by one (or `shift_labels` as given, e.g. by DeepSpeed's sequence-parallel data loader),
-100 ignored, the summed loss divided by `num_items_in_batch` when the Trainer passes it (the
label tokens of the whole accumulated batch, so gradient accumulation is token-normalised), else
by this batch's label tokens. Only positions with a target are sent through the head at all.

The per-chunk loss is a plain function (`cross_entropy_chunk`): given a chunk's fp32 logits and
targets it returns the summed loss and its gradient with respect to those logits. The
distillation loss (`kd_chunk_loss`, `train --objective kd`) plugs in the same way, with the
teacher's recorded top-K per token passed along with the labels as `targets`.

On GPUs with Liger installed, Liger's fused kernel does the same job (TrainingArguments.
use_liger_kernel); `resolve_loss` chooses.
"""

from __future__ import annotations

import types
from collections.abc import Callable

import torch

IGNORE = -100
KERNELS = ("auto", "liger", "chunked", "plain")

ChunkLoss = Callable[[torch.Tensor, torch.Tensor, bool], tuple[torch.Tensor, torch.Tensor | None]]


def cross_entropy_chunk(logits: torch.Tensor, targets: torch.Tensor, need_grad: bool):
    """Summed cross-entropy of fp32 `logits` (chunk x vocab) against `targets`, and its gradient
    with respect to the logits (softmax minus one-hot), formed in place in `logits`'s memory."""
    picked = logits.gather(1, targets[:, None]).squeeze(1)
    top = logits.amax(dim=1, keepdim=True)
    logits.sub_(top).exp_()  # one buffer: no logsumexp temporary of the chunk's size
    total = logits.sum(dim=1, keepdim=True)
    loss = (total.log().squeeze(1) + top.squeeze(1) - picked).sum()
    if not need_grad:
        return loss, None
    logits.div_(total)
    logits[torch.arange(len(targets), device=logits.device), targets] -= 1.0
    return loss, logits


def teacher_distribution(top_logprobs: torch.Tensor, valid: torch.Tensor, vocab: int, temperature: float):
    """The teacher's sparse distribution over K+1 outcomes: its top-K tokens and "every other token"
    (the tail: the probability the top-K leave, 1 - sum(exp(logprob)), kept explicitly rather than
    renormalising the top-K to 1). At a temperature T != 1 each top-K probability is raised to 1/T,
    and the tail as if its mass were spread evenly over the other vocab - K tokens; then all K+1
    are renormalised. Returns (q_top [n, K], q_tail [n])."""
    logprobs = top_logprobs.float().masked_fill(~valid, float("-inf"))
    rest = (1 - logprobs.exp().sum(1)).clamp(min=0)  # fp16 rounding can push the top-K a hair past 1
    if temperature == 1:
        top, tail = logprobs.exp(), rest
    else:
        top = (logprobs / temperature).exp()
        others = (vocab - valid.sum(1)).clamp(min=1).float()
        tail = others ** (1 - 1 / temperature) * rest ** (1 / temperature)
    total = top.sum(1) + tail
    return top / total[:, None], tail / total


def kd_chunk_loss(alpha: float, temperature: float = 1.0) -> ChunkLoss:
    """Per target token: (1 - alpha) * cross-entropy on the label (the teacher's sampled token)
    + alpha * T^2 * KL(teacher || student) over the teacher's top-K plus the tail bucket, the
    student's softmax taken at temperature T. Tokens without a recorded teacher distribution (the
    student's own turn-closing token, the think prefill) get cross-entropy alone.

    targets = (labels [n], top_ids [n, K] (-1: none), top_logprobs [n, K]). With a one-hot teacher
    on the label and T = 1 this is exactly cross-entropy; the gradient with respect to the logits
    is formed in closed form (student p minus teacher q on the top-K, p scaled on the tail)."""

    def chunk(logits: torch.Tensor, targets, need_grad: bool):
        labels, top_ids, top_logprobs = targets
        valid = top_ids >= 0
        ids = top_ids.clamp(min=0).long()
        has = valid.any(1)
        q_top, q_tail = teacher_distribution(top_logprobs, valid, logits.shape[1], temperature)
        lse = torch.logsumexp(logits, dim=1)
        ce = lse - logits.gather(1, labels[:, None]).squeeze(1)
        scaled = logits if temperature == 1 else logits / temperature
        lse_t = lse if temperature == 1 else torch.logsumexp(scaled, dim=1)
        logp_top = (scaled.gather(1, ids) - lse_t[:, None]).masked_fill(~valid, 0.0)
        p_top = logp_top.exp() * valid
        p_tail = (1 - p_top.sum(1)).clamp(min=1e-30)
        kl = (torch.xlogy(q_top, q_top) - q_top * logp_top).sum(1) + torch.xlogy(q_tail, q_tail) - q_tail * p_tail.log()
        w_kd = has.float() * alpha
        w_ce = 1 - w_kd
        scale = w_kd * temperature  # d(T^2 KL(z / T))/dz = T * dKL/d(z / T)
        loss = (w_ce * ce + w_kd * temperature**2 * kl).sum()
        if not need_grad:
            return loss, None
        # dKL/d(z/T)_v = p_v (1 - q_tail / p_tail) for every v, plus p_v q_tail / p_tail - q_v on the top-K
        keep = 1 - q_tail / p_tail
        if temperature == 1:
            grad = logits.sub_(lse[:, None]).exp_().mul_((w_ce + scale * keep)[:, None])
        else:
            grad = scaled.sub_(lse_t[:, None]).exp_().mul_((scale * keep)[:, None])
            grad.add_(logits.sub_(lse[:, None]).exp_().mul_(w_ce[:, None]))
        grad[torch.arange(len(labels), device=grad.device), labels] -= w_ce
        grad.scatter_add_(1, ids, (scale[:, None] * (p_top * (q_tail / p_tail)[:, None] - q_top)) * valid)
        return loss, grad

    return chunk


def _chunks(count: int, chunk_size: int):
    for start in range(0, count, chunk_size):
        yield start, min(start + chunk_size, count)


def _compute_dtype(hidden: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The head's matmul dtype: autocast's where it is on (as nn.Linear would run), else the weight's."""
    device = hidden.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype


def _head_loss_sum(hidden, weight, targets, chunk_size: int, chunk_loss: ChunkLoss, grads: tuple | None = None):
    """Sum of the chunk losses; with `grads` = (grad_hidden, grad_weight or None), also their gradients."""
    loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
    dtype = _compute_dtype(hidden, weight)
    with torch.autocast(hidden.device.type, enabled=False):  # explicit dtypes below, the same in forward and backward
        head = weight.to(dtype)  # a no-op unless autocast runs an fp32 head (QLoRA's upcast) in bf16
        for start, end in _chunks(hidden.shape[0], chunk_size):
            rows = hidden[start:end].to(dtype)
            logits = (rows @ head.t()).float()  # a no-op in fp32; otherwise the low-precision output is freed here
            part, grad = chunk_loss(logits, _slice(targets, start, end), grads is not None)
            loss += part
            if grads is None:
                continue
            grad = grad.to(dtype)
            grad_hidden, grad_weight = grads
            grad_hidden[start:end] = grad @ head
            if grad_weight is not None:
                if grad_weight.dtype == dtype:
                    grad_weight.addmm_(grad.t(), rows)
                else:  # fp32 accumulator for a bf16 head: exact sums over many chunks
                    grad_weight.add_(grad.t() @ rows)
            del logits, grad
    return loss


def _slice(targets, start: int, end: int):
    if isinstance(targets, torch.Tensor):
        return targets[start:end]
    return type(targets)(t[start:end] for t in targets)


class ChunkedHeadLoss(torch.autograd.Function):
    """loss = sum over chunks of chunk_loss(hidden_chunk @ weight.T, targets_chunk) / normaliser."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, normaliser, chunk_size: int, chunk_loss: ChunkLoss):
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if ctx.needs_input_grad[1] else None
        loss = _head_loss_sum(hidden, weight, targets, chunk_size, chunk_loss, (grad_hidden, grad_weight))
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.normaliser = normaliser
        ctx.weight_dtype = weight.dtype
        return loss / normaliser

    @staticmethod
    def backward(ctx, grad_output):
        grad_hidden, grad_weight = ctx.saved_tensors
        scale = grad_output / ctx.normaliser
        grad_hidden = grad_hidden * scale.to(grad_hidden.dtype) if ctx.needs_input_grad[0] else None
        if grad_weight is not None:
            grad_weight = grad_weight.mul_(scale).to(ctx.weight_dtype)
        return grad_hidden, grad_weight, None, None, None, None


def causal_lm_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor | None = None, *,
                   shift_labels: torch.Tensor | None = None, num_items_in_batch=None, chunk_size: int = 1024,
                   chunk_loss: ChunkLoss = cross_entropy_chunk, teacher: tuple | None = None) -> torch.Tensor:
    """The causal LM loss of `hidden` (batch x length x hidden) through a head of `weight`
    (vocab x hidden), normalised as transformers' ForCausalLMLoss does.

    teacher: (top_ids, top_logprobs), each batch x length x K and aligned with `labels` (row i:
    the teacher's distribution for token i); shifted with them and passed to `chunk_loss`."""
    if shift_labels is None:
        shift_labels = torch.nn.functional.pad(labels, (0, 1), value=IGNORE)[..., 1:]
    flat = shift_labels.reshape(-1).to(hidden.device)
    keep = (flat != IGNORE).nonzero().squeeze(1)
    rows = hidden.reshape(-1, hidden.shape[-1]).index_select(0, keep)
    targets = flat.index_select(0, keep)
    if teacher is not None:
        shifted = [torch.nn.functional.pad(t, (0, 0, 0, 1), value=fill)[:, 1:] for t, fill in zip(teacher, (-1, float("-inf")), strict=True)]
        targets = (targets, *(t.reshape(-1, t.shape[-1]).to(hidden.device).index_select(0, keep) for t in shifted))
    normaliser = num_items_in_batch if num_items_in_batch is not None else max(len(keep), 1)
    if torch.is_tensor(normaliser):
        normaliser = normaliser.to(hidden.device)
    if torch.is_grad_enabled() and (rows.requires_grad or weight.requires_grad):
        return ChunkedHeadLoss.apply(rows, weight, targets, normaliser, chunk_size, chunk_loss)
    with torch.no_grad():
        return _head_loss_sum(rows, weight, targets, chunk_size, chunk_loss) / normaliser


# ---------------------------------------------------------------------------- the model side


def supports_chunked(model) -> bool:
    """A causal LM whose logits are a bias-free linear head of the decoder's output, nothing else
    (no soft-capping or logit scaling, which the chunked loss would skip)."""
    base = _base(model)
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    config = getattr(base, "config", None)
    return (
        isinstance(head, torch.nn.Linear) and type(head) is torch.nn.Linear and head.bias is None
        and hasattr(base, "get_decoder") and config is not None
        and not getattr(config, "final_logit_softcapping", None) and getattr(config, "logit_scale", None) in (None, 1, 1.0)
    )


def use_chunked_loss(model, chunk_size: int = 1024, kd: tuple[float, float] | None = None) -> None:
    """Make the model compute its training loss with `causal_lm_loss` (never the full logits)
    whenever it gets labels; without labels (generation, inference) it runs as before.
    kd = (alpha, temperature): batches carrying `teacher_ids` and `teacher_logprobs` are trained
    with `kd_chunk_loss`.

    The instance's forward is replaced (the class and other instances are untouched), so the
    wrappers that call it (DDP, FSDP2, DeepSpeed, PEFT) keep their hooks around it."""
    base = _base(model)
    original = type(base).forward

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None, inputs_embeds=None,
                labels=None, use_cache=None, logits_to_keep=0, **kwargs):
        shift_labels = kwargs.pop("shift_labels", None)
        teacher = (kwargs.pop("teacher_ids", None), kwargs.pop("teacher_logprobs", None))
        teacher = teacher if teacher[0] is not None else None
        if labels is None and shift_labels is None:
            return original(self, input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                            past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache,
                            logits_to_keep=logits_to_keep, **kwargs)
        from transformers.modeling_outputs import CausalLMOutputWithPast

        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        outputs = self.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                     past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache,
                                     **kwargs)
        # the head's weight is read inside this forward: ZeRO-3 gathers it here (an external parameter)
        chunk_loss = kd_chunk_loss(*kd) if kd is not None and teacher is not None else cross_entropy_chunk
        loss = causal_lm_loss(outputs.last_hidden_state, self.get_output_embeddings().weight, labels,
                              shift_labels=shift_labels, num_items_in_batch=num_items_in_batch, chunk_size=chunk_size,
                              chunk_loss=chunk_loss, teacher=teacher if chunk_loss is not cross_entropy_chunk else None)
        return CausalLMOutputWithPast(loss=loss, logits=None, past_key_values=outputs.past_key_values,
                                      hidden_states=outputs.hidden_states, attentions=outputs.attentions)

    base.forward = types.MethodType(forward, base)
    base._distill_loss = "chunked"


def _base(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def liger_available(model_type: str | None) -> bool:
    """Liger's fused linear cross-entropy can run here: a CUDA GPU, liger-kernel installed, and a
    model type it patches."""
    import importlib.util

    if not torch.cuda.is_available() or importlib.util.find_spec("liger_kernel") is None:
        return False
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN

    return model_type in MODEL_TYPE_TO_APPLY_LIGER_FN


def resolve_loss(requested: str, model_type: str | None) -> str:
    """The loss that runs: `auto` is Liger where it can run, else the chunked loss."""
    if requested == "auto":
        return "liger" if liger_available(model_type) else "chunked"
    return requested
