"""Seeded uniform random search without repeats: the baseline every NAS result is compared with."""
from __future__ import annotations

from typing import Any, Sequence

from core.settings import Setting, integer

from ._base import Evaluation, GenerationalSearcher
from ._space import Chromosome
from .operators import sample_unique_rows

__all__ = ["RandomSearcher"]


class RandomSearcher(GenerationalSearcher):
    """``num_samples`` distinct configurations drawn uniformly, as one generation (number 0).

    It follows the same protocol as :class:`~searchers.WeightedNSGA2Searcher`: ``None`` once all
    samples are handed out but some are still running, ``FINISHED`` when all are back; a space
    smaller than ``num_samples`` is simply exhausted. Constraints only keep violators off
    :meth:`pareto_front`.

    Args:
        param_space, metric, mode, seed, constraints: See :class:`~searchers.GenerationalSearcher`.
        num_samples: How many configurations (``>= 1``).

    Raises:
        ConfigError: an argument breaks its rule.
    """

    name = "random"
    SETTINGS = (
        # 48: what hwnas's orchestrator ran when a config named no budget (its former default).
        Setting("num_samples", 48, integer(minimum=1, maximum=1_000_000), "ask for at least one configuration"),
    )

    @classmethod
    def example_settings(cls, *, metric: Sequence[str], mode: Sequence[str]) -> dict[str, Any]:
        return {"num_samples": 24}

    @classmethod
    def _budget(cls, settings: dict[str, Any]) -> int:
        return settings["num_samples"]

    def _total_generations(self) -> int:
        return 1

    def _first_generation(self) -> list[Chromosome]:
        # Drawn in one go at the first suggest: a few ms even for 10^4 samples, and the state
        # then needs no sampler of its own.
        return sample_unique_rows(self._require_configured().sizes, self._config["num_samples"],
                                  self._rng, self._seen)

    def _next_generation(self, evaluations: list[Evaluation], indices: list[int],
                         last: bool) -> list[Chromosome]:
        return []
