"""Settings as data: defaults, budgets, building from an experiment's objectives, generated
signatures, and the one vocabulary of objectives and constraints."""
from __future__ import annotations

import inspect
import math
import pydoc

import pytest

from core.errors import ConfigError
from searchers import (
    SEARCHERS,
    Constraint,
    Objective,
    RandomSearcher,
    ReinforceController,
    ReinforceSearcher,
    WeightedNSGA2Searcher,
    feasible,
)
from searchers.operators.crossover import SinglePointChoiceCrossover, UniformChoiceCrossover
from searchers.testing import METRICS, MODES, SPACE, TuneSim, make

REINFORCE_REQUIRED = {"quality_metric": "acc", "cost_metric": "lat", "cost_target": 3.0}
OBJECTIVES = [Objective("acc", "max", 0.7), Objective("lat", "min", 0.3)]


def _config_field(name: str) -> str:
    return f"config field 'search.settings.{name}'"


# ---------------------------------------------------------------------- defaults and budgets
def test_nsga2_defaults_are_the_best_measured_operators() -> None:
    assert WeightedNSGA2Searcher.check_settings({}) == {
        "population_size": 50, "generations": 40, "weights": None, "crossover": "uniform",
        "force_mutation": False, "crossover_prob": 0.9, "mutation_layer_prob": None}
    mutation = _engine(WeightedNSGA2Searcher(param_space=SPACE, metric=METRICS, mode=MODES, seed=0))
    assert isinstance(mutation[0], UniformChoiceCrossover) and mutation[1].at_least_one is False


def test_mogas_operators_remain_a_setting(toy) -> None:
    moga = dict(crossover="single-point", force_mutation=True)
    crossover, mutation = _engine(make("weighted-nsga2", **moga))
    assert isinstance(crossover, SinglePointChoiceCrossover) and mutation.at_least_one is True
    sim = TuneSim(make("weighted-nsga2", **moga), toy).run()
    assert len(set(map(str, sim.suggested))) == len(sim.suggested) == 24
    assert sim.suggested != TuneSim(make("weighted-nsga2"), toy).run().suggested


def _engine(searcher: WeightedNSGA2Searcher) -> tuple:
    searcher.suggest("t0")  # the engine is built at the first suggest
    algorithm = searcher.algorithm
    return algorithm.mating.crossover, algorithm.mating.mutation


def test_random_and_reinforce_defaults() -> None:
    assert RandomSearcher.check_settings({}) == {"num_samples": 48}
    settings = ReinforceSearcher.check_settings(REINFORCE_REQUIRED)
    assert settings["num_samples"] == 2000 and settings["batch_size"] == 10
    assert settings["lr"] == 5e-3 and settings["reward"] == "absolute"


@pytest.mark.parametrize("missing", sorted(REINFORCE_REQUIRED))
def test_reinforce_metric_names_and_target_are_required(missing: str) -> None:
    given = {k: v for k, v in REINFORCE_REQUIRED.items() if k != missing}
    with pytest.raises(ConfigError, match=rf"^{_config_field(missing)}: is required by searcher "
                                          r"reinforce\. HINT: .*e\.g\."):
        ReinforceSearcher.check_settings(given, where=_config_field)


@pytest.mark.parametrize("cls, settings, budget", [
    (WeightedNSGA2Searcher, {}, 2000),
    (WeightedNSGA2Searcher, {"population_size": 7, "generations": 3}, 21),
    (RandomSearcher, {}, 48),
    (RandomSearcher, {"num_samples": 5}, 5),
    (ReinforceSearcher, REINFORCE_REQUIRED, 2000),
    (ReinforceSearcher, {**REINFORCE_REQUIRED, "num_samples": 30, "batch_size": 7}, 30),
])
def test_budget(cls, settings, budget) -> None:
    assert cls.budget(settings) == budget
    assert cls.budget(cls.check_settings(settings)) == budget


def test_budget_checks_its_settings() -> None:
    with pytest.raises(ConfigError, match="'generations': must be an integer in \[1, 100000\], got 0"):
        WeightedNSGA2Searcher.budget({"generations": 0})


# ---------------------------------------------------------------------- check_settings
def test_unknown_names_are_a_config_error_never_a_type_error() -> None:
    for name in SEARCHERS.names():
        with pytest.raises(ConfigError, match=r"setting 'popsize': unknown setting for searcher"):
            SEARCHERS.get(name)(param_space=SPACE, seed=0, popsize=3)
    with pytest.raises(ConfigError, match=r"^lrr: unknown setting for ReinforceController; its "
                                          r"settings are: lr, baseline_momentum, entropy_weight\."):
        ReinforceController(sizes=[2], lrr=0.1)


def test_check_settings_names_the_config_field() -> None:
    message = (rf"^{_config_field('crossover')}: must be one of single-point, uniform, got 'two-point'\. "
               r"HINT: use 'uniform' \(the default\) or 'single-point' \(MoGA's\)\.$")
    with pytest.raises(ConfigError, match=message):
        WeightedNSGA2Searcher.check_settings({"crossover": "two-point"}, where=_config_field)
    same = {**REINFORCE_REQUIRED, "cost_metric": "acc"}
    with pytest.raises(ConfigError, match=rf"^{_config_field('cost_metric')}: must differ from quality_metric"):
        ReinforceSearcher.check_settings(same, where=_config_field)


def test_check_settings_against_objectives() -> None:
    resolved = WeightedNSGA2Searcher.check_settings({}, objectives=OBJECTIVES)
    assert resolved["weights"] == [0.7, 0.3]
    with pytest.raises(ConfigError, match=rf"^{_config_field('weights')}: is taken from the objectives' "
                                          r"weights \[0.7, 0.3\], got \[0.5, 0.5\]\. HINT: remove it"):
        WeightedNSGA2Searcher.check_settings({"weights": [0.5, 0.5]}, objectives=OBJECTIVES,
                                             where=_config_field)
    renamed = {**REINFORCE_REQUIRED, "quality_metric": "top1"}
    with pytest.raises(ConfigError, match=rf"^{_config_field('quality_metric')}: must be one of the metrics"):
        ReinforceSearcher.check_settings(renamed, objectives=OBJECTIVES, where=_config_field)
    # A cost read only by a constraint is enough for REINFORCE.
    only_acc = [Objective("acc", "max", 1.0)]
    ReinforceSearcher.check_settings(REINFORCE_REQUIRED, objectives=only_acc,
                                     constraints=[Constraint("lat", "<=", 4.0)])
    with pytest.raises(ConfigError, match=r"'cost_metric': must be a metric with mode 'min'"):
        ReinforceSearcher.check_settings(REINFORCE_REQUIRED, objectives=only_acc)


# ---------------------------------------------------------------------- from_objectives
def test_from_objectives_passes_the_weights_to_nsga2() -> None:
    searcher = WeightedNSGA2Searcher.from_objectives(
        param_space=SPACE, objectives=OBJECTIVES, constraints=[Constraint("lat", "<=", 3)], seed=0,
        settings={"population_size": 4, "generations": 2})
    assert searcher.settings["weights"] == [0.7, 0.3]
    assert searcher.metric == ["acc", "lat"] and searcher.mode == ["max", "min"]
    state = searcher.get_state()["settings"]
    assert state["weights"] == [0.7, 0.3] and state["constraints"] == [["lat", "<=", 3.0]]
    searcher.suggest("t0")
    assert list(searcher.algorithm.survival.crowding_func.function.weights) == [0.7, 0.3]


@pytest.mark.parametrize("with_objectives", [False, True])
def test_from_objectives_takes_settings_check_settings_resolved(with_objectives: bool) -> None:
    # What an orchestrator does: resolve the config's settings up front, build from them later.
    objectives = OBJECTIVES if with_objectives else None
    for cls, given in [(WeightedNSGA2Searcher, {"generations": 2}), (RandomSearcher, {}),
                       (ReinforceSearcher, REINFORCE_REQUIRED)]:
        resolved = cls.check_settings(given, objectives=objectives)
        searcher = cls.from_objectives(param_space=SPACE, objectives=OBJECTIVES, constraints=(),
                                       seed=0, settings=resolved)
        assert searcher.settings == cls.check_settings(given, objectives=OBJECTIVES)


def test_from_objectives_ignores_weights_where_unused() -> None:
    searcher = RandomSearcher.from_objectives(param_space=SPACE, objectives=OBJECTIVES, constraints=(),
                                              seed=0, settings={"num_samples": 5})
    assert searcher.settings == {"num_samples": 5}


def test_from_objectives_names_the_config_field() -> None:
    def build(cls, settings):
        return cls.from_objectives(param_space=SPACE, objectives=OBJECTIVES, constraints=(), seed=0,
                                   settings=settings, where=_config_field)

    with pytest.raises(ConfigError, match=rf"^{_config_field('generations')}: must be an integer in \[1, 100000\]"):
        build(WeightedNSGA2Searcher, {"generations": 0})
    with pytest.raises(ConfigError, match=rf"^{_config_field('quality_metric')}: must be one of the metrics"):
        build(ReinforceSearcher, {**REINFORCE_REQUIRED, "quality_metric": "top1"})
    with pytest.raises(ConfigError, match=r"^constraints\[0\]: the op must be one of"):
        RandomSearcher.from_objectives(param_space=SPACE, objectives=OBJECTIVES, seed=0, settings={},
                                       constraints=[Constraint("lat", "<", 3.0)])


# ---------------------------------------------------------------------- signatures
def test_generated_signature_and_help() -> None:
    parameters = inspect.signature(WeightedNSGA2Searcher).parameters
    assert list(parameters)[:5] == ["param_space", "metric", "mode", "seed", "constraints"]
    assert parameters["seed"].default == 0  # deterministic by default; a bare Searcher() can be built to restore() into
    assert parameters["crossover"].default == "uniform" and parameters["population_size"].default == 50
    assert inspect.signature(ReinforceSearcher).parameters["cost_target"].default is inspect.Parameter.empty
    text = pydoc.render_doc(WeightedNSGA2Searcher)
    assert "crossover='uniform'" in text and "force_mutation=False" in text
    controller = inspect.signature(ReinforceController).parameters
    assert list(controller) == ["sizes", "betas", "eps", "lr", "baseline_momentum", "entropy_weight"]


def test_controller_hyperparameters_are_declared_once() -> None:
    names = [s.name for s in ReinforceController.SETTINGS]
    assert [s for s in ReinforceSearcher.SETTINGS if s.name in names] == list(ReinforceController.SETTINGS)


# ---------------------------------------------------------------------- one vocabulary
def test_constraint_satisfied_violation_and_feasible() -> None:
    upper, lower = Constraint("lat", "<=", 5.0), Constraint("acc", ">=", 0.7)
    assert upper.satisfied(5.0) and not upper.satisfied(5.5) and not upper.satisfied(math.nan)
    assert upper.violation(6.0) == pytest.approx(1.0) and upper.violation(4.0) == pytest.approx(-1.0)
    assert lower.satisfied(0.7) and not lower.satisfied(0.6)
    assert lower.violation(0.5) == pytest.approx(0.2)
    assert feasible({"lat": 4.0, "acc": 0.8}, [upper, lower])
    assert not feasible({"lat": 4.0, "acc": 0.6}, [upper, lower])
    assert feasible({}, [])
    with pytest.raises(KeyError):
        feasible({"lat": 4.0}, [lower])


def test_objective_and_constraint_are_frozen_values() -> None:
    assert Constraint("lat", "<=", 5.0) == Constraint("lat", "<=", 5.0)
    assert hash(Objective("acc", "max", 0.5)) == hash(Objective("acc", "max", 0.5))
    with pytest.raises(AttributeError):
        Constraint("lat", "<=", 5.0).value = 3.0  # type: ignore[misc]
