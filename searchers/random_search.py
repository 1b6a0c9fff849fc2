"""Seeded uniform random search without repeats: the baseline every NAS result is compared with."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from ray.tune.search.sample import Categorical

from ._base import Evaluation, GenerationalSearcher
from ._space import Chromosome
from ._validation import check_int
from .operators import sample_unique_rows

__all__ = ["RandomSearcher"]


class RandomSearcher(GenerationalSearcher):
    """``num_samples`` distinct configurations drawn uniformly, as one generation (number 0).

    It follows the same protocol as :class:`~searchers.WeightedNSGA2Searcher`: ``None`` once all
    samples are handed out but some are still running, ``FINISHED`` when all are back; a space
    smaller than ``num_samples`` is simply exhausted.

    Args:
        param_space: Ordered ``{name: choices}`` (lists or ``tune.choice``); ``None``: taken from
            the Tuner's ``param_space``.
        metric: Metric names recorded for :meth:`pareto_front` (a string for one).
        mode: ``"max"``/``"min"`` per metric.
        seed: Experiment seed; the searcher's generator is derived from it.
        num_samples: How many configurations (``>= 1``).
        constraints: ``(metric, "<=" | ">=", bound)`` triples; violators are left off the front.

    Raises:
        ConfigError: an argument breaks its rule.
    """

    name = "random"

    def __init__(
        self,
        *,
        param_space: Mapping[str, Sequence[Any] | Categorical] | None = None,
        metric: str | list[str] | None = None,
        mode: str | list[str] | None = None,
        seed: int,
        num_samples: int,
        constraints: Sequence[tuple[str, str, float]] = (),
    ) -> None:
        self._num_samples = check_int("num_samples", num_samples, minimum=1,
                                      hint="ask for at least one configuration.")
        super().__init__(param_space=param_space, metric=metric, mode=mode, seed=seed,
                         constraints=constraints)

    def _total_generations(self) -> int:
        return 1

    def _algorithm_settings(self) -> dict[str, Any]:
        return {"num_samples": self._num_samples}

    def _first_generation(self) -> list[Chromosome]:
        # Drawn in one go at the first suggest: a few ms even for 10^4 samples, and the state
        # then needs no sampler of its own.
        return sample_unique_rows(self._require_configured().sizes, self._num_samples, self._rng,
                                  self._seen)

    def _next_generation(self, evaluations: list[Evaluation], first_index: int,
                         last: bool) -> list[Chromosome]:
        return []
