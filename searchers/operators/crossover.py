"""Crossover of integer chromosomes: single-point (MoGA 4.3) and uniform."""
from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.core.crossover import Crossover

__all__ = ["CROSSOVERS", "SinglePointChoiceCrossover", "UniformChoiceCrossover", "make_crossover"]


class SinglePointChoiceCrossover(Crossover):
    """Two parents exchange their tails after a uniformly drawn cut ``k`` in ``1..n_genes-1``.

    Whether a pair crosses at all is drawn by pymoo with probability ``prob``; a pair that does not
    cross passes copies of the parents on to mutation. A one-gene chromosome cannot be cut, so its
    children are copies.
    """

    def __init__(self, *, prob: float = 0.9) -> None:
        super().__init__(n_parents=2, n_offsprings=2, prob=prob)

    def _do(self, problem: Any, X: np.ndarray, *args: Any, random_state: Any = None, **kwargs: Any):
        _, n_matings, n_genes = X.shape
        children = X.copy()
        if n_genes < 2:
            return children
        cuts = random_state.integers(1, n_genes, size=n_matings)
        tail = np.arange(n_genes)[None, :] >= cuts[:, None]  # (n_matings, n_genes)
        children[0][tail] = X[1][tail]
        children[1][tail] = X[0][tail]
        return children


class UniformChoiceCrossover(Crossover):
    """Two parents exchange each gene independently with probability 1/2.

    Unlike a single cut, it recombines genes that are far apart on the chromosome, which matters when
    the dimensions act independently (benchmarks/searcher_quality.py measures the difference).
    Whether a pair crosses at all is drawn by pymoo with probability ``prob``.
    """

    def __init__(self, *, prob: float = 0.9) -> None:
        super().__init__(n_parents=2, n_offsprings=2, prob=prob)

    def _do(self, problem: Any, X: np.ndarray, *args: Any, random_state: Any = None, **kwargs: Any):
        _, n_matings, n_genes = X.shape
        children = X.copy()
        swap = random_state.random((n_matings, n_genes)) < 0.5
        children[0][swap] = X[1][swap]
        children[1][swap] = X[0][swap]
        return children


#: Crossover names accepted by ``WeightedNSGA2Searcher(crossover=...)``.
CROSSOVERS: dict[str, type[Crossover]] = {
    "single-point": SinglePointChoiceCrossover,
    "uniform": UniformChoiceCrossover,
}


def make_crossover(name: str, *, prob: float) -> Crossover:
    return CROSSOVERS[name](prob=prob)
