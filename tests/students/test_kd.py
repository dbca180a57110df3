"""`train --objective kd`: examples on the teacher's recorded ids, the model's loss through the chunked
head equal to a direct computation, real training whose loss goes down, and the tokenizer check
(R1-Distill-Qwen vs Qwen2.5 adopted with one line, anything else refused)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from distill.core import logprobs
from distill.core.errors import InputError
from students.kd import check_tokenizers, kd_example, load_kd_records

from .conftest import tiny_config, write_kept

K = 4
R1_IDS = {151643: "<｜end▁of▁sentence｜>", 151644: "<｜User｜>", 151645: "<｜Assistant｜>", 151646: "<｜begin▁of▁sentence｜>",
          151647: "<|EOT|>", 151648: "<think>", 151649: "</think>"}


def write_kd_data(path, tokenizer_dir, seed: int = 0):
    """Kept traces + a side file as `generate --logprobs 4` writes it: the completion's ids as the teacher's
    tokenizer has them, and a sharp top-4 (most mass on the sampled token, the rest on other tokens)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    write_kept(path)
    rows = [json.loads(line) for line in path.read_text().split("\n") if line]
    rng = np.random.default_rng(seed)
    frames = []
    for row in rows:
        row["teacher"] = {"model": str(tokenizer_dir), "logprobs": K, "think_prefill": "<think>\n"}
        row["completion"] = "<think>\n" + row["completion"]
        ids = tokenizer.encode(row["completion"].removeprefix("<think>\n"), add_special_tokens=False) + [tokenizer.convert_tokens_to_ids("<|im_end|>")]
        others = rng.integers(0, len(tokenizer), (len(ids), K - 1))
        top_ids = np.concatenate([np.array(ids)[:, None], others], axis=1)
        top_lps = np.log(np.array([[0.8, 0.1, 0.05, 0.02]] * len(ids)))
        frames.append(logprobs.encode(row["id"], logprobs.TokenLogprobs.build(ids, top_lps[:, 0], top_ids, top_lps, K)))
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    logprobs.side_path(path).write_bytes(b"".join(frames))
    return path


def test_the_models_kd_loss_equals_a_direct_computation_on_full_logits(tiny_qwen, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from students.dataset import PackedDataset, collate_packed
    from students.loss import use_chunked_loss
    from students.templates import TEMPLATES, prepare_tokenizer

    data = write_kd_data(tmp_path / "kept.jsonl", tiny_qwen)
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(tiny_qwen), TEMPLATES["chatml"], "<|endoftext|>")
    records = load_kd_records(str(data)).records[:3]
    examples = [kd_example(tokenizer, "<|im_end|>", trace, lp) for trace, lp in records]
    ids, labels, top_ids, _ = examples[0]
    assert ids[-len(records[0][1]):] == records[0][1].ids.tolist()  # the teacher's ids, its own <|im_end|> last
    assert tokenizer.decode(ids[labels.index(next(x for x in labels if x != -100)):]) == records[0][0].completion + "<|im_end|>"
    assert (top_ids[: -len(records[0][1])] == -1).all()  # prompt and prefill: no teacher distribution

    batch = collate_packed([PackedDataset(examples, 4096)[0]])
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen, dtype=torch.float32)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0].double()
    use_chunked_loss(model, chunk_size=16, kd=(0.5, 2.0))
    loss = model(**batch).loss
    # direct: next-token targets over the full logits
    target, t_ids, t_lps = batch["labels"][0, 1:], batch["teacher_ids"][0, 1:], batch["teacher_logprobs"][0, 1:].double()
    total, count = 0.0, 0
    for row, label, ids_k, lps_k in zip(logits[:-1], target, t_ids, t_lps, strict=True):
        if label == -100:
            continue
        count += 1
        ce = -torch.log_softmax(row, 0)[label]
        if ids_k[0] < 0:
            total += ce
            continue
        q = (lps_k / 2).exp()
        tail = (len(row) - K) ** 0.5 * (1 - lps_k.exp().sum()).clamp(min=0) ** 0.5
        z = q.sum() + tail
        q, tail = q / z, tail / z
        p = torch.softmax(row / 2, 0)
        kl = (q * (q.log() - p[ids_k].log())).sum() + tail * (tail.log() - (1 - p[ids_k].sum()).log())
        total += 0.5 * ce + 0.5 * 4 * kl
    assert loss.item() == pytest.approx((total / count).item(), rel=1e-4)


@pytest.mark.slow
def test_kd_training_loss_goes_down(tiny_qwen, tmp_path):
    from students.train import run

    data = write_kd_data(tmp_path / "kept.jsonl", tiny_qwen)
    summary = run(tiny_config(tiny_qwen, data, tmp_path / "run", objective="kd", kd_alpha=0.5, max_steps=16))
    losses = [loss for _, loss in summary["metrics"]["train_loss_curve"]]
    assert len(losses) == 16 and all(math.isfinite(x) for x in losses)
    assert sum(losses[-3:]) / 3 < 0.6 * sum(losses[:3]) / 3, losses
    assert summary["config"]["objective"] == "kd" and summary["loss_kernel"] == "chunked"
    assert (tmp_path / "run" / "final" / "config.json").exists()


def test_kd_without_recorded_logprobs_is_one_line(tiny_qwen, tmp_path):
    data = write_kept(tmp_path / "kept.jsonl")
    with pytest.raises(InputError, match="needs the teacher's log-probabilities"):
        load_kd_records(str(data))


def test_kd_refuses_other_loss_kernels(tiny_qwen, tmp_path):
    from students.train import run

    data = write_kd_data(tmp_path / "kept.jsonl", tiny_qwen)
    with pytest.raises(InputError, match="chunked loss"):
        run(tiny_config(tiny_qwen, data, tmp_path / "run", objective="kd", loss_kernel="plain"))


# ---------------------------------------------------------------------------- tokenizers


def r1_distill_tokenizer():
    """Qwen2.5's tokenizer with R1-Distill-Qwen's tokens at 151643-151649 (<think> at 151648...)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from distill.quickstart.tiny import released_tokenizer

    doc = json.loads(released_tokenizer("qwen").backend_tokenizer.to_str())
    for token in doc["added_tokens"]:
        token["content"] = R1_IDS.get(token["id"], token["content"])
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(doc)), eos_token="<｜end▁of▁sentence｜>")


def test_r1_distill_teacher_and_qwen25_student_share_the_teachers_tokenizer():
    from distill.quickstart.tiny import released_tokenizer

    student, teacher = released_tokenizer("qwen"), r1_distill_tokenizer()
    ids = np.array([15, 2000, 151643, 151648, 151649])
    note = check_tokenizers(teacher, student, ids, 152064)
    assert "takes the teacher's tokenizer" in note and "151643: '<｜end▁of▁sentence｜>' vs '<|endoftext|>'" in note
    assert check_tokenizers(teacher, student, ids[:2], 152064) is None  # only ordinary ids recorded: nothing differs


def test_other_mismatches_are_refused_naming_the_first_ids(tiny_qwen, tiny_llama):
    from transformers import AutoTokenizer

    teacher, student = AutoTokenizer.from_pretrained(tiny_llama), AutoTokenizer.from_pretrained(tiny_qwen)
    ids = np.arange(50, 400)
    with pytest.raises(InputError, match=r"tokenizers differ on \d+ recorded token ids, first \d+: "):
        check_tokenizers(teacher, student, ids, 100000)
    with pytest.raises(InputError, match="past the student's 300 embeddings"):
        check_tokenizers(student, student, ids, 300)
