"""The six students DeepSeek distilled R1 into, as a plain registry.

A preset holds what a user would otherwise look up by hand: the base model id, the family's
training chat template and special tokens, how to treat the context window, default
hyperparameters for its size, and the method and GPU count that fit (see planner.py).

The architecture numbers (`arch`) let the planner work before anything is downloaded; they
are copied from each base's config.json. With `--base-model PATH` the planner reads the real
config.json instead.

Context handling (decided here, applied by train.py): the Qwen2.5-Math bases ship a 4k window
(max_position_embeddings 4096, rope_theta 10000). DeepSeek's released distills kept rope_theta
10000 and only raised max_position_embeddings to 131072, so positions past 4k were never seen
in pre-training and have to be learned from SFT alone. open-r1 raised rope_theta to 300k to
train at 32k, which stretches the rotary wavelengths so long positions look like trained ones.
We follow open-r1: when max_length exceeds a base's native window, rope_theta becomes
`long_rope_theta` and max_position_embeddings becomes max(max_length, 32768). Both values go
into the run's config.json and train.json. Bases whose window already covers max_length are
left untouched.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Family = Literal["qwen", "llama"]
Method = Literal["full", "lora", "qlora"]


class StudentPreset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    model_id: str = Field(description="Hugging Face id of the base model.")
    family: Family
    template: str = Field(description="Training chat template (students/templates.py).")
    pad_token: str = Field(description="Padding token; never the eos token.")
    native_context: int = Field(description="The base's trained context window (tokens).")
    long_rope_theta: float | None = Field(description="rope_theta used when training past the native window.")
    max_length: int = Field(description="Default longest training sequence (longer ones are dropped).")
    learning_rate: float
    epochs: int
    global_batch: int = Field(description="Packed sequences per optimizer step, over all GPUs.")
    method: Method = Field(description="Method that fits the recommended GPUs.")
    gpus: int = Field(description="Recommended number of 80 GB GPUs for `method`.")
    accelerate: str = Field(description="Recommended accelerate config (students/accelerate/).")
    sequence_parallel: int = Field(default=1, description="GPUs sharing each sequence (Ulysses) for `max_length` to fit.")
    arch: dict[str, Any] = Field(description="config.json fields the planner needs.")


def _arch(hidden: int, layers: int, heads: int, kv_heads: int, intermediate: int, vocab: int, tied: bool) -> dict[str, Any]:
    return {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "intermediate_size": intermediate,
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
    }


# Hyperparameters follow the public reproductions (open-r1 OpenR1-Distill-7B, Bespoke/Sky-T1,
# DeepSeek's report): lr 1e-5..4e-5 smaller for bigger models, 3-5 epochs, cosine with warmup,
# global batch ~128 sequences of up to 32k tokens (R1's traces run that long; longer ones are
# dropped). max_length, method, GPU count and sequence parallelism are what the planner says
# fits 80 GB GPUs with the chunked loss (students/loss.py; the full logits of a 32k micro-step
# alone would take ~65 GB): the 32B and 70B students split each sequence over 2 GPUs (Ulysses,
# zero3-sp). The 70B student also runs on ONE 80 GB GPU with --qlora --max-length 8192.
STUDENTS: dict[str, StudentPreset] = {
    preset.name: preset
    for preset in [
        StudentPreset(
            name="qwen-1.5b", model_id="Qwen/Qwen2.5-Math-1.5B", family="qwen", template="chatml",
            pad_token="<|endoftext|>", native_context=4096, long_rope_theta=300000.0, max_length=32768,
            learning_rate=4e-5, epochs=5, global_batch=128, method="full", gpus=1, accelerate="ddp",
            arch=_arch(1536, 28, 12, 2, 8960, 151936, True),
        ),
        StudentPreset(
            name="qwen-7b", model_id="Qwen/Qwen2.5-Math-7B", family="qwen", template="chatml",
            pad_token="<|endoftext|>", native_context=4096, long_rope_theta=300000.0, max_length=32768,
            learning_rate=4e-5, epochs=5, global_batch=128, method="full", gpus=8, accelerate="zero3",
            arch=_arch(3584, 28, 28, 4, 18944, 152064, False),
        ),
        StudentPreset(
            name="qwen-14b", model_id="Qwen/Qwen2.5-14B", family="qwen", template="chatml",
            pad_token="<|endoftext|>", native_context=131072, long_rope_theta=None, max_length=32768,
            learning_rate=2e-5, epochs=3, global_batch=128, method="full", gpus=16, accelerate="zero3",
            arch=_arch(5120, 48, 40, 8, 13824, 152064, False),
        ),
        StudentPreset(
            name="qwen-32b", model_id="Qwen/Qwen2.5-32B", family="qwen", template="chatml",
            pad_token="<|endoftext|>", native_context=131072, long_rope_theta=None, max_length=32768,
            learning_rate=1e-5, epochs=3, global_batch=96, method="full", gpus=16, accelerate="zero3-sp", sequence_parallel=2,
            arch=_arch(5120, 64, 40, 8, 27648, 152064, False),
        ),
        StudentPreset(
            name="llama-8b", model_id="meta-llama/Llama-3.1-8B", family="llama", template="llama3",
            pad_token="<|finetune_right_pad_id|>", native_context=131072, long_rope_theta=None, max_length=32768,
            learning_rate=2e-5, epochs=3, global_batch=128, method="full", gpus=8, accelerate="zero3",
            arch=_arch(4096, 32, 32, 8, 14336, 128256, False),
        ),
        StudentPreset(
            name="llama-70b", model_id="meta-llama/Llama-3.3-70B-Instruct", family="llama", template="llama3",
            pad_token="<|finetune_right_pad_id|>", native_context=131072, long_rope_theta=None, max_length=32768,
            learning_rate=1e-5, epochs=3, global_batch=96, method="qlora", gpus=8, accelerate="zero3-sp", sequence_parallel=2,
            arch=_arch(8192, 80, 64, 8, 28672, 128256, False),
        ),
    ]
}
