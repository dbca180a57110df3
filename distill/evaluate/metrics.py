"""Estimators for reasoning benchmarks, as the DeepSeek-R1 paper reports them.

Each problem gets k samples. Per problem:
- pass@1  = mean correctness over the k samples (an unbiased estimate of single-sample accuracy;
            far less noisy than one greedy sample on a 30-problem benchmark like AIME).
- cons@k  = correctness of the majority-vote answer among the k samples.
- pass@k  = at least one of the k samples is correct.
Benchmark scores are the means over problems.

Majority vote: samples without an extracted answer do not vote. Answers are grouped by the
checker's normalised string (`distill.core.verify.normalise`: layout-only differences such as
"dfrac" vs "frac" or spaces do not split votes) and, where a `same` function is given, by
mathematical equivalence with a group's first answer. Tie rule: among groups with equally many votes the
group whose first member came earliest (lowest sample index) wins. That keeps cons@k
deterministic for a given set of samples (no random tie-break), and with k=1 it reduces to
pass@1. A problem where no sample produced an answer scores 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import comb

from distill.core.verify import normalise


@dataclass(frozen=True)
class Sample:
    """One graded sample: the answer it gave (None when none could be extracted) and its verdict."""

    answer: str | None
    correct: bool


@dataclass(frozen=True)
class Vote:
    answer: str | None  # the winning answer (None when no sample answered)
    votes: int  # how many samples gave it
    correct: bool  # whether the winning group is correct
    groups: int  # number of distinct answers


def pass_at_1(samples: Sequence[Sample]) -> float:
    """Mean correctness over the samples (0 for no samples)."""
    return sum(s.correct for s in samples) / len(samples) if samples else 0.0


def pass_at_k(samples: Sequence[Sample], k: int | None = None) -> float:
    """Unbiased pass@k (Chen et al. 2021) from n >= k samples; k defaults to n (any correct)."""
    n = len(samples)
    k = n if k is None else k
    if n == 0 or k <= 0:
        return 0.0
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    correct = sum(s.correct for s in samples)
    if n - correct < k:
        return 1.0
    return 1.0 - comb(n - correct, k) / comb(n, k)


def majority_vote(samples: Sequence[Sample], same: Callable[[str, str], bool] | None = None) -> Vote:
    """The most common answer among the samples (tie rule: earliest first occurrence wins).

    A group is correct when any of its members was graded correct: members are equivalent
    answers, and the checker may accept one spelling where a string comparison failed.
    """
    groups: list[tuple[str, str, list[Sample]]] = []  # (key, first answer, members), in first-seen order
    by_key: dict[str, int] = {}
    for sample in samples:
        if sample.answer is None or not sample.answer.strip():
            continue
        key = normalise(sample.answer)
        index = by_key.get(key)
        if index is None and same is not None:
            index = next((i for i, (_, first, _) in enumerate(groups) if same(first, sample.answer)), None)
        if index is None:
            index = len(groups)
            groups.append((key, sample.answer, []))
        by_key[key] = index
        groups[index][2].append(sample)
    if not groups:
        return Vote(answer=None, votes=0, correct=False, groups=0)
    # max() keeps the first of equal maxima, and groups are in first-seen order: the tie rule.
    _, first, members = max(groups, key=lambda group: len(group[2]))
    return Vote(answer=first, votes=len(members), correct=any(s.correct for s in members), groups=len(groups))


def cons_at_k(samples: Sequence[Sample], same: Callable[[str, str], bool] | None = None) -> float:
    return 1.0 if majority_vote(samples, same).correct else 0.0


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def stderr(values: Sequence[float]) -> float:
    """Standard error of the mean over problems (sample standard deviation / sqrt(n); 0 below two values)."""
    n = len(values)
    if n < 2:
        return 0.0
    centre = mean(values)
    return (sum((x - centre) ** 2 for x in values) / (n - 1)) ** 0.5 / n**0.5


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) with linear interpolation between the nearest ranks."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
