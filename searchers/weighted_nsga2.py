"""MoGA's weighted NSGA-II (Chu et al., section 4.3 and Algorithm 1) as a Ray Tune searcher."""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from core.settings import Setting, boolean, choice, integer, number, optional
from core.validation import invalid

from ._base import Evaluation, GenerationalSearcher
from ._nsga2_engine import NSGA2Engine
from ._objectives import Objectives
from ._space import Chromosome
from .operators import CROSSOVERS, sample_unique_rows

__all__ = ["WeightedNSGA2Searcher"]

_WEIGHTS_HINT = "pass one non-negative weight per metric summing to 1 (MoGA: [0.4, 0.4, 0.2]), or None"


def _weights(where: str, value: Any, hint: str) -> list[float]:
    """A :data:`core.settings.Check`: a non-empty list of numbers ``>= 0`` summing to 1."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise invalid(where, "must be a non-empty list of numbers", value, hint)
    for i, w in enumerate(value):
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise invalid(f"{where}[{i}]", "must be a finite number >= 0", w, hint)
    total = math.fsum(value)
    if abs(total - 1.0) > 1e-6:
        raise invalid(where, f"must sum to 1 within 1e-6 (they sum to {total:g})", list(value), hint)
    return [float(w) for w in value]


class WeightedNSGA2Searcher(GenerationalSearcher):
    """Weighted NSGA-II over a categorical space, generation by generation, as a Tune searcher.

    Generation 0 covers every choice of every dimension (when ``population_size`` allows); each later
    generation is ``population_size`` offspring of binary tournaments on (rank, crowding), crossover
    and hierarchical mutation. Survival is non-dominated sorting plus MoGA's weighted crowding
    distance (Eq. 5); equal weights give standard NSGA-II. Failed trials and violated constraints
    make a candidate infeasible: behind every feasible one. No chromosome is ever suggested twice; if
    the space runs out, generations get smaller and the search ends early.

    The default operators are uniform crossover without forced mutation: in BENCHMARKS.md they beat
    MoGA's own operators on every problem and match or beat Optuna's NSGA-II. MoGA's operators
    remain a setting: ``crossover="single-point", force_mutation=True``.

    Use it behind ``ConcurrencyLimiter(searcher, max_concurrent=N)``; ``batch=True`` is not needed
    (the searcher itself returns ``None`` until a generation is complete) and would idle free slots
    inside a generation. Its state (:meth:`get_state`, :meth:`save`, :meth:`save_to_dir`) is JSON;
    after ``Tuner.restore`` it waits for the trials Tune resumes, and after a hand-made restore into a new
    Tuner it hands the unfinished candidates out again first. ``points_to_evaluate`` start generation 0;
    results given with ``add_evaluated_point`` join its survival (see :class:`~searchers.GenerationalSearcher`).

    Args:
        param_space, metric, mode, seed, constraints: See :class:`~searchers.GenerationalSearcher`.
        population_size: Candidates per generation (``>= 2``).
        generations: Generations including the initial one (``>= 1``); the search evaluates
            ``population_size * generations`` candidates (:meth:`budget`).
        weights: Crowding weights per metric, each ``>= 0``, summing to 1; ``None``: equal.
        crossover: ``"uniform"`` (each gene swapped with probability 1/2; the default) or
            ``"single-point"`` (MoGA's: genes recombine only as contiguous blocks).
        force_mutation: MoGA's rule that every offspring mutates at least one gene; ``False`` (the
            default) lets a child be a pure recombination of its parents.
        crossover_prob: Probability that a parent pair crosses over.
        mutation_layer_prob: Per-gene mutation probability; ``None``: ``1 / n_genes``.

    Raises:
        ConfigError: an argument breaks its rule (the message names it, the rule, the value and a fix).
    """

    name = "weighted-nsga2"
    SETTINGS = (
        # Optuna's NSGAIISampler uses 50 (pymoo's NSGA2 100). 40 generations make the default budget
        # 2000 evaluations, the budget at which BENCHMARKS.md measured these defaults at or above
        # Optuna's NSGA-II; MoGA itself evolved 70 x 120.
        Setting("population_size", 50, integer(minimum=2, maximum=10_000),
                "NSGA-II needs at least two candidates per generation; MoGA used 70"),
        Setting("generations", 40, integer(minimum=1, maximum=100_000),
                "generation 0 is the initial population; MoGA evolved 120"),
        Setting("weights", None, optional(_weights), _WEIGHTS_HINT),
        Setting("crossover", "uniform", choice(*CROSSOVERS),
                "use 'uniform' (the default) or 'single-point' (MoGA's)"),
        Setting("force_mutation", False, boolean(),
                "false is the default; true is MoGA's at-least-one-gene mutation"),
        Setting("crossover_prob", 0.9, number(low=0.0, high=1.0), "0.9 is the usual value"),
        Setting("mutation_layer_prob", None, optional(number(low=0.0, high=1.0)),
                "leave it None for 1/n_genes, or pass e.g. 0.1"),
    )

    def __init__(self, **kwargs: Any) -> None:
        self._engine: NSGA2Engine | None = None
        super().__init__(**kwargs)

    @classmethod
    def example_settings(cls, *, metric: Sequence[str], mode: Sequence[str]) -> dict[str, Any]:
        return {"population_size": 6, "generations": 4}

    # ------------------------------------------------------------------ hooks
    @classmethod
    def _budget(cls, settings: dict[str, Any]) -> int:
        return settings["population_size"] * settings["generations"]

    @classmethod
    def _generation_size(cls, settings: dict[str, Any]) -> int:
        return settings["population_size"]

    @classmethod
    def _check_objectives(cls, settings: dict[str, Any], objectives: Objectives,
                          where: Callable[[str], str]) -> None:
        weights = settings["weights"]
        if weights is not None and len(weights) != len(objectives.metrics):
            raise invalid(
                where("weights"), f"must have one weight per metric ({len(objectives.metrics)} "
                f"metrics: {list(objectives.metrics)})", weights,
                "give one weight per metric in the same order, or None for equal weights")

    def _total_generations(self) -> int:
        return self._config["generations"]

    def _first_generation(self) -> list[Chromosome]:
        rows = _rows(self._new_engine().ask())
        short = self._config["population_size"] - len(rows)
        if short > 0 and (self._archive or self._points):
            # Warm-start points took some of the covering sample (it is drawn, then the seen removed): top the
            # population up with unseen random members, as a search without them would have had a full one.
            rows += sample_unique_rows(self._require_configured().sizes, short, self._rng, self._seen | set(rows))
        return rows

    def _next_generation(self, evaluations: list[Evaluation], indices: list[int],
                         last: bool) -> list[Chromosome]:
        engine = self._engine if self._engine is not None else self._new_engine()
        X = np.array([e.chromosome for e in evaluations], dtype=np.int64)
        F, G = zip(*(self._fg(e.metrics) for e in evaluations))
        engine.tell(X, np.array(F), np.array(G), np.array(indices, dtype=np.int64))
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

    @property
    def algorithm(self) -> Any:
        """The pymoo NSGA-II behind the search (its mating operators and weighted survival), for
        inspection; ``None`` before the first :meth:`suggest` builds it."""
        return None if self._engine is None else self._engine.algorithm

    # ------------------------------------------------------------------ internals
    def _new_engine(self) -> NSGA2Engine:
        space, objectives, config = self._require_configured(), self._require_objectives(), self._config
        self._engine = NSGA2Engine(
            sizes=space.sizes, n_obj=len(objectives.metrics), n_constr=len(objectives.constraints),
            population_size=config["population_size"], weights=config["weights"],
            crossover_prob=config["crossover_prob"], gene_prob=config["mutation_layer_prob"],
            crossover=config["crossover"], force_mutation=config["force_mutation"],
            seen=self._seen, rng=self._rng)
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

