"""Ray Tune searchers over categorical architecture spaces: MoGA's weighted NSGA-II, TuNAS's
REINFORCE, and random search.

Each is a ``ray.tune.search.Searcher`` that works in any Tune experiment; its state is JSON (schema
version 1) written atomically, and a restored searcher continues with exactly the candidates an
uninterrupted run would have produced.

Each declares its algorithm settings as data (``SETTINGS``), so an orchestrator drives any registered
searcher through three classmethods, without knowing it by name: ``check_settings`` (validate a
config's settings up front), ``budget`` (how many candidates the search evaluates) and
``from_objectives`` (build it from the experiment's :class:`Objective` and :class:`Constraint` lists).
The contract every registered searcher keeps ships as :mod:`searchers.testing`.
"""
from __future__ import annotations

from core.registry import Registry

from ._base import GenerationalSearcher
from ._controller import ReinforceController, absolute_reward, mnas_reward
from ._objectives import Constraint, Objective, feasible
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
    "Constraint",
    "GENERATION_KEY",
    "GenerationalSearcher",
    "Objective",
    "RandomSearcher",
    "ReinforceController",
    "ReinforceSearcher",
    "SEARCHERS",
    "WeightedNSGA2Searcher",
    "absolute_reward",
    "feasible",
    "mnas_reward",
    "pareto_mask",
]
