"""Helpers for the searcher tests: a toy problem, a Tune-like driver, searcher factories.

(A uniquely named module rather than conftest.py, so test modules can import it by name without
colliding with other packages' conftest files.)
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Callable

import numpy as np
from ray.tune.search import Searcher

from searchers import GENERATION_KEY, SEARCHERS

N_GENES, N_CHOICES = 6, 4
SPACE = {f"g{i}": list(range(N_CHOICES)) for i in range(N_GENES)}
METRICS, MODES = ["acc", "lat"], ["max", "min"]


class ToyProblem:
    """Two conflicting objectives computed analytically from the config (no training).

    Higher choices give more accuracy and more latency, at a per-gene exchange rate, so the front
    is long and non-trivial.
    """

    def __init__(self, seed: int = 12345) -> None:
        rng = np.random.default_rng(seed)  # a local generator: tests never touch the global RNG
        self.acc = np.sort(rng.random((N_GENES, N_CHOICES)), axis=1)
        self.lat = np.sort(rng.random((N_GENES, N_CHOICES)), axis=1) ** 2 * rng.uniform(1, 3, (N_GENES, 1))

    def chromosome(self, config: dict[str, Any]) -> list[int]:
        return [SPACE[f"g{i}"].index(config[f"g{i}"]) for i in range(N_GENES)]

    def __call__(self, config: dict[str, Any]) -> dict[str, float]:
        x = self.chromosome(config)
        return {"acc": float(sum(self.acc[j, c] for j, c in enumerate(x))),
                "lat": float(sum(self.lat[j, c] for j, c in enumerate(x)))}


class TuneSim:
    """Drives a searcher like Tune does: keep up to ``max_concurrent`` trials running, complete one
    at a time (in arrival order, or in an order drawn from ``order_seed``), ask for more."""

    def __init__(self, searcher: Searcher, evaluate: Callable[[dict[str, Any]], Any], *,
                 max_concurrent: int = 3, order_seed: int | None = None, prefix: str = "trial") -> None:
        self.searcher, self.evaluate = searcher, evaluate
        self.max_concurrent = max_concurrent
        self.order = None if order_seed is None else np.random.default_rng(order_seed)
        self.ids = (f"{prefix}-{i}" for i in itertools.count())
        self.suggested: list[dict[str, Any]] = []
        self.running: list[tuple[str, dict[str, Any]]] = []
        self.completed = 0
        self.finished = False

    def fill(self, limit: int | None = None) -> None:
        while len(self.running) < self.max_concurrent and not self.finished:
            if limit is not None and len(self.suggested) >= limit:
                return
            trial_id = next(self.ids)
            config = self.searcher.suggest(trial_id)
            if config == Searcher.FINISHED:
                assert not self.running, "FINISHED while trials are still running"
                self.finished = True
            elif config is None:
                assert self.running, "suggest returned None with no trial pending"
                return
            else:
                self.suggested.append(config)
                self.running.append((trial_id, config))

    def complete_one(self) -> None:
        index = 0 if self.order is None else int(self.order.integers(len(self.running)))
        trial_id, config = self.running.pop(index)
        outcome = self.evaluate(config)
        if isinstance(outcome, tuple):  # (result, error)
            self.searcher.on_trial_complete(trial_id, result=outcome[0], error=outcome[1])
        else:
            self.searcher.on_trial_complete(trial_id, result=outcome)
        self.completed += 1

    def run(self, *, suggested: int | None = None, completed: int | None = None,
            max_steps: int = 100_000) -> TuneSim:
        """Run to FINISHED, or stop right after the ``suggested``-th suggestion / ``completed``-th
        completion (before the next refill)."""
        for _ in range(max_steps):
            self.fill(limit=suggested)
            if self.finished or (suggested is not None and len(self.suggested) >= suggested):
                return self
            self.complete_one()
            if completed is not None and self.completed >= completed:
                return self
        raise AssertionError("searcher never finished")


def chromosomes(configs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Configs without the generation key, as hashable tuples in suggestion order."""
    return [tuple(v for k, v in sorted(c.items()) if k != GENERATION_KEY) for c in configs]


def first_appearance(items: list[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


#: Construction kwargs per registered searcher; budget = BUDGET[name] evaluations.
POPULATION, GENERATIONS = 6, 4
SEARCHER_KWARGS: dict[str, dict[str, Any]] = {
    "weighted-nsga2": dict(population_size=POPULATION, generations=GENERATIONS),
    "random": dict(num_samples=POPULATION * GENERATIONS),
    "reinforce": dict(num_samples=POPULATION * GENERATIONS, batch_size=POPULATION,
                      quality_metric="acc", cost_metric="lat", cost_target=3.0, lr=0.1),
}
BUDGET = {name: POPULATION * GENERATIONS for name in SEARCHER_KWARGS}
#: How many configs one "generation" hands out before the searcher must wait.
BATCH = {"weighted-nsga2": POPULATION, "random": POPULATION * GENERATIONS, "reinforce": POPULATION}


def make(name: str, *, seed: int = 0, space: dict[str, Any] | None = None, **overrides: Any) -> Searcher:
    kwargs = dict(param_space=space or SPACE, metric=METRICS, mode=MODES, seed=seed)
    kwargs.update(SEARCHER_KWARGS[name])
    kwargs.update(overrides)
    return SEARCHERS.get(name)(**kwargs)


def hypervolume(front: list[dict[str, Any]], reference: tuple[float, float]) -> float:
    """2-d hypervolume of a front of (acc max, lat min) entries w.r.t. a (acc, lat) reference."""
    points = sorted((-e["metrics"]["acc"], e["metrics"]["lat"]) for e in front)
    volume, last_lat = 0.0, reference[1]
    for neg_acc, lat in points:
        if neg_acc < -reference[0] and lat < last_lat:
            volume += (-reference[0] - neg_acc) * (last_lat - lat)
            last_lat = lat
    return volume if math.isfinite(volume) else 0.0

