"""pymoo's NSGA-II composed from MoGA's operators, driven by ask/tell, with JSON-able state.

The engine never evaluates anything: its ``Problem`` is metadata only (bounds, counts), and results
computed by Tune trials come back through :meth:`NSGA2Engine.tell`.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2, binary_tournament
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.termination import NoTermination
from pymoo.operators.selection.tournament import TournamentSelection
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding

from .operators import (
    CoveringChoiceSampling,
    HierarchicalChoiceMutation,
    SeenDuplicateElimination,
    make_crossover,
    weighted_crowding,
)

__all__ = ["NSGA2Engine"]

_INDEX = "hwnas_index"  # an individual's position in the searcher's archive


class NSGA2Engine:
    """NSGA-II over integer chromosomes: covering sampling, binary tournament on (rank, crowding),
    uniform or single-point crossover, hierarchical mutation, non-dominated sorting + weighted
    crowding.

    Constraint handling is pymoo's: columns 0..c-1 of ``G`` are the user's constraints and the last
    column marks failed trials (infinite violation), so every infeasible candidate ranks behind every
    feasible one, and a failed one behind one that merely broke a constraint.

    Args:
        sizes: Choices per gene.
        n_obj: Number of objectives (minimisation form).
        n_constr: Number of user constraints.
        population_size: Survivors per generation and offspring per generation.
        weights: Crowding weights per objective (``None``: equal).
        crossover_prob: Probability that a parent pair crosses.
        crossover: ``"uniform"`` or ``"single-point"`` (MoGA).
        force_mutation: Every offspring mutates at least one gene (MoGA).
        gene_prob: Per-gene mutation probability (``None``: ``1 / n_genes``).
        seen: The searcher's set of generated chromosomes (shared, for duplicate elimination).
        rng: The searcher's generator; every random draw of the algorithm comes from it.
    """

    def __init__(self, *, sizes: np.ndarray, n_obj: int, n_constr: int, population_size: int,
                 weights: Sequence[float] | None, crossover_prob: float, gene_prob: float | None,
                 crossover: str, force_mutation: bool, seen: set[tuple[int, ...]],
                 rng: np.random.Generator) -> None:
        self.n_genes = len(sizes)
        problem = Problem(n_var=len(sizes), n_obj=n_obj, n_ieq_constr=n_constr + 1,
                          xl=np.zeros(len(sizes), dtype=np.int64), xu=np.asarray(sizes) - 1,
                          vtype=int)
        algorithm = NSGA2(
            pop_size=population_size,
            sampling=CoveringChoiceSampling(),
            selection=TournamentSelection(func_comp=binary_tournament),
            crossover=make_crossover(crossover, prob=crossover_prob),
            mutation=HierarchicalChoiceMutation(gene_prob=gene_prob, at_least_one=force_mutation),
            survival=RankAndCrowding(crowding_func=weighted_crowding(weights)),
            eliminate_duplicates=SeenDuplicateElimination(seen),
            output=None,
        )
        algorithm.termination = NoTermination()  # the searcher counts generations itself
        algorithm.tournament_type = "comp_by_rank_and_crowding"  # MoGA: (rank, crowding) tournament
        algorithm.setup(problem)
        algorithm.random_state = rng  # setup() made a generator of its own; use the searcher's
        self.algorithm = algorithm

    def ask(self) -> np.ndarray:
        """The next generation's chromosomes, ``(n, n_genes)``; ``n == 0`` when none are left."""
        infills = self.algorithm.ask()
        if infills is None or len(infills) == 0:
            return np.empty((0, self.n_genes), dtype=np.int64)
        return np.asarray(infills.get("X"), dtype=np.int64)

    def tell(self, X: np.ndarray, F: np.ndarray, G: np.ndarray, index: np.ndarray) -> None:
        """A complete generation, in member order: objectives ``F`` (min form) and constraints
        ``G`` (``<= 0`` feasible); ``index`` are the members' archive positions."""
        infills = Population.new("X", np.asarray(X, dtype=np.int64), "F", F, "G", G)
        infills.set(_INDEX, np.asarray(index, dtype=np.int64))
        self.algorithm.tell(infills=infills)

    def state(self) -> dict[str, Any]:
        """The survivors (by archive index, with rank and crowding) and the iteration counter."""
        algorithm = self.algorithm
        survivors = []
        if algorithm.is_initialized:
            for ind in algorithm.pop:
                rank, crowding = ind.get("rank", "crowding")
                survivors.append([int(ind.get(_INDEX)), None if rank is None else int(rank),
                                  _float_to_json(crowding)])
        return {"initialized": bool(algorithm.is_initialized), "n_iter": algorithm.n_iter,
                "population": survivors}

    def load(self, state: dict[str, Any],
             member: Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        """Put a fresh engine in the state :meth:`state` described; ``member(i)`` gives the
        ``(x, f, g)`` of archive entry ``i``."""
        algorithm = self.algorithm
        algorithm.n_iter = state["n_iter"]
        if not state["initialized"]:
            return  # nothing told yet: the fresh engine is that state already
        rows = state["population"]
        xs, fs, gs = zip(*(member(int(i)) for i, _, _ in rows))
        pop = Population.new("X", np.array(xs, dtype=np.int64), "F", np.array(fs), "G", np.array(gs))
        pop.set(_INDEX, np.array([int(i) for i, _, _ in rows], dtype=np.int64))
        pop.set("rank", [None if r is None else int(r) for _, r, _ in rows])
        pop.set("crowding", [_float_from_json(c) for _, _, c in rows])
        algorithm.pop = pop
        algorithm.is_initialized = True


def _float_to_json(value: Any) -> float | str | None:
    """JSON has no infinities; boundary individuals have infinite crowding."""
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else repr(value)  # 'inf', '-inf', 'nan'


def _float_from_json(value: Any) -> float | None:
    return None if value is None else float(value)
