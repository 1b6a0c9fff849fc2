"""Uniform sampling of distinct chromosomes, bounded (random search's sampler)."""
from __future__ import annotations

import itertools
import math
from typing import AbstractSet

import numpy as np

__all__ = ["sample_unique_rows"]

#: Below this many chromosomes, the unseen ones are enumerated once rejection sampling stalls.
ENUMERATION_LIMIT = 200_000
_REJECTION_ROUNDS = 32


def sample_unique_rows(
    sizes: np.ndarray, n: int, rng: np.random.Generator, seen: AbstractSet[tuple[int, ...]] = frozenset()
) -> list[tuple[int, ...]]:
    """Up to ``n`` distinct chromosomes drawn uniformly, none of them in ``seen``.

    Rejection sampling in a bounded number of vectorised rounds; when that stalls (a nearly exhausted
    small space) the remaining unseen chromosomes are enumerated and drawn from directly. Fewer than
    ``n`` come back only when the space really has fewer unseen chromosomes (or, for a space above
    :data:`ENUMERATION_LIMIT`, after every round collided: practically never). Never a hang.

    Args:
        sizes: Number of choices per gene.
        n: How many to draw.
        rng: The searcher's generator.
        seen: Chromosomes to avoid.

    Returns:
        Chromosomes in draw order.
    """
    volume = math.prod(int(s) for s in sizes)
    n = min(n, volume - len(seen))
    taken = set(seen)
    rows: list[tuple[int, ...]] = []
    for _ in range(_REJECTION_ROUNDS):
        if len(rows) >= n:
            break
        batch = rng.integers(0, sizes, size=(n - len(rows), len(sizes)))
        for row in map(tuple, batch.tolist()):
            if row not in taken:
                taken.add(row)
                rows.append(row)
    if len(rows) < n and volume <= ENUMERATION_LIMIT:
        rest = [row for row in itertools.product(*(range(int(s)) for s in sizes)) if row not in taken]
        picks = rng.choice(len(rest), size=n - len(rows), replace=False)
        rows.extend(rest[int(i)] for i in picks)
    return rows
