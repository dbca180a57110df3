"""Several training sources mixed by shares: R1 trained its 600k reasoning and 200k non-reasoning
samples together (`--data kept.jsonl --data general.jsonl --mix 0.75,0.25`).

- The total is `mix_size`, or by default the largest set that keeps the shares without
  repeating any source (so the scarcest source relative to its share sets it).
- Counts per source: the shares of the total, rounded by largest remainder (they sum to the total).
- A source asked for more conversations than it has is repeated whole as often as needed, the
  rest drawn at random; the repeats are counted and reported, never silent.
- Everything is drawn with `random.Random(seed)` per source, so a run is reproducible; without
  shares (`--data` given several times, no `--mix`) the sources are simply concatenated.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any


@dataclass
class Drawn:
    path: str
    weight: float | None
    available: int
    used: int = 0
    repeated: int = 0  # conversations used a second (third...) time to reach the share

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "weight": self.weight, "available": self.available, "used": self.used, "repeated": self.repeated}


def apportion(total: int, weights: list[float]) -> list[int]:
    """`total` split by `weights` (largest remainder: the counts sum to `total`)."""
    exact = [total * w / sum(weights) for w in weights]
    counts = [math.floor(x) for x in exact]
    for index in sorted(range(len(weights)), key=lambda i: exact[i] - counts[i], reverse=True)[: total - sum(counts)]:
        counts[index] += 1
    return counts


def largest_total(sizes: list[int], weights: list[float]) -> int:
    """The largest total whose apportioned counts fit every source without repeating one."""
    shares = [w / sum(weights) for w in weights]
    total = min(math.floor(size / share) for size, share in zip(sizes, shares, strict=True))
    while total > 0 and any(c > s for c, s in zip(apportion(total, weights), sizes, strict=True)):
        total -= 1  # rounding can push one source a conversation over
    return total


def mix(sources: list[tuple[str, float | None, list]], size: int | None, seed: int) -> tuple[list, list[Drawn]]:
    """(mixed items, what was drawn from each source). `sources`: (path, weight or None, items)."""
    weights = [weight for _, weight, _ in sources]
    drawn = [Drawn(path, weight, len(items)) for path, weight, items in sources]
    if any(w is None for w in weights):  # no shares: every source once, in order
        counts = [len(items) for _, _, items in sources]
    else:
        total = size if size is not None else largest_total([len(items) for _, _, items in sources], weights)
        counts = apportion(total, weights)
    mixed: list = []
    for index, ((_, _, items), count) in enumerate(zip(sources, counts, strict=True)):
        rng = random.Random(f"{seed}:{index}")
        order = list(range(len(items)))
        picked: list[int] = []
        while len(picked) < count:  # whole passes first, then a random part of one more
            rng.shuffle(order)
            picked += order[: count - len(picked)]
        drawn[index].used = count
        drawn[index].repeated = max(0, count - len(items))
        mixed += [items[i] for i in picked]
    random.Random(seed).shuffle(mixed)
    return mixed, drawn


def describe(drawn: list[Drawn]) -> str:
    """One line for train.json's `data` and the model card: each source with its share and counts."""
    parts = []
    for source in drawn:
        share = f"{100 * source.weight:g}%, " if source.weight is not None else ""
        repeated = f", {source.repeated} repeated" if source.repeated else ""
        parts.append(f"{source.path} ({share}{source.used} of {source.available}{repeated})")
    return " + ".join(parts)
