"""Ray Tune searchers over categorical architecture spaces: MoGA's weighted NSGA-II, TuNAS's
REINFORCE, and random search.

Each is a ``ray.tune.search.Searcher`` that works in any Tune experiment; its state is JSON (schema
version 1) written atomically, and a restored searcher continues with exactly the candidates an
uninterrupted run would have produced.
"""
from __future__ import annotations

from core.registry import Registry

from ._base import GenerationalSearcher
from ._controller import ReinforceController, absolute_reward, mnas_reward
from ._pareto import pareto_mask
from ._space import GENERATION_KEY
from .random_search import RandomSearcher
from .reinforce import ReinforceSearcher
from .weighted_nsga2 import WeightedNSGA2Searcher

SEARCHERS: Registry[type[GenerationalSearcher]] = Registry("searcher")
SEARCHERS.register(WeightedNSGA2Searcher.name)(WeightedNSGA2Searcher)
SEARCHERS.register(RandomSearcher.name)(RandomSearcher)
SEARCHERS.register(ReinforceSearcher.name)(ReinforceSearcher)

__all__ = [
    "GENERATION_KEY",
    "GenerationalSearcher",
    "RandomSearcher",
    "ReinforceController",
    "ReinforceSearcher",
    "SEARCHERS",
    "WeightedNSGA2Searcher",
    "absolute_reward",
    "mnas_reward",
    "pareto_mask",
]
