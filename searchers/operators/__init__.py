"""The weighted NSGA-II's operators, one job per module, each a pymoo operator.

- :mod:`.sampling`: initial population covering every choice of every gene.
- :mod:`.crossover`: single-point crossover.
- :mod:`.mutation`: hierarchical mutation.
- :mod:`.crowding`: MoGA's weighted crowding distance (Eq. 5).
- :mod:`.duplicates`: no chromosome is ever generated twice.
- :mod:`.uniform`: uniform distinct chromosomes (random search).
"""
from __future__ import annotations

from .crossover import SinglePointChoiceCrossover
from .crowding import weighted_crowding, weighted_crowding_distance
from .duplicates import SeenDuplicateElimination
from .mutation import HierarchicalChoiceMutation, mutate_rows
from .sampling import CoveringChoiceSampling, covering_rows
from .uniform import sample_unique_rows

__all__ = [
    "CoveringChoiceSampling",
    "HierarchicalChoiceMutation",
    "SeenDuplicateElimination",
    "SinglePointChoiceCrossover",
    "covering_rows",
    "mutate_rows",
    "sample_unique_rows",
    "weighted_crowding",
    "weighted_crowding_distance",
]
