"""Rendering, label masks, packing and packed-sample isolation on the tiny models."""

from __future__ import annotations

import json

import pytest
import torch

from distill.core.errors import InputError
from students.dataset import best_fit_packs, collate_packed, conversation_of, load_conversations, tokenize
from students.templates import TEMPLATES, prepare_tokenizer

CASES = [("tiny_qwen", "chatml", "<|endoftext|>"), ("tiny_llama", "llama3", "<|finetune_right_pad_id|>"),
         ("tiny_qwen", "r1", "<|endoftext|>")]


def _tokenizer(path, template, pad):
    from transformers import AutoTokenizer

    return prepare_tokenizer(AutoTokenizer.from_pretrained(path), TEMPLATES[template], pad)


def _real_example(shared_data):
    row = json.loads((shared_data / "traces" / "sky-t1-27b_math500.jsonl").open().readline())
    return [{"role": "user", "content": row["question"]}, {"role": "assistant", "content": row["code"][0]}]


@pytest.mark.parametrize("fixture,template,pad", CASES)
def test_label_mask_is_exactly_the_assistant_turn(request, shared_data, fixture, template, pad):
    tokenizer = _tokenizer(request.getfixturevalue(fixture), template, pad)
    messages = _real_example(shared_data)
    ids, labels = tokenize(tokenizer, messages)
    kept = [label for label in labels if label != -100]
    # The masked-in tokens are one contiguous run: the assistant content plus its closing eos.
    first = next(i for i, label in enumerate(labels) if label != -100)
    assert labels[first:first + len(kept)] == kept == ids[first:first + len(kept)]
    assert tokenizer.decode(kept) == messages[1]["content"] + TEMPLATES[template].eos_token
    assert kept[-1] == tokenizer.eos_token_id != tokenizer.pad_token_id
    assert messages[0]["content"] in tokenizer.decode(ids[:first])  # prompt present, not trained on
    bos = TEMPLATES[template].bos_token
    if bos:
        assert ids.count(tokenizer.convert_tokens_to_ids(bos)) == 1 and ids[0] == tokenizer.convert_tokens_to_ids(bos)


def test_llama_tokenizer_would_double_bos_when_retokenised(tiny_llama):
    """Why ids come from apply_chat_template: encoding the rendered text adds a second BOS."""
    tokenizer = _tokenizer(tiny_llama, "llama3", "<|finetune_right_pad_id|>")
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert tokenizer(text)["input_ids"].count(tokenizer.bos_token_id) == 2
    assert tokenize(tokenizer, messages)[0].count(tokenizer.bos_token_id) == 1


def test_missing_template_tokens_and_pad_equal_eos_are_errors(tiny_llama, tiny_qwen):
    from transformers import AutoTokenizer

    with pytest.raises(InputError, match="has no <\\|im_start\\|>"):
        _tokenizer(tiny_llama, "chatml", "<|endoftext|>")
    with pytest.raises(InputError, match="pad token equals eos"):
        prepare_tokenizer(AutoTokenizer.from_pretrained(tiny_qwen), TEMPLATES["chatml"], "<|im_end|>")


def test_conversation_building_and_row_errors(tmp_path):
    row = {"problem_id": "p", "id": "p#0", "sample_index": 0, "problem": "Q?", "completion": "r\n</think>\n\nA"}
    assert conversation_of(row, "x")[1]["content"] == "<think>\nr\n</think>\n\nA"
    assert conversation_of({**row, "rejected_by": "math"}, "x") is None
    assert conversation_of({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}, "x")
    with pytest.raises(InputError, match="f.jsonl:3: field 'completion'"):
        conversation_of({"problem_id": "p", "id": "p#0", "sample_index": 0, "problem": "Q?"}, "f.jsonl:3")
    with pytest.raises(InputError, match="field 'messages'"):
        conversation_of({"messages": [{"role": "user", "content": "q"}]}, "x")
    rejected = tmp_path / "rejected.jsonl"
    rejected.write_text(json.dumps({**row, "rejected_by": "math"}) + "\n")
    with pytest.raises(InputError, match="no usable rows"):
        load_conversations(rejected)


def test_best_fit_packs_are_complete_within_capacity_and_tight():
    import random

    rng = random.Random(0)
    lengths = [rng.randint(1, 100) for _ in range(500)]
    packs = best_fit_packs(lengths, 128)
    assert sorted(i for pack in packs for i in pack) == list(range(500))
    assert all(sum(lengths[i] for i in pack) <= 128 for pack in packs)
    assert len(packs) <= -(-sum(lengths) // 128) * 1.05  # within 5% of the lower bound
    assert packs == best_fit_packs(lengths, 128)  # deterministic (resume relies on it)
    with pytest.raises(ValueError):
        best_fit_packs([10, 200], 128)


@pytest.mark.parametrize("fixture", ["tiny_qwen", "tiny_llama"])
@pytest.mark.parametrize("attention", ["sdpa_varlen", "sdpa", "eager"])
def test_packed_sample_logits_equal_its_logits_alone(request, fixture, attention):
    from transformers import AutoModelForCausalLM

    from distill.core.attention import register

    register()
    path = request.getfixturevalue(fixture)
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attention, dtype=torch.float32).eval()
    model.config.use_cache = False
    generator = torch.Generator().manual_seed(0)
    samples = [torch.randint(10, 400, (n,), generator=generator).tolist() for n in (37, 20, 51)]
    items = [{"input_ids": s, "labels": s, "position_ids": list(range(len(s)))} for s in samples]
    packed = collate_packed(items)
    assert "attention_mask" not in packed
    with torch.no_grad():
        together = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"]).logits[0]
        start = 0
        for sample in samples:
            alone = model(input_ids=torch.tensor([sample])).logits[0]
            assert torch.allclose(together[start:start + len(sample)], alone, atol=1e-4), f"sample at {start} saw its neighbours"
            start += len(sample)
        # Control: the same row read as one sequence differs, so the test can fail.
        merged = model(input_ids=packed["input_ids"]).logits[0]
        assert not torch.allclose(merged[37:57], together[37:57], atol=1e-3)


def test_sdpa_varlen_builds_no_mask_and_matches_sdpa_on_padded_batches(tiny_qwen):
    """The packed path never materialises an L x L mask; padded batches (2D attention mask) and
    the backward pass give what stock sdpa gives."""
    from transformers import AutoModelForCausalLM
    from transformers.masking_utils import create_causal_mask

    from distill.core.attention import register

    models = {name: AutoModelForCausalLM.from_pretrained(tiny_qwen, attn_implementation=name, dtype=torch.float32)
              for name in (register(), "sdpa")}
    varlen, sdpa = models["sdpa_varlen"], models["sdpa"]
    for model in models.values():
        model.config.use_cache = False  # as in training: a cache hides the packing from stock sdpa
    positions = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]])
    embeds = torch.zeros(1, 9, varlen.config.hidden_size)
    assert create_causal_mask(varlen.config, embeds, None, None, position_ids=positions) is None
    assert create_causal_mask(sdpa.config, embeds, None, None, position_ids=positions).shape == (1, 1, 9, 9)

    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    with torch.no_grad():
        padded = [model(input_ids=ids, attention_mask=mask).logits for model in (varlen, sdpa)]
    assert torch.allclose(padded[0][mask.bool()], padded[1][mask.bool()], atol=1e-5)

    packed = collate_packed([{"input_ids": s, "labels": s, "position_ids": list(range(len(s)))}
                             for s in ([5, 6, 7, 8], [9, 10, 11], [12, 13, 14, 15, 16])])
    grads = []
    for model in (varlen, sdpa):
        model.zero_grad()
        model(**packed).loss.backward()
        grads.append(model.model.layers[0].self_attn.q_proj.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-5)
