"""Duplicate elimination against every chromosome the searcher has ever generated."""
from __future__ import annotations

from typing import AbstractSet, Any

import numpy as np
from pymoo.core.duplicate import DuplicateElimination

__all__ = ["SeenDuplicateElimination"]


class SeenDuplicateElimination(DuplicateElimination):
    """pymoo duplicate elimination by exact chromosome, also against a set the searcher owns.

    The set is shared, not copied: the searcher adds each generation's members to it, so an offspring
    equal to anything ever handed out (in any generation) is dropped and pymoo's mating loop, bounded
    by its ``n_max_iterations``, draws again.

    Args:
        seen: Chromosomes (tuples of choice indices) already generated.
    """

    def __init__(self, seen: AbstractSet[tuple[int, ...]]) -> None:
        super().__init__()
        self.seen = seen

    def _do(self, pop: Any, other: Any, is_duplicate: np.ndarray) -> np.ndarray:
        keys = [tuple(int(v) for v in x) for x in pop.get("X")]
        if other is None:
            taken: set[tuple[int, ...]] = set()
            for i, key in enumerate(keys):
                is_duplicate[i] = key in self.seen or key in taken
                taken.add(key)
        else:
            others = {tuple(int(v) for v in x) for x in other.get("X")}
            for i, key in enumerate(keys):
                is_duplicate[i] = is_duplicate[i] or key in others
        return is_duplicate
