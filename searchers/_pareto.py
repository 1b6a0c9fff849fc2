"""Pareto filtering and MoGA's final step (K candidates spread along the front)."""
from __future__ import annotations

import numpy as np

__all__ = ["pareto_mask", "spread_indices"]


def pareto_mask(objectives: np.ndarray) -> np.ndarray:
    """Which rows are feasible and non-dominated.

    Args:
        objectives: ``(n, m)`` values already in minimisation form. A row with a non-finite entry
            counts as infeasible (a failed evaluation) and is never on the front.

    Returns:
        ``(n,)`` boolean mask. Equal rows do not dominate each other, so duplicates are all kept.
    """
    F = np.asarray(objectives, dtype=float)
    if F.ndim != 2:
        raise ValueError(f"objectives must be a 2-d array (n, m); got shape {F.shape}")
    mask = np.zeros(len(F), dtype=bool)
    candidates = np.flatnonzero(np.all(np.isfinite(F), axis=1))
    # After a lexicographic sort a dominating row always comes first, so each row only needs
    # checking against the front kept so far: O(n * front) instead of O(n^2).
    order = candidates[np.lexsort(F[candidates].T[::-1])]
    kept: list[int] = []
    for i in order:
        if kept:
            front = F[kept]
            if np.any(np.all(front <= F[i], axis=1) & np.any(front < F[i], axis=1)):
                continue
        kept.append(int(i))
    mask[kept] = True
    return mask


def spread_indices(front: np.ndarray, k: int) -> list[int]:
    """``k`` rows of a Pareto front at roughly equal spacing along it.

    The front is ordered by its first objective (then the others) and walked as a polyline in
    objectives normalised to [0, 1]; the rows nearest to ``k`` equally spaced arc-length positions
    (both ends included) are chosen. With more than two objectives the ordering is only
    approximate, hence "roughly".

    Args:
        front: ``(n, m)`` objectives (minimisation form) of non-dominated rows.
        k: How many to pick (``>= 1``).

    Returns:
        Row indices into ``front``, in front order; all rows when ``k >= n``.
    """
    F = np.asarray(front, dtype=float)
    order = np.lexsort(F.T[::-1])
    if k >= len(F):
        return order.tolist()
    low, high = F.min(axis=0), F.max(axis=0)
    scaled = (F[order] - low) / np.where(high > low, high - low, 1.0)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(scaled, axis=0), axis=1))])
    targets = np.linspace(0.0, arc[-1], k) if k > 1 else np.array([arc[-1] / 2.0])
    chosen: list[int] = []
    for target in targets:
        for j in np.argsort(np.abs(arc - target), kind="stable"):
            if int(j) not in chosen:
                chosen.append(int(j))
                break
    return [int(order[j]) for j in sorted(chosen)]
