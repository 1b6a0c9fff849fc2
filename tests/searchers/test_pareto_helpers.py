"""pareto_mask (shared with other packages) and the spread selection along a front."""
from __future__ import annotations

import numpy as np
import pytest

from searchers import pareto_mask
from searchers._pareto import spread_indices


def _brute_force(F: np.ndarray) -> np.ndarray:
    ok = np.all(np.isfinite(F), axis=1)
    mask = np.zeros(len(F), dtype=bool)
    for i in np.flatnonzero(ok):
        dominated = any(np.all(F[j] <= F[i]) and np.any(F[j] < F[i]) for j in np.flatnonzero(ok))
        mask[i] = not dominated
    return mask


@pytest.mark.parametrize("seed", range(8))
def test_pareto_mask_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    F = np.round(rng.random((60, 1 + seed % 4)) * 6) / 6  # plenty of ties and duplicates
    F[rng.integers(60, size=5), 0] = np.nan  # failed evaluations
    F[rng.integers(60, size=2), -1] = -np.inf
    assert np.array_equal(pareto_mask(F), _brute_force(F))


def test_pareto_mask_edge_cases() -> None:
    assert pareto_mask(np.empty((0, 2))).tolist() == []
    assert pareto_mask(np.array([[1.0, 2.0], [1.0, 2.0]])).tolist() == [True, True]
    assert pareto_mask(np.array([[1.0, 2.0], [1.0, 3.0]])).tolist() == [True, False]
    with pytest.raises(ValueError, match="2-d"):
        pareto_mask(np.array([1.0, 2.0]))


def test_spread_indices_spaces_picks_along_the_front() -> None:
    t = np.linspace(0, 1, 101)
    front = np.stack([t, 1 - t], axis=1)[::-1]  # any input order
    picks = spread_indices(front, 5)
    assert sorted(front[picks, 0].tolist()) == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert len(spread_indices(front, 1)) == 1 and front[spread_indices(front, 1)[0], 0] == 0.5
    assert spread_indices(front[:3], 7) == [2, 1, 0]
    clustered = np.array([[0, 1], [0.01, 0.99], [0.02, 0.98], [1, 0]])
    assert spread_indices(clustered, 2) == [0, 3]
