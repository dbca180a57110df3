"""Memory planner: predicted peak memory per GPU for full / LoRA / QLoRA before loading anything.

Reads the architecture from the preset (or the base's config.json, which is a few KB), so it
answers in milliseconds. The model, per GPU, for T tokens per micro-step:

- weights, gradients, optimizer (P parameters, N GPUs; AdamW keeps two moments):
  plain/DDP (HF Trainer, model loaded in bf16): 2 + 2 + 4 bytes/param, all on every GPU;
  ZeRO-2: bf16 weights whole, grads + fp32 master + moments (2 + 12 bytes) / N;
  ZeRO-3 and FSDP2: everything / N (16 bytes/param); ZeRO-3 offload: optimizer on the CPU.
  LoRA: frozen base at 2 bytes/param plus the adapter at 16 bytes/param (fp32 adapters).
  QLoRA: linear layers of the blocks in NF4 with double quantisation (~0.52 bytes/param),
  embeddings and head in bf16, plus the adapter.
- activations: what autograd keeps per token per decoder layer, counted on the real Qwen2 /
  Llama modules with torch.autograd.graph.saved_tensors_hooks (see LAYER_* below). With
  gradient checkpointing only each layer's input is kept, plus one layer recomputed in full
  and its gradients while backward runs through it.
- logits: what the loss needs besides the hidden states (T x vocab scale), per loss kernel:
  plain (transformers' loss on the full logits): the head's output, its fp32 copy, cross-
  entropy's saved log-softmax and the fp32 gradient; at 16k tokens and a 152k vocabulary ~33
  GiB. chunked (students/loss.py): one chunk of logits (fp32, plus its bf16 gradient), the
  gathered hidden states of the target tokens and their gradient, and an fp32 accumulator (plus
  a bf16 temporary) for the head's weight gradient when the head trains. liger: Liger's fused
  kernel, whose chunk holds about as many logits as there are hidden-state elements, writes
  the gradient into the chunk in place and keeps the weight gradient in the weight's dtype.
- sequence parallelism (Ulysses, `sp` GPUs per sequence): each GPU holds T / sp tokens of every
  layer's activations and of the loss; weights, gradients and optimizer are sharded over all
  GPUs by ZeRO (data-parallel degree = GPUs / sp).
- other: the CUDA context (~1 GiB on a GPU), QLoRA's dequantised bf16 weight temporaries, the
  parameters ZeRO-3/FSDP gather for the layer being computed and the next (prefetch) and for
  the embedding/head, and allocator slack (fragmentation, transient buffers) as a share of the
  activations + logits.

Checked against measured peaks by bench/bench_train.py (figures in docs/performance.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

GIB = 1024**3
CUDA_CONTEXT = 1.0 * GIB
# Per token per decoder layer, in elements, what autograd saves for backward (measured with
# saved_tensors_hooks on transformers 5.19 Qwen2/Llama layers):
# - residual stream: full fine-tuning keeps ~7 hidden-size tensors (layer input, the two
#   RMSNorms' input and normalised output, the inputs of q/k/v (shared), o_proj and the MLP);
#   with a frozen base the linears need no input for a weight gradient, ~4.25 remain.
LAYER_STREAM_FULL, LAYER_STREAM_FROZEN = 7.0, 4.25
# - attention: rotated q and the output (hidden each), k and v (kv width each; sdpa_varlen on
#   CPU repeats them to the full head count), plus the softmax statistics (small).
# - MLP: gate, up, act(gate) and act(gate) * up, each of the intermediate size.
LAYER_MLP = 4
# - LoRA: each adapted linear keeps its rank-r intermediate (x @ A) for B's gradient; 7
#   linears per layer with all-linear targets.
LORA_TARGETS_PER_LAYER = 7
# - outside the layers: embedding output and the final norm's tensors.
OUTSIDE_LAYERS = 3
# Plain loss on the logits: the head output (compute dtype), HF's fp32 upcast (a no-op when
# training in fp32), cross-entropy's saved log-softmax and, in backward, the fp32 gradient: 3
# fp32 copies besides bf16 logits, 2 besides fp32 ones. Measured: 12.4 bytes/logit in fp32.
LOGIT_FP32_COPIES = 3
LOSS_KERNELS = ("chunked", "liger", "plain")
QLORA_BYTES = 0.52  # NF4 (0.5) + double-quantised absmax constants
# Allocator slack and transient buffers (matmul outputs before they are saved, the gradient
# of the layer being back-propagated) as a share of activations + logits; calibrated by
# bench/bench_train.py on the tiny models.
ALLOCATOR_SLACK = 0.05


@dataclass(frozen=True)
class Arch:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool

    @property
    def kv_width(self) -> int:
        return self.kv_heads * (self.hidden // self.heads)

    @property
    def block_linear_params(self) -> int:
        h, kv, i = self.hidden, self.kv_width, self.intermediate
        return self.layers * (2 * h * h + 2 * h * kv + 3 * h * i)

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2)

    @property
    def params(self) -> int:
        return self.block_linear_params + self.embedding_params + self.layers * 2 * self.hidden + self.hidden

    def lora_params(self, rank: int) -> int:
        h, kv, i = self.hidden, self.kv_width, self.intermediate
        per_layer = (h + h) + 2 * (h + kv) + (h + h) + 2 * (h + i) + (i + h)
        return self.layers * rank * per_layer


def arch_from_config(config: dict) -> Arch:
    text = config.get("text_config", config)
    return Arch(
        hidden=text["hidden_size"],
        layers=text["num_hidden_layers"],
        heads=text["num_attention_heads"],
        kv_heads=text.get("num_key_value_heads") or text["num_attention_heads"],
        intermediate=text["intermediate_size"],
        vocab=text["vocab_size"],
        tied=bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
    )


def arch_of(base_model: str | None, preset) -> Arch:
    """From a local base's config.json when there is one, else from the preset."""
    if base_model and (Path(base_model) / "config.json").is_file():
        return arch_from_config(json.loads((Path(base_model) / "config.json").read_text()))
    return arch_from_config(preset.arch)


@dataclass(frozen=True)
class Estimate:
    method: str
    weights: float
    grads: float
    optimizer: float
    activations: float
    logits: float
    overhead: float

    @property
    def total(self) -> float:
        return self.weights + self.grads + self.optimizer + self.activations + self.logits + self.overhead


def estimate(
    arch: Arch,
    method: str,
    tokens: int,
    gpus: int = 1,
    sharding: str = "none",
    precision: str = "bf16",
    checkpointing: bool = True,
    lora_rank: int = 64,
    device: str = "cuda",
    loss: str = "chunked",
    loss_chunk: int = 1024,
    sp: int = 1,
) -> Estimate:
    """Predicted peak bytes per device for one micro-step of `tokens` tokens (per sequence-parallel
    group: each of its `sp` GPUs holds tokens / sp of them)."""
    n = gpus if sharding in ("zero3", "zero3-offload", "fsdp") else 1
    w = 2 if precision == "bf16" else 4
    p = arch.params
    if method == "full":
        if sharding == "none" or gpus == 1 and sharding == "zero2":
            weights, grads, optimizer = p * w, p * w, 2 * p * w
        elif sharding == "zero2":
            weights, grads, optimizer = p * w, p * w / gpus, 12 * p / gpus
        else:
            weights, grads, optimizer = p * w / n, p * w / n, 12 * p / n
            if precision == "fp32":
                optimizer = 8 * p / n
        if sharding == "zero3-offload":
            optimizer = 0.0
    else:
        frozen = arch.block_linear_params * QLORA_BYTES + (p - arch.block_linear_params) * w if method == "qlora" else p * w
        adapter = arch.lora_params(lora_rank)
        weights = frozen / n + adapter * 4
        grads, optimizer = adapter * 4, adapter * 8
    a = w  # activations are kept in the compute dtype
    h, i, t = arch.hidden, arch.intermediate, -(-tokens // sp)
    # sdpa_varlen (no flash-attention: CPU) repeats k/v to every query head before attention
    kv = arch.hidden if device == "cpu" else arch.kv_width
    stream = LAYER_STREAM_FULL if method == "full" else LAYER_STREAM_FROZEN
    adapters = 0 if method == "full" else LORA_TARGETS_PER_LAYER * lora_rank
    layer = t * (stream * h + 2 * h + 2 * kv + LAYER_MLP * i + adapters) * a
    if checkpointing:  # every layer's input, plus one layer recomputed for its backward (measured: 1.07 layers)
        activations = arch.layers * t * h * a + layer
    else:
        activations = arch.layers * layer
    activations += OUTSIDE_LAYERS * t * h * a
    logits = loss_memory(arch, t, loss, a, head_trains=method == "full", chunk=loss_chunk)
    overhead = ALLOCATOR_SLACK * (activations + logits)
    if method == "qlora":
        # bnb dequantises the current weight to bf16 (forward and backward) and casts the
        # linear's input to the compute dtype and its output back: one layer's widest input
        # and output in both dtypes (measured +13 MiB at h=256, i=704, 4k tokens).
        overhead += 2 * max(h * i, h * h) * 2 + t * (h + i) * (a + 2)
    if n > 1:  # sharded weights are gathered: the layer computed, the one prefetched, and the embedding/head
        overhead += (2 * arch.block_linear_params / arch.layers + arch.vocab * h) * w
    if device == "cuda":
        overhead += CUDA_CONTEXT
    return Estimate(method, weights, grads, optimizer, activations, logits, overhead)


def loss_memory(arch: Arch, tokens: int, loss: str, a: int, head_trains: bool, chunk: int = 1024) -> float:
    """Bytes the loss holds at its peak besides the hidden states (see the module docstring)."""
    v, h, t = arch.vocab, arch.hidden, tokens
    if loss == "plain":
        return t * v * (a + 4 * (LOGIT_FP32_COPIES - (a == 4)))
    if loss == "liger":
        rows = 2 ** math.ceil(math.log2(max(1, math.ceil(t / math.ceil(v / h)))))  # Liger's chunk size
        return min(rows, t) * v * a + 2 * t * h * a + t * 4 + (v * h * a if head_trains else 0)
    if loss != "chunked":
        raise ValueError(f"unknown loss kernel {loss!r} (known: {', '.join(LOSS_KERNELS)})")
    rows = min(chunk, t)
    # fp32 logits (the gradient is formed in place) and, below fp32, the gradient in the compute dtype
    per_logit = 4 + (a if a != 4 else 0)
    weight_grad = v * h * (4 + (a if a != 4 else 0)) if head_trains else 0  # fp32 accumulator (+ bf16 chunk term)
    return rows * v * per_logit + 2 * t * h * a + t * 16 + weight_grad


def check_sequence_parallel(arch: Arch, sp: int, gpus: int, sharding: str) -> str | None:
    """Why `sp` cannot run with these GPUs and this model (None when it can). DeepSpeed's Ulysses
    splits attention heads over the sequence-parallel GPUs (ulysses_sp.UlyssesSPAttentionHF)."""
    if sp == 1:
        return None
    if sharding not in ("zero2", "zero3", "zero3-offload"):
        return f"sequence parallelism runs under DeepSpeed (sharding zero2, zero3 or zero3-offload), not {sharding}"
    if gpus % sp:
        return f"{gpus} GPUs are not a multiple of the sequence-parallel degree {sp}"
    if arch.heads % sp:
        return f"{arch.heads} attention heads do not split over {sp} GPUs"
    if arch.kv_heads % sp and sp % arch.kv_heads:
        return f"{arch.kv_heads} key/value heads and the sequence-parallel degree {sp} do not divide one another"
    return None


def grpo_estimate(arch: Arch, method: str, prompt_tokens: int, completions: int, completion_tokens: int, beta: float,
                  checkpointing: bool = False, lora_rank: int = 64, device: str = "cuda") -> Estimate:
    """Peak bytes per device of one GRPO micro-step (`distill grpo` on TRL's GRPOTrainer, one device).

    The update is a training step over every rollout of the micro-step at its full length (TRL
    computes the policy's log-probabilities from the whole logits: the plain loss). A full
    student with beta > 0 adds a bf16 reference copy (LoRA/QLoRA disable the adapter instead, and
    beta = 0 loads none). The rollouts come first, under no_grad: their KV cache (bf16, every
    layer, prompt + completion for each completion) and one step's fp32 logits count where they
    exceed what the update itself holds at its peak."""
    tokens = completions * (prompt_tokens + completion_tokens)
    update = estimate(arch, method, tokens, checkpointing=checkpointing, lora_rank=lora_rank, device=device, loss="plain")
    reference = arch.params * 2 if beta > 0 and method == "full" else 0.0
    rollout = 2 * arch.layers * arch.kv_width * 2 * tokens + completions * arch.vocab * 4
    extra = max(0.0, rollout - (update.activations + update.logits))
    return Estimate(method, update.weights + reference, update.grads, update.optimizer, update.activations, update.logits,
                    update.overhead + extra)


def plan(
    arch: Arch,
    tokens: int,
    gpus: int,
    gpu_memory_gib: float,
    sharding: str,
    checkpointing: bool = True,
    lora_rank: int = 64,
    loss: str = "chunked",
    loss_chunk: int = 1024,
    sp: int = 1,
) -> list[tuple[Estimate, bool]]:
    """Every method with whether it fits (10% headroom for fragmentation)."""
    rows = []
    for method in ("full", "lora", "qlora"):
        found = estimate(arch, method, tokens, gpus, sharding, "bf16", checkpointing, lora_rank,
                         loss=loss, loss_chunk=loss_chunk, sp=sp)
        rows.append((found, found.total * 1.1 <= gpu_memory_gib * GIB))
    return rows


def plan_table(rows: list[tuple[Estimate, bool]], title: str):
    """GiB per GPU for each method (narrow enough for an 80-column terminal)."""
    from rich.table import Table

    table = Table(title=title, caption="GiB per GPU; fits = total + 10% headroom <= GPU memory")
    for column in ("method", "weights", "grads", "optimizer", "activations", "logits", "other", "total", "fits"):
        table.add_column(column, justify="right" if column not in ("method", "fits") else "left")
    for found, fits in rows:
        cells = [found.weights, found.grads, found.optimizer, found.activations, found.logits, found.overhead, found.total]
        table.add_row(found.method, *(f"{value / GIB:.1f}" for value in cells), "yes" if fits else "[red]no[/red]")
    return table
