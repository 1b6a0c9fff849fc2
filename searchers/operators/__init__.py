"""The weighted NSGA-II's operators, one job per module, each a pymoo operator.

- :mod:`.sampling`: initial population covering every choice of every gene.
- :mod:`.crossover`: single-point (MoGA) and uniform crossover.
- :mod:`.mutation`: hierarchical mutation.
- :mod:`.crowding`: MoGA's weighted crowding distance (Eq. 5).
- :mod:`.duplicates`: no chromosome is ever generated twice.
- :mod:`.uniform`: uniform distinct chromosomes (random search).
"""
from __future__ import annotations

from .crossover import CROSSOVERS, SinglePointChoiceCrossover, UniformChoiceCrossover, make_crossover
from .crowding import weighted_crowding, weighted_crowding_distance
from .duplicates import SeenDuplicateElimination
from .mutation import HierarchicalChoiceMutation, mutate_rows
from .sampling import CoveringChoiceSampling, covering_rows
from .uniform import sample_unique_rows

__all__ = [
    "CROSSOVERS",
    "UniformChoiceCrossover",
    "make_crossover",
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
