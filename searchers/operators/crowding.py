"""MoGA's weighted crowding distance (Eq. 5) as a pymoo crowding function.

``D(m_j) = sum_i w_i * (O_i(next) - O_i(prev)) / (O_i max - O_i min)``, boundary individuals infinite.
With equal weights it is pymoo's NSGA-II crowding distance, bit for bit (tested), so the weighted
searcher with ``weights=None`` is the standard NSGA-II.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from pymoo.operators.survival.rank_and_crowding.metrics import FunctionalDiversity

__all__ = ["WeightedCrowdingDistance", "weighted_crowding", "weighted_crowding_distance"]


def weighted_crowding_distance(
    F: np.ndarray, weights: Sequence[float] | np.ndarray | None = None, **_: Any
) -> np.ndarray:
    """Weighted crowding distance of each row of ``F`` (objectives in minimisation form).

    Args:
        F: ``(n, m)`` objective values of one non-dominated front.
        weights: ``m`` non-negative weights summing to 1; ``None`` means equal weights.
        **_: Ignored; pymoo passes ``n_remove``.

    Returns:
        ``(n,)`` distances; individuals at the boundary of a positively weighted objective get
        ``inf``. An objective whose values are all equal contributes 0 (it cannot separate anyone),
        and so does an objective with weight 0, boundaries included.
    """
    F = np.asarray(F, dtype=float)
    n_points, n_obj = F.shape
    w = np.full(n_obj, 1.0 / n_obj) if weights is None else np.asarray(weights, dtype=float)
    gaps = _normalised_neighbour_gaps(F)
    if np.all(w == w[0]):
        # Same arithmetic as the unweighted distance (sum, then divide by m): equal weights must
        # reproduce standard NSGA-II exactly, not just to rounding.
        return gaps.sum(axis=1) / n_obj
    weighted = np.where(w > 0, gaps * np.where(w > 0, w, 1.0), 0.0)  # 0 * inf would be NaN
    return weighted.sum(axis=1)


def _normalised_neighbour_gaps(F: np.ndarray) -> np.ndarray:
    """Per objective, (gap to the previous + gap to the next neighbour) / range, in input order."""
    n_points, n_obj = F.shape
    order = np.argsort(F, axis=0, kind="mergesort")  # stable: ties keep input order
    sorted_f = np.take_along_axis(F, order, axis=0)
    span = sorted_f[-1] - sorted_f[0]
    span = np.where(span == 0, np.nan, span)  # a constant objective separates nobody
    inf_row = np.full((1, n_obj), np.inf)
    steps = np.diff(sorted_f, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        to_prev = np.vstack([inf_row, steps]) / span
        to_next = np.vstack([steps, inf_row]) / span
    to_prev[np.isnan(to_prev)] = 0.0
    to_next[np.isnan(to_next)] = 0.0
    gaps_sorted = to_prev + to_next
    gaps = np.empty_like(gaps_sorted)
    np.put_along_axis(gaps, order, gaps_sorted, axis=0)
    return gaps


class WeightedCrowdingDistance:
    """Picklable callable form of :func:`weighted_crowding_distance` with fixed weights."""

    def __init__(self, weights: Sequence[float] | None) -> None:
        self.weights = None if weights is None else np.asarray(weights, dtype=float)

    def __call__(self, F: np.ndarray, **kwargs: Any) -> np.ndarray:
        return weighted_crowding_distance(F, self.weights, **kwargs)


def weighted_crowding(weights: Sequence[float] | None) -> FunctionalDiversity:
    """The weighted distance wrapped for ``RankAndCrowding(crowding_func=...)``.

    Duplicates are not filtered out, matching pymoo's ``"cd"`` (a callable passed by itself would be
    wrapped with duplicate filtering, which gives duplicates distance 0 and breaks the equivalence).
    """
    return FunctionalDiversity(WeightedCrowdingDistance(weights), filter_out_duplicates=False)
