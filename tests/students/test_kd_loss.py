"""The KD loss (`students.loss.kd_chunk_loss` through `causal_lm_loss`): a hand-computed value,
cross-entropy when the teacher is one-hot on the label, and the closed-form gradient against
autograd over the full logits."""

from __future__ import annotations

import math

import pytest
import torch

from students.loss import causal_lm_loss, kd_chunk_loss

NEG = float("-inf")


def direct(logits, labels, top_ids, top_lps, alpha, temperature):
    """The same objective written plainly over full logits (autograd gives its gradient)."""
    logits, labels, top_ids, top_lps = logits[:-1], labels[1:], top_ids[1:], top_lps[1:]  # next-token targets
    total = logits.new_zeros(())
    count = 0
    vocab = logits.shape[1]
    for row, label, ids, lps in zip(logits, labels, top_ids, top_lps, strict=True):
        if label == -100:
            continue
        count += 1
        ce = -torch.log_softmax(row, 0)[label]
        valid = ids >= 0
        if not valid.any():
            total = total + ce
            continue
        ids, lps = ids[valid], lps[valid].double()
        rest = max(0.0, 1 - lps.exp().sum().item())
        q = (lps / temperature).exp()
        tail = (vocab - len(ids)) ** (1 - 1 / temperature) * rest ** (1 / temperature)
        z = q.sum() + tail
        q, tail = q / z, tail / z
        p = torch.softmax(row / temperature, 0)
        p_top = p[ids]
        p_tail = 1 - p_top.sum()
        kl = (q * (q.log() - p_top.log())).sum() + (tail * (math.log(tail) - p_tail.log()) if tail > 0 else 0)
        total = total + (1 - alpha) * ce + alpha * temperature**2 * kl
    return total / count


def kd_loss(hidden, weight, labels, top_ids, top_lps, alpha, temperature, chunk_size=3):
    return causal_lm_loss(hidden[None], weight, labels[None], chunk_size=chunk_size,
                          chunk_loss=kd_chunk_loss(alpha, temperature), teacher=(top_ids[None], top_lps[None]))


def test_hand_computed_value():
    # vocab 4, one target token (label 2); student logits [0, ln 2, ln 3, ln 4] -> p = [.1, .2, .3, .4]
    # teacher top-2: token 2 at 0.5, token 3 at 0.3; the tail (tokens 0 and 1) has 0.2
    # KL = .5 ln(.5/.3) + .3 ln(.3/.4) + .2 ln(.2/.3); CE = -ln .3; alpha .5 -> the mean of the two
    weight = torch.eye(4)
    hidden = torch.tensor([[0.0, math.log(2), math.log(3), math.log(4)], [0.0, 0.0, 0.0, 0.0]])
    labels = torch.tensor([-100, 2])
    top_ids = torch.tensor([[-1, -1], [2, 3]])
    top_lps = torch.tensor([[NEG, NEG], [math.log(0.5), math.log(0.3)]], dtype=torch.float16)
    kl = 0.5 * math.log(0.5 / 0.3) + 0.3 * math.log(0.3 / 0.4) + 0.2 * math.log(0.2 / 0.3)
    expected = 0.5 * -math.log(0.3) + 0.5 * kl
    assert kd_loss(hidden, weight, labels, top_ids, top_lps, 0.5, 1.0).item() == pytest.approx(expected, abs=2e-3)  # fp16 log-probabilities


@pytest.mark.parametrize("alpha", [0.3, 1.0])
def test_one_hot_teacher_on_the_label_is_cross_entropy(alpha):
    torch.manual_seed(0)
    hidden, weight = torch.randn(9, 8), torch.randn(50, 8)
    labels = torch.randint(0, 50, (9,))
    top_ids = torch.full((9, 4), -1)
    top_ids[:, 0] = labels  # log-probability 0: all the teacher's mass on the token it sampled
    top_lps = torch.full((9, 4), NEG, dtype=torch.float16)
    top_lps[:, 0] = 0
    plain = torch.nn.functional.cross_entropy((hidden @ weight.t())[:-1], labels[1:])
    assert kd_loss(hidden, weight, labels, top_ids, top_lps, alpha, 1.0).item() == pytest.approx(plain.item(), rel=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_value_and_gradients_match_a_direct_computation(temperature):
    torch.manual_seed(1)
    length, vocab, k = 11, 40, 5
    hidden = torch.randn(length, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(vocab, 16, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, vocab, (length,))
    labels[:3] = -100  # the prompt
    teacher_logits = torch.randn(length, vocab) * 2
    top = torch.log_softmax(teacher_logits, 1).topk(k, 1)
    top_ids, top_lps = top.indices.clone(), top.values.to(torch.float16)
    top_ids[5, 3:] = -1  # a position with fewer alternatives
    top_lps[5, 3:] = NEG
    top_ids[-1] = -1  # the student's own closing token: no teacher distribution, CE only
    top_lps[-1] = NEG

    loss = kd_loss(hidden, weight, labels, top_ids, top_lps, 0.7, temperature)
    loss.backward()
    grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    reference = direct(hidden @ weight.t(), labels, top_ids, top_lps.float(), 0.7, temperature)
    reference.backward()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    # the head runs its logits in fp32: agreement to ~1e-7
    assert torch.allclose(grads[0], hidden.grad, atol=1e-6) and torch.allclose(grads[1], weight.grad, atol=1e-6)
