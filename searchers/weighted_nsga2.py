"""MoGA's weighted NSGA-II (Chu et al., section 4.3 and Algorithm 1) as a Ray Tune searcher."""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from ray.tune.search.sample import Categorical

from ._base import Evaluation, GenerationalSearcher
from ._nsga2_engine import NSGA2Engine
from ._objectives import Objectives
from .operators import CROSSOVERS
from ._space import Chromosome
from ._validation import check_int, check_probability, config_error

__all__ = ["WeightedNSGA2Searcher"]


class WeightedNSGA2Searcher(GenerationalSearcher):
    """Weighted NSGA-II over a categorical space, generation by generation, as a Tune searcher.

    Generation 0 covers every choice of every dimension (when ``population_size`` allows); each later
    generation is ``population_size`` offspring of binary tournaments on (rank, crowding),
    single-point crossover and hierarchical mutation. Survival is non-dominated sorting plus MoGA's
    weighted crowding distance (Eq. 5); equal weights give standard NSGA-II. Failed trials and
    violated constraints make a candidate infeasible: behind every feasible one. No chromosome is
    ever suggested twice; if the space runs out, generations get smaller and the search ends early.

    Use it behind ``ConcurrencyLimiter(searcher, max_concurrent=N)``; ``batch=True`` is not needed
    (the searcher itself returns ``None`` until a generation is complete) and would idle free slots
    inside a generation. Its state (:meth:`get_state`, :meth:`save`, :meth:`save_to_dir`) is JSON;
    after a restore, candidates that were handed out but unfinished are handed out again first.

    Args:
        param_space: Ordered ``{name: choices}`` (lists or ``tune.choice``); the chromosome is the
            vector of choice indices in this order. ``None``: taken from the Tuner's
            ``param_space`` via :meth:`set_search_properties`.
        metric: Objective metric names (a string for one).
        mode: ``"max"``/``"min"`` per metric.
        weights: Crowding weights per metric, each ``>= 0``, summing to 1; ``None``: equal.
        population_size: Candidates per generation (``>= 2``).
        generations: Generations including the initial one (``>= 1``); the search evaluates
            ``population_size * generations`` candidates.
        seed: Experiment seed; the searcher's generator is derived from it.
        constraints: ``(metric, "<=" | ">=", bound)`` triples.
        mutation_layer_prob: Per-gene mutation probability; ``None``: ``1 / n_genes``.
        crossover_prob: Probability that a parent pair crosses over.
        crossover: ``"single-point"`` (MoGA's, the default) or ``"uniform"`` (each gene swapped with
            probability 1/2; better when dimensions act independently, see BENCHMARKS.md).
        force_mutation: MoGA's rule that every offspring mutates at least one gene (default ``True``);
            ``False`` lets a child be a pure recombination of its parents.

    Raises:
        ConfigError: an argument breaks its rule (the message names it, the rule, the value and a fix).
    """

    name = "weighted-nsga2"

    def __init__(
        self,
        *,
        param_space: Mapping[str, Sequence[Any] | Categorical] | None = None,
        metric: str | list[str] | None = None,
        mode: str | list[str] | None = None,
        weights: list[float] | None = None,
        population_size: int,
        generations: int,
        seed: int,
        constraints: Sequence[tuple[str, str, float]] = (),
        mutation_layer_prob: float | None = None,
        crossover_prob: float = 0.9,
        crossover: str = "single-point",
        force_mutation: bool = True,
    ) -> None:
        self._population_size = check_int(
            "population_size", population_size, minimum=2,
            hint="NSGA-II needs at least two candidates per generation; MoGA used 70.")
        self._generations = check_int(
            "generations", generations, minimum=1,
            hint="generation 0 is the initial population; MoGA evolved 120.")
        self._weights = _check_weights(weights)
        self._gene_prob = None if mutation_layer_prob is None else check_probability(
            "mutation_layer_prob", mutation_layer_prob,
            hint="leave it None for 1/n_genes, or pass e.g. 0.1.")
        self._crossover_prob = check_probability(
            "crossover_prob", crossover_prob, hint="0.9 is the usual value.")
        if crossover not in CROSSOVERS:
            raise config_error("crossover", f"must be one of {', '.join(CROSSOVERS)}", crossover,
                               "use 'single-point' (MoGA) or 'uniform'.")
        if not isinstance(force_mutation, bool):
            raise config_error("force_mutation", "must be true or false", force_mutation,
                               "true keeps MoGA's at-least-one-gene mutation.")
        self._crossover, self._force_mutation = crossover, force_mutation
        self._engine: NSGA2Engine | None = None
        super().__init__(param_space=param_space, metric=metric, mode=mode, seed=seed,
                         constraints=constraints)

    # ------------------------------------------------------------------ hooks
    def _check_objectives(self, objectives: Objectives) -> None:
        if self._weights is not None and len(self._weights) != len(objectives.metrics):
            raise config_error(
                "weights", f"must have one weight per metric ({len(objectives.metrics)} metrics: "
                f"{list(objectives.metrics)})", self._weights,
                "give one weight per metric in the same order, or None for equal weights.")

    def _total_generations(self) -> int:
        return self._generations

    def _algorithm_settings(self) -> dict[str, Any]:
        return {"population_size": self._population_size, "generations": self._generations,
                "weights": self._weights, "mutation_layer_prob": self._gene_prob,
                "crossover_prob": self._crossover_prob, "crossover": self._crossover,
                "force_mutation": self._force_mutation}

    def _first_generation(self) -> list[Chromosome]:
        return _rows(self._new_engine().ask())

    def _next_generation(self, evaluations: list[Evaluation], first_index: int,
                         last: bool) -> list[Chromosome]:
        engine = self._engine if self._engine is not None else self._new_engine()
        X = np.array([e.chromosome for e in evaluations], dtype=np.int64)
        F, G = zip(*(self._fg(e.metrics) for e in evaluations))
        engine.tell(X, np.array(F), np.array(G), np.arange(first_index, first_index + len(X)))
        # The last generation is told too, so the engine ends holding MoGA's P_N.
        return [] if last else _rows(engine.ask())

    def _algorithm_state(self) -> dict[str, Any]:
        return {} if self._engine is None else self._engine.state()

    def _parse_algorithm_state(self, state: Any, archive: list[Evaluation]) -> Any:
        if not state:
            return None
        rows = state["population"]
        if any(not 0 <= int(i) < len(archive) for i, _, _ in rows):
            raise ValueError("population refers to candidates missing from the archive")
        n_iter = state["n_iter"]
        return {"initialized": bool(state["initialized"]),
                "n_iter": None if n_iter is None else int(n_iter),
                "population": [[int(i), None if r is None else int(r), None if c is None else float(c)]
                               for i, r, c in rows],
                "archive": archive}

    def _apply_algorithm_state(self, parsed: Any) -> None:
        engine = self._new_engine()
        if parsed is not None:
            archive: list[Evaluation] = parsed["archive"]

            def member(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
                return (np.array(archive[i].chromosome),) + self._fg(archive[i].metrics)

            engine.load(parsed, member)

    # ------------------------------------------------------------------ internals
    def _new_engine(self) -> NSGA2Engine:
        space, objectives = self._require_configured(), self._require_objectives()
        self._engine = NSGA2Engine(
            sizes=space.sizes, n_obj=len(objectives.metrics), n_constr=len(objectives.constraints),
            population_size=self._population_size, weights=self._weights,
            crossover_prob=self._crossover_prob, gene_prob=self._gene_prob, seen=self._seen,
            crossover=self._crossover, force_mutation=self._force_mutation,
            rng=self._rng)
        return self._engine

    def _fg(self, metrics: dict[str, float] | None) -> tuple[np.ndarray, np.ndarray]:
        """pymoo's ``(F, G)`` of one candidate; a failed one is infinitely infeasible."""
        objectives = self._require_objectives()
        n_obj, n_constr = len(objectives.metrics), len(objectives.constraints)
        if metrics is None:
            return np.full(n_obj, np.inf), np.full(n_constr + 1, np.inf)
        return objectives.minimised(metrics), np.append(objectives.violations(metrics), 0.0)


def _rows(X: np.ndarray) -> list[Chromosome]:
    return [tuple(int(v) for v in row) for row in X.tolist()]


def _check_weights(weights: Any) -> list[float] | None:
    if weights is None:
        return None
    hint = "pass one non-negative weight per metric summing to 1 (MoGA: [0.4, 0.4, 0.2]), or None."
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence) or not weights:
        raise config_error("weights", "must be a non-empty list of numbers", weights, hint)
    for i, w in enumerate(weights):
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise config_error(f"weights[{i}]", "must be a finite number >= 0", w, hint)
    total = math.fsum(weights)
    if abs(total - 1.0) > 1e-6:
        raise config_error("weights", f"must sum to 1 within 1e-6 (they sum to {total:g})",
                           list(weights), hint)
    return [float(w) for w in weights]
