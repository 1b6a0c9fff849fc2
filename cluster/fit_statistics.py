"""How sure a cost model's fidelity is: cross-validated r^2 while samples grow, and held-out intervals.

A fit reports r^2 and Kendall on a few dozen held-out architectures; with 20 of them Kendall's tau
moves by +-0.1 from one draw to the next. :func:`bootstrap_interval` gives the 95% interval of each
statistic (pairs resampled with replacement). :func:`cross_validated` scores a kind on the fit set
itself (5 folds, pooled out-of-fold predictions), which is how ``--samples auto`` decides that more
measurements no longer help.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from spaces.base import SearchSpace

from .costmodel_base import CostModel, kendall_tau, spearman_rho

__all__ = ["bootstrap_interval", "cross_validated", "scores"]

#: Bootstrap resamples of an interval.
RESAMPLES = 1000


def scores(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """``r2``, ``kendall`` and ``spearman`` of predictions against measurements (NaN when undefined)."""
    p, m = np.asarray(predicted, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    total = float(np.sum((m - m.mean()) ** 2))
    r2 = 1.0 - float(np.sum((m - p) ** 2)) / total if total > 0 else float("nan")
    return {"r2": r2, "kendall": kendall_tau(p, m), "spearman": spearman_rho(p, m)}


def bootstrap_interval(predicted: Sequence[float], measured: Sequence[float], *, rng: np.random.Generator,
                       level: float = 0.95) -> dict[str, list[float] | None]:
    """The ``level`` percentile interval of r^2 and Kendall's tau over resampled (prediction, measurement)
    pairs: ``{"r2": [low, high], "kendall": [low, high]}`` (``None`` for fewer than 5 pairs)."""
    p, m = np.asarray(predicted, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    if len(p) < 5:
        return {"r2": None, "kendall": None}
    draws: dict[str, list[float]] = {"r2": [], "kendall": []}
    for _ in range(RESAMPLES):
        pick = rng.integers(len(p), size=len(p))
        got = scores(p[pick], m[pick])
        for name in draws:
            if math.isfinite(got[name]):
                draws[name].append(got[name])
    tail = 100 * (1 - level) / 2
    return {name: ([float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))] if v else None)
            for name, v in draws.items()}


def cross_validated(make: Callable[[], CostModel], space: SearchSpace, encodings: Sequence[Sequence[int]],
                    measured: Sequence[float], *, folds: int = 5) -> dict[str, Any]:
    """:func:`scores` of the pooled out-of-fold predictions of ``make()`` models (fold ``i % folds``)."""
    y = np.asarray(measured, dtype=np.float64)
    predicted = np.empty(len(y))
    index = np.arange(len(y)) % folds
    for f in range(folds):
        train, test = np.flatnonzero(index != f), np.flatnonzero(index == f)
        model = make().fit(space, [encodings[i] for i in train], y[train])
        predicted[test] = model.predict_many([encodings[i] for i in test])
    return {**scores(predicted, y), "n": len(y)}
