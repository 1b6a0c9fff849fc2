"""TuNAS's REINFORCE search (Bender et al. 2020) as a Ray Tune searcher over finished trials."""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from ray.tune.search.sample import Categorical

from ._base import Evaluation, GenerationalSearcher
from ._controller import ReinforceController, absolute_reward, mnas_reward
from ._objectives import Objectives
from ._space import Chromosome
from ._validation import check_float, check_int, config_error
from .operators import sample_unique_rows

__all__ = ["ReinforceSearcher"]

_REWARDS = ("absolute", "mnas")
#: Extra policy draws per generation (times ``batch_size``) to find unseen candidates before
#: falling back to uniform ones; bounds the work when the policy has converged.
_EXTRA_DRAWS = 4


class ReinforceSearcher(GenerationalSearcher):
    """A REINFORCE controller over a categorical space, rewarded by finished Tune trials.

    Each generation draws ``batch_size`` architectures from the controller (independent
    categorical logits per parameter). When the generation is complete, the controller takes one
    REINFORCE step (moving-average baseline, Adam with TuNAS's ``lr=5e-3, betas=(0, 0.999),
    eps=1e-8``, optional entropy bonus) on the rewards of those draws:

    * ``reward="absolute"`` (TuNAS): ``quality + tau * |cost / cost_target - 1|``, ``tau < 0``;
    * ``reward="mnas"`` (MnasNet): ``quality * (cost / cost_target) ** w``.

    Candidates are never evaluated twice: a draw that was evaluated before is rewarded with its
    recorded result and is not handed out again. Each generation is topped up to ``batch_size``
    unseen candidates (more policy draws, then uniform ones), which are evaluated and recorded but
    do not enter the policy gradient, so the budget of ``num_samples`` evaluations is spent even
    when the policy has converged. A failed trial, or one that violates a constraint (or, for
    ``"mnas"``, has a cost ``<= 0``), gets the lowest reward of its batch's successful draws; a
    batch without any success leaves the controller unchanged.

    The searcher follows the protocol of :class:`~searchers.WeightedNSGA2Searcher` (``None`` while a
    generation is in flight, ``FINISHED`` at the end, JSON state, exact continuation after a
    restore). :meth:`best` is TuNAS's result, the controller's most likely architecture; the
    controller itself (:class:`~searchers.ReinforceController`) is also usable step by step.

    Args:
        param_space: Ordered ``{name: choices}`` (lists or ``tune.choice``); ``None``: taken from
            the Tuner's ``param_space``.
        metric: Metric names; must include ``quality_metric`` (mode ``"max"``) and, unless a
            constraint reads it, ``cost_metric`` (mode ``"min"``).
        mode: ``"max"``/``"min"`` per metric.
        seed: Experiment seed; the searcher's generator is derived from it.
        num_samples: Evaluations in all (``>= 1``).
        quality_metric: The metric rewarded (e.g. accuracy).
        cost_metric: The cost ``c(M)`` (e.g. latency).
        cost_target: The cost budget ``c0`` (``> 0``).
        reward: ``"absolute"`` or ``"mnas"``.
        tau: Absolute-reward cost weight (``< 0``).
        w: MnasNet exponent (``<= 0``).
        lr: Adam learning rate (``> 0``).
        batch_size: Draws per controller update, i.e. per generation (``>= 1``).
        baseline_momentum: Weight of the old baseline in each update, in ``[0, 1)``.
        entropy_weight: Entropy bonus weight (``>= 0``).
        constraints: ``(metric, "<=" | ">=", bound)`` triples; violators count as failed.

    Raises:
        ConfigError: an argument breaks its rule.
    """

    name = "reinforce"

    def __init__(
        self,
        *,
        param_space: Mapping[str, Sequence[Any] | Categorical] | None = None,
        metric: str | list[str] | None = None,
        mode: str | list[str] | None = None,
        seed: int,
        num_samples: int,
        quality_metric: str,
        cost_metric: str,
        cost_target: float,
        reward: str = "absolute",
        tau: float = -0.5,
        w: float = -0.07,
        lr: float = 5e-3,
        batch_size: int = 10,
        baseline_momentum: float = 0.95,
        entropy_weight: float = 0.0,
        constraints: Sequence[tuple[str, str, float]] = (),
    ) -> None:
        self._num_samples = check_int("num_samples", num_samples, minimum=1,
                                      hint="ask for at least one evaluation.")
        self._batch_size = check_int("batch_size", batch_size, minimum=1,
                                     hint="draws per controller update; e.g. 10.")
        self._quality, self._cost = _check_metric_names(quality_metric, cost_metric)
        self._cost_target = check_float("cost_target", cost_target, low=0.0, low_open=True,
                                        hint="pass the cost budget c0, e.g. 5.0 (ms).")
        if reward not in _REWARDS:
            raise config_error("reward", f"must be one of {list(_REWARDS)}", reward,
                               "'absolute' is TuNAS's reward, 'mnas' MnasNet's.")
        self._reward_kind = reward
        self._tau = check_float("tau", tau, high=0.0, hint="TuNAS's tau is negative, e.g. -0.5.")
        self._w = check_float("w", w, hint="MnasNet uses w=-0.07.")
        if self._w > 0:
            raise config_error("w", "must be a finite number <= 0", w, "MnasNet uses w=-0.07.")
        # Validates lr, baseline_momentum and entropy_weight eagerly.
        self._hyper = dict(lr=lr, baseline_momentum=baseline_momentum, entropy_weight=entropy_weight)
        ReinforceController(sizes=[1], **self._hyper)
        self._controller: ReinforceController | None = None
        self._draws: list[Chromosome] = []  # this generation's policy draws, in draw order
        self._results: dict[Chromosome, dict[str, float] | None] = {}
        super().__init__(param_space=param_space, metric=metric, mode=mode, seed=seed,
                         constraints=constraints)

    # ------------------------------------------------------------------ results
    @property
    def controller(self) -> ReinforceController:
        """The controller (uniform until the first generation is complete)."""
        if self._controller is None:
            sizes = self._require_configured().sizes
            self._controller = ReinforceController(sizes=sizes, **self._hyper)
        return self._controller

    def best(self) -> dict[str, Any]:
        """TuNAS's result: the controller's most likely architecture.

        Returns:
            ``config`` (parameter values), ``chromosome``, ``probability`` (of that architecture
            under the policy) and ``metrics`` (its result if evaluated and successful, else ``None``).
        """
        space, controller = self._require_configured(), self.controller
        chromosome = controller.argmax()
        probability = math.prod(float(p[i]) for p, i in zip(controller.probabilities(), chromosome))
        metrics = self._results.get(chromosome)
        return {"config": space.values(chromosome), "chromosome": list(chromosome),
                "probability": probability, "metrics": None if metrics is None else dict(metrics)}

    def probabilities(self) -> dict[str, list[float]]:
        """The policy: per parameter name, the probability of each choice."""
        space = self._require_configured()
        return {n: p.tolist() for n, p in zip(space.names, self.controller.probabilities())}

    def reward(self, metrics: Mapping[str, float] | None) -> float | None:
        """The reward of a result's metrics; ``None`` for a failed or infeasible one."""
        objectives = self._require_objectives()
        if metrics is None or not objectives.feasible(metrics):
            return None
        quality, cost = metrics[self._quality], metrics[self._cost]
        if self._reward_kind == "absolute":
            return absolute_reward(quality, cost, cost_target=self._cost_target, tau=self._tau)
        if cost <= 0:
            return None
        value = mnas_reward(quality, cost, cost_target=self._cost_target, w=self._w)
        return value if math.isfinite(value) else None

    # ------------------------------------------------------------------ hooks
    def _check_objectives(self, objectives: Objectives) -> None:
        modes = dict(zip(objectives.metrics, objectives.modes))
        if modes.get(self._quality) != "max":
            raise config_error("quality_metric", "must be one of the metrics, with mode 'max'",
                               self._quality, f"add it to metric= with mode 'max' (metrics: "
                               f"{list(objectives.metrics)}).")
        if self._cost not in objectives.tracked or modes.get(self._cost, "min") != "min":
            raise config_error("cost_metric", "must be a metric with mode 'min' (or a constraint's)",
                               self._cost, f"add it to metric= with mode 'min' (metrics: "
                               f"{list(objectives.metrics)}).")

    def _total_generations(self) -> int:
        return -(-self._num_samples // self._batch_size)

    def _algorithm_settings(self) -> dict[str, Any]:
        return {"num_samples": self._num_samples, "batch_size": self._batch_size,
                "quality_metric": self._quality, "cost_metric": self._cost,
                "cost_target": self._cost_target, "reward": self._reward_kind, "tau": self._tau,
                "w": self._w, **{k: float(v) for k, v in self._hyper.items()}}

    def _first_generation(self) -> list[Chromosome]:
        return self._draw_generation()

    def _next_generation(self, evaluations: list[Evaluation], first_index: int,
                         last: bool) -> list[Chromosome]:
        self._results.update((e.chromosome, e.metrics) for e in evaluations)
        self._learn()
        if last or len(self._archive) >= self._num_samples:
            self._draws = []
            return []
        return self._draw_generation()

    def _algorithm_state(self) -> dict[str, Any]:
        if self._controller is None:
            return {}
        return {"controller": self._controller.state(), "draws": [list(d) for d in self._draws]}

    def _parse_algorithm_state(self, state: Any, archive: list[Evaluation]) -> Any:
        if not state:
            return None
        controller = ReinforceController(sizes=self._require_configured().sizes, **self._hyper)
        controller.load_state(state["controller"])
        draws = [tuple(int(v) for v in d) for d in state["draws"]]
        if any(len(d) != len(controller.sizes) for d in draws):
            raise ValueError("draws do not match the parameter space")
        return controller, draws

    def _apply_algorithm_state(self, parsed: Any) -> None:
        self._controller, self._draws = (None, []) if parsed is None else parsed
        self._results = {e.chromosome: e.metrics for e in self._archive}

    # ------------------------------------------------------------------ internals
    def _learn(self) -> None:
        """One controller step on this generation's draws (those with a recorded result)."""
        draws = [d for d in self._draws if d in self._results]
        rewards = [self.reward(self._results[d]) for d in draws]
        successful = [r for r in rewards if r is not None]
        if not successful:
            return
        worst = min(successful)
        self.controller.update(draws, [worst if r is None else r for r in rewards])

    def _draw_generation(self) -> list[Chromosome]:
        """Draw ``batch_size`` from the policy; return the unseen ones, topped up to the budget."""
        controller, rng = self.controller, self._rng
        need = min(self._batch_size, self._num_samples - len(self._archive))
        self._draws = [controller.sample(rng) for _ in range(self._batch_size)]
        members: dict[Chromosome, None] = {}
        extra = (controller.sample(rng) for _ in range(_EXTRA_DRAWS * self._batch_size))
        for draw in self._draws:
            if len(members) < need and draw not in self._seen:
                members[draw] = None
        for draw in extra:
            if len(members) >= need:
                break
            if draw not in self._seen:
                members[draw] = None
        if len(members) < need:
            taken = self._seen | set(members)
            rows = sample_unique_rows(self._require_configured().sizes, need - len(members), rng, taken)
            members.update(dict.fromkeys(rows))
        return list(members)


def _check_metric_names(quality_metric: Any, cost_metric: Any) -> tuple[str, str]:
    for argument, value, example in (("quality_metric", quality_metric, "accuracy"),
                                     ("cost_metric", cost_metric, "latency_ms")):
        if not isinstance(value, str) or not value:
            raise config_error(argument, "must be a non-empty metric name", value,
                               f"name a metric your trainable reports, e.g. {example!r}.")
    if quality_metric == cost_metric:
        raise config_error("cost_metric", "must differ from quality_metric", cost_metric,
                           "reward quality (e.g. 'accuracy') against a cost (e.g. 'latency_ms').")
    return quality_metric, cost_metric
