"""Ray Tune searchers over categorical architecture spaces: MoGA's weighted NSGA-II and random search.

Each is a ``ray.tune.search.Searcher`` that works in any Tune experiment; its state is JSON (schema
version 1) written atomically, and a restored searcher continues with exactly the candidates an
uninterrupted run would have produced.
"""
from __future__ import annotations

from spaces.registry import Registry

from ._base import GenerationalSearcher
from ._pareto import pareto_mask
from ._space import GENERATION_KEY
from .random_search import RandomSearcher
from .weighted_nsga2 import WeightedNSGA2Searcher

SEARCHERS: Registry[type[GenerationalSearcher]] = Registry("searcher")
SEARCHERS.register(WeightedNSGA2Searcher.name)(WeightedNSGA2Searcher)
SEARCHERS.register(RandomSearcher.name)(RandomSearcher)

__all__ = [
    "GENERATION_KEY",
    "GenerationalSearcher",
    "RandomSearcher",
    "SEARCHERS",
    "WeightedNSGA2Searcher",
    "pareto_mask",
]
