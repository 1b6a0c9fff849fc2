"""TuNAS's REINFORCE search (Bender et al. 2020) as a Ray Tune searcher over finished trials."""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

from core.settings import REQUIRED, Setting, choice, integer, number
from core.validation import invalid

from ._base import GIVEN, Evaluation, GenerationalSearcher
from ._controller import ReinforceController, absolute_reward, mnas_reward
from ._objectives import Objectives
from ._space import Chromosome
from .operators import sample_unique_rows

__all__ = ["ReinforceSearcher"]

#: Extra policy draws per generation (times ``batch_size``) to find unseen candidates before
#: falling back to uniform ones; bounds the work when the policy has converged.
_EXTRA_DRAWS = 4


def _metric_name(where: str, value: Any, hint: str) -> str:
    """A :data:`core.settings.Check`: a non-empty metric name."""
    if not isinstance(value, str) or not value:
        raise invalid(where, "must be a non-empty metric name", value, hint)
    return value


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
        param_space, metric, mode, seed, constraints: See :class:`~searchers.GenerationalSearcher`.
            ``metric`` must include ``quality_metric`` (mode ``"max"``) and, unless a constraint
            reads it, ``cost_metric`` (mode ``"min"``); constraint violators count as failed.
        num_samples: Evaluations in all (``>= 1``).
        quality_metric: The metric rewarded (e.g. accuracy). Required.
        cost_metric: The cost ``c(M)`` (e.g. latency). Required.
        cost_target: The cost budget ``c0`` (``> 0``). Required.
        reward: ``"absolute"`` or ``"mnas"``.
        tau: Absolute-reward cost weight (``< 0``).
        w: MnasNet exponent (``<= 0``).
        batch_size: Draws per controller update, i.e. per generation (``>= 1``).
        lr: Adam learning rate (``> 0``).
        baseline_momentum: Weight of the old baseline in each update, in ``[0, 1)``.
        entropy_weight: Entropy bonus weight (``>= 0``).

    Raises:
        ConfigError: an argument breaks its rule.
    """

    name = "reinforce"
    SETTINGS = (
        # 2000: NSGA-II's default budget, so switching searchers keeps the cost. REINFORCE needs
        # thousands: in BENCHMARKS.md its first hits of the best architecture came at 1124-2463.
        Setting("num_samples", 2000, integer(minimum=1, maximum=1_000_000), "ask for at least one evaluation"),
        # No defaults: a searcher for any Tune experiment cannot guess the metric names or the budget.
        Setting("quality_metric", REQUIRED, _metric_name,
                "name a metric your trainable reports, e.g. 'accuracy'"),
        Setting("cost_metric", REQUIRED, _metric_name,
                "name a metric your trainable reports, e.g. 'latency_ms'"),
        Setting("cost_target", REQUIRED, number(low=0.0, low_open=True),
                "pass the cost budget c0, e.g. 5.0 (ms)"),
        Setting("reward", "absolute", choice("absolute", "mnas"),
                "'absolute' is TuNAS's reward, 'mnas' MnasNet's"),
        Setting("tau", -0.5, number(high=0.0, high_open=True), "TuNAS's tau is negative, e.g. -0.5"),
        Setting("w", -0.07, number(high=0.0), "MnasNet uses w=-0.07"),
        Setting("batch_size", 10, integer(minimum=1, maximum=10_000), "draws per controller update; e.g. 10"),
        *ReinforceController.SETTINGS,
    )

    def __init__(self, **kwargs: Any) -> None:
        self._controller: ReinforceController | None = None
        self._draws: list[Chromosome] = []  # this generation's policy draws, in draw order
        self._results: dict[Chromosome, dict[str, float] | None] = {}
        super().__init__(**kwargs)
        # Empty for a bare searcher: restore() builds it again with the saved settings.
        self._hyper = {s.name: self._config[s.name] for s in ReinforceController.SETTINGS} if self._config else {}

    @classmethod
    def example_settings(cls, *, metric: Sequence[str], mode: Sequence[str]) -> dict[str, Any]:
        """The first ``max`` metric is the quality, the first ``min`` one the cost (target 1), 24
        samples in batches of 6, and a learning rate large enough to move the policy in 4 steps."""
        modes = dict(zip(metric, mode))
        quality = next((m for m in metric if modes[m] == "max"), None)
        cost = next((m for m in metric if modes[m] == "min"), None)
        if quality is None or cost is None:
            raise invalid("metric", "needs a 'max' metric (quality) and a 'min' metric (cost)",
                          list(metric), "pass e.g. metric=['acc', 'lat'], mode=['max', 'min']")
        return {"num_samples": 24, "batch_size": 6, "quality_metric": quality, "cost_metric": cost,
                "cost_target": 1.0, "lr": 0.1}

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
        config = self._config
        quality, cost = metrics[config["quality_metric"]], metrics[config["cost_metric"]]
        if config["reward"] == "absolute":
            return absolute_reward(quality, cost, cost_target=config["cost_target"], tau=config["tau"])
        if cost <= 0:
            return None
        value = mnas_reward(quality, cost, cost_target=config["cost_target"], w=config["w"])
        return value if math.isfinite(value) else None

    # ------------------------------------------------------------------ hooks
    @classmethod
    def _budget(cls, settings: dict[str, Any]) -> int:
        return settings["num_samples"]

    @classmethod
    def _generation_size(cls, settings: dict[str, Any]) -> int:
        return min(settings["batch_size"], settings["num_samples"])

    @classmethod
    def _check_combination(cls, settings: dict[str, Any], where: Callable[[str], str]) -> None:
        if settings["quality_metric"] == settings["cost_metric"]:
            raise invalid(where("cost_metric"), "must differ from quality_metric",
                          settings["cost_metric"],
                          "reward quality (e.g. 'accuracy') against a cost (e.g. 'latency_ms')")

    @classmethod
    def _check_objectives(cls, settings: dict[str, Any], objectives: Objectives,
                          where: Callable[[str], str]) -> None:
        modes = dict(zip(objectives.metrics, objectives.modes))
        quality, cost = settings["quality_metric"], settings["cost_metric"]
        if modes.get(quality) != "max":
            raise invalid(where("quality_metric"), "must be one of the metrics, with mode 'max'",
                          quality, f"add it to metric= with mode 'max' (metrics: "
                          f"{list(objectives.metrics)})")
        if cost not in objectives.tracked or modes.get(cost, "min") != "min":
            raise invalid(where("cost_metric"), "must be a metric with mode 'min' (or a constraint's)",
                          cost, f"add it to metric= with mode 'min' (metrics: "
                          f"{list(objectives.metrics)})")

    def _total_generations(self) -> int:
        return -(-self._config["num_samples"] // self._config["batch_size"])

    def _first_generation(self) -> list[Chromosome]:
        return self._draw_generation()

    def _next_generation(self, evaluations: list[Evaluation], indices: list[int],
                         last: bool) -> list[Chromosome]:
        self._results.update((e.chromosome, e.metrics) for e in evaluations)
        self._learn()
        if last or self._handed_out() >= self._config["num_samples"]:
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
    def _handed_out(self) -> int:
        """Candidates of the finished generations: the budget counts these, not results given."""
        return sum(1 for e in self._archive if e.generation != GIVEN)

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
        controller, rng, batch = self.controller, self._rng, self._config["batch_size"]
        need = min(batch, self._config["num_samples"] - self._handed_out())
        self._draws = [controller.sample(rng) for _ in range(batch)]
        members: dict[Chromosome, None] = {}
        extra = (controller.sample(rng) for _ in range(_EXTRA_DRAWS * batch))
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

