"""Initial population that shows the search every choice of every dimension (MoGA 4.3)."""
from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.core.sampling import Sampling

__all__ = ["CoveringChoiceSampling", "covering_rows"]


def covering_rows(sizes: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` chromosomes where every choice of every gene occurs (when ``n >= sizes.max()``; otherwise
    each gene shows ``n`` distinct choices drawn at random).

    Each gene's column is its choices tiled to length ``n`` and shuffled independently (a Latin-style
    design); rows that came out equal are then repaired so that the rows are distinct where the space
    allows it.

    Args:
        sizes: Number of choices per gene.
        n: Number of rows.
        rng: The searcher's generator.

    Returns:
        ``(n, len(sizes))`` integer array of choice indices.
    """
    # Tile a random permutation, not 0..size-1: with n < size (a population smaller than a gene's
    # choices) the column is then a random subset of the choices, instead of always the n lowest ones.
    columns = [rng.permutation(np.resize(rng.permutation(size), n)) for size in sizes]
    rows = np.stack(columns, axis=1).astype(np.int64)
    _repair_duplicates(rows, sizes, rng)
    return rows


def _repair_duplicates(rows: np.ndarray, sizes: np.ndarray, rng: np.random.Generator) -> None:
    """Change genes of repeated rows in place, preferring genes whose value is repeated in its column.

    Changing only such genes keeps every choice covered. Attempts are bounded: a space smaller than
    the population keeps some duplicates, which duplicate elimination then removes.
    """
    mutable = np.flatnonzero(sizes > 1)
    if mutable.size == 0:
        return
    seen: set[tuple[int, ...]] = set()
    for i in range(len(rows)):
        for _ in range(10 * len(sizes)):
            key = tuple(rows[i].tolist())
            if key not in seen:
                break
            gene = _gene_to_change(rows, i, mutable, rng)
            step = rng.integers(1, sizes[gene])  # 1..size-1 away: always a different choice
            rows[i, gene] = (rows[i, gene] + step) % sizes[gene]
        seen.add(tuple(rows[i].tolist()))


def _gene_to_change(rows: np.ndarray, i: int, mutable: np.ndarray, rng: np.random.Generator) -> int:
    redundant = [g for g in mutable if np.count_nonzero(rows[:, g] == rows[i, g]) > 1]
    candidates = redundant if redundant else mutable.tolist()
    return int(candidates[rng.integers(len(candidates))])


class CoveringChoiceSampling(Sampling):
    """pymoo sampling operator around :func:`covering_rows`; choice counts come from ``problem.xu``."""

    def _do(self, problem: Any, n_samples: int, *args: Any, random_state: Any = None, **kwargs: Any):
        sizes = np.asarray(problem.xu, dtype=np.int64) + 1
        return covering_rows(sizes, int(n_samples), random_state)
