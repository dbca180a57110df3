"""Tiny offline models: real Qwen2 and Llama architectures with random weights, and a byte-level
BPE tokenizer trained on the spot.

No model hub is reachable in tests or in the quickstart, so these stand in for the real
bases. They are saved with `save_pretrained` and loaded back with `from_pretrained` on a path:
the loading code under test is the real one. The tokenizers copy the conventions of the real
bases, including their traps: the Qwen2.5 base uses its eos as pad, the Llama-3 base adds a
BOS on every encode and has no pad token.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# R1-distill-style template: reasoning of earlier assistant turns is dropped, and the
# generation prompt opens the reasoning with "<think>\n" as DeepSeek recommends.
R1_CHAT_TEMPLATE = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}<｜User｜>{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}{% set content = message['content'] %}"
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1].lstrip() %}{% endif %}"
    "<｜Assistant｜>{{ content }}<｜end▁of▁sentence｜>"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<｜Assistant｜><think>\n{% endif %}"
)

R1_TOKENS = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<｜▁pad▁｜>"]
QWEN_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
LLAMA_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|finetune_right_pad_id|>"]
THINK_TOKENS = ["<think>", "</think>"]

DEFAULT_CORPUS = [
    "Please reason step by step, and put your final answer within \\boxed{}.",
    "Let me think about this problem carefully. First, we add the two numbers.",
    "The answer is \\boxed{42}. So the final answer is 42.",
    "What is 12 plus 30? We compute 12 + 30 = 42, then check the result.",
    "Wait, let me double-check: 7 times 6 is 42, which matches.",
    "The quick brown fox jumps over the lazy dog. 0 1 2 3 4 5 6 7 8 9",
    "def solve(x):\n    return x * 2\nprint(solve(21))",
    "首先，我们计算这个数字。然后检查答案。",
]


def build_tokenizer(family: str = "qwen", corpus: Iterable[str] | None = None, vocab_size: int = 512):
    """A byte-level BPE tokenizer with the family's special tokens and conventions."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if family not in ("qwen", "llama"):
        raise ValueError(f"unknown family {family!r} (qwen or llama)")
    specials = (QWEN_TOKENS if family == "qwen" else LLAMA_TOKENS) + R1_TOKENS
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(corpus or DEFAULT_CORPUS), trainer)
    # <think> tags are ordinary added tokens in the R1 distills: they survive decoding.
    backend.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in THINK_TOKENS])
    if family == "llama":
        bos = "<|begin_of_text|>"
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, backend.token_to_id(bos))]
        )
        names = {"bos_token": bos, "eos_token": "<|end_of_text|>"}
    else:
        names = {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, chat_template=R1_CHAT_TEMPLATE, model_max_length=131072, **names)
    return tokenizer


def build_model(
    out_dir: str | Path,
    family: str = "qwen",
    corpus: Iterable[str] | None = None,
    vocab_size: int = 512,
    hidden_size: int = 128,
    layers: int = 2,
    heads: int = 2,
    kv_heads: int = 1,
    intermediate_size: int = 256,
    max_positions: int = 4096,
    seed: int = 0,
) -> Path:
    """Save a random-weight causal LM and its tokenizer under `out_dir`; returns the path.

    head_dim is hidden_size / heads; keep it at 64 or more (vLLM's CPU attention rejects 16).
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, Qwen2Config

    out = Path(out_dir)
    tokenizer = build_tokenizer(family, corpus, vocab_size)
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = Qwen2Config(**common) if family == "qwen" else LlamaConfig(**common, head_dim=hidden_size // heads)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # Stop at either end-of-turn marker the templates use, as the real instruct configs do.
    stops = sorted({tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<｜end▁of▁sentence｜>")})
    model.generation_config = GenerationConfig(eos_token_id=stops, bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
