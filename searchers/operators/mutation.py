"""Hierarchical mutation (FairNAS / MoGA): first which genes mutate, then to which other choice."""
from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.core.mutation import Mutation

__all__ = ["HierarchicalChoiceMutation", "mutate_rows"]


def mutate_rows(
    X: np.ndarray, sizes: np.ndarray, gene_prob: float, rng: np.random.Generator, *, at_least_one: bool = True
) -> np.ndarray:
    """Mutate every row: each gene is picked with ``gene_prob`` (with ``at_least_one``, at least one
    gene per row), and a picked gene moves to a uniformly drawn *different* choice.

    Args:
        X: ``(n, n_genes)`` choice indices.
        sizes: Number of choices per gene; genes with one choice never mutate.
        gene_prob: Per-gene probability of being picked.
        rng: The searcher's generator.
        at_least_one: MoGA's rule that every offspring mutates somewhere. Without it a child may be a
            pure recombination of its parents (duplicate elimination still keeps every child new).

    Returns:
        A mutated copy of ``X``.
    """
    X = np.array(X, dtype=np.int64, copy=True)
    mutable = sizes > 1
    if len(X) == 0 or not mutable.any():
        return X
    picked = (rng.random(X.shape) < gene_prob) & mutable[None, :]
    # The "at least one gene" rule: a row with nothing picked mutates one mutable gene instead, so
    # every offspring differs from the parents it came from.
    idle = np.flatnonzero(~picked.any(axis=1)) if at_least_one else np.empty(0, dtype=np.int64)
    if idle.size:
        choices = np.flatnonzero(mutable)
        picked[idle, choices[rng.integers(len(choices), size=idle.size)]] = True
    rows, genes = np.nonzero(picked)
    steps = rng.integers(1, sizes[genes])  # 1..size-1 away: uniform over the other choices
    X[rows, genes] = (X[rows, genes] + steps) % sizes[genes]
    return X


class HierarchicalChoiceMutation(Mutation):
    """pymoo mutation operator around :func:`mutate_rows`; applied to every offspring.

    Args:
        gene_prob: Per-gene probability; ``None`` means ``1 / n_genes``.
        at_least_one: Every offspring mutates at least one gene (MoGA's rule).
    """

    def __init__(self, *, gene_prob: float | None = None, at_least_one: bool = True) -> None:
        super().__init__(prob=1.0)
        self.gene_prob = gene_prob
        self.at_least_one = at_least_one

    def _do(self, problem: Any, X: np.ndarray, *args: Any, random_state: Any = None, **kwargs: Any):
        sizes = np.asarray(problem.xu, dtype=np.int64) + 1
        gene_prob = self.gene_prob if self.gene_prob is not None else 1.0 / len(sizes)
        return mutate_rows(X, sizes, gene_prob, random_state, at_least_one=self.at_least_one)
