"""The searcher-quality benchmark's problems: deterministic, the stored LUT fits the space, the ZDT
ceiling holds, and bad arguments give clear errors. (Needs no optuna: only hwnas's searchers run.)"""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.nas_problems import (
    DEFAULT_LUT,
    DiscreteZDT,
    MogaLutProblem,
    ProblemError,
    drive,
    load_lut,
    make_problem,
)
from searchers import RandomSearcher, WeightedNSGA2Searcher


@pytest.fixture(scope="module")
def moga() -> MogaLutProblem:
    return MogaLutProblem(objectives=3)


def _random_chromosomes(problem, n: int, seed: int) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    return [tuple(int(rng.integers(len(c))) for c in problem.choices) for _ in range(n)]


@pytest.mark.parametrize("name", ["zdt1", "zdt2", "zdt3", "moga2", "moga3"])
def test_problems_are_deterministic(name: str) -> None:
    first, second = make_problem(name), make_problem(name)
    for x in _random_chromosomes(first, 5, seed=1):
        config = dict(zip(first.names, (c[i] for c, i in zip(first.choices, x))), hwnas_generation=3)
        assert first.chromosome(config) == x
        assert first.evaluate(config) == second.evaluate(config)
    assert first.describe() == second.describe()


def test_stored_lut_loads_and_matches_the_space(moga: MogaLutProblem) -> None:
    space, model = load_lut(DEFAULT_LUT)
    assert space.settings["input_size"] == 224 and space.settings["num_classes"] == 1000
    table = json.loads(DEFAULT_LUT.read_text())["cost_model"]["state"]["table_ms"]
    assert [len(row) for row in table] == [d.size for d in space.dims]
    assert all(v > 0 for row in table for v in row)
    for x in _random_chromosomes(moga, 5, seed=2):
        metrics = moga.evaluate_chromosome(x)
        counts = space.count(list(x))
        assert metrics["latency_ms"] == pytest.approx(model.predict(list(x)), rel=1e-12)
        assert metrics["params_m"] * 1e6 == pytest.approx(counts["params"], rel=1e-12)
        assert metrics["madds_m"] * 1e6 == pytest.approx(counts["madds"], rel=1e-12)
        assert 0.55 < metrics["accuracy"] < 0.85


def test_moga_box_contains_every_candidate(moga: MogaLutProblem) -> None:
    X = np.random.default_rng(3).integers(0, 12, size=(2000, 14))
    F = moga.normalise(moga.minimised([moga.evaluate_chromosome(x) for x in X[:200]]))
    assert (F >= 0).all() and (F <= 1).all()
    m = moga.evaluate_many(X)
    assert moga.full_latency.low <= m["latency_ms"].min() and m["latency_ms"].max() <= moga.full_latency.high


def test_enumerated_best_is_the_best() -> None:
    problem = MogaLutProblem(choices=(0, 8, 11))
    reward = lambda acc, lat: acc - 0.5 * np.abs(lat / 7.0 - 1.0)  # noqa: E731
    best, value = problem.best_reward(reward)
    m = problem.evaluate_chromosome(best)
    assert reward(m["accuracy"], m["latency_ms"]) == pytest.approx(value)
    X = np.random.default_rng(4).integers(0, 3, size=(5000, 14))
    sampled = problem.evaluate_many(X)
    assert reward(sampled["accuracy"], sampled["latency_ms"]).max() <= value + 1e-12


@pytest.mark.parametrize("which", ["zdt1", "zdt2", "zdt3"])
def test_zdt_ceiling_bounds_every_searcher(which: str) -> None:
    problem = DiscreteZDT(which, n_var=6, levels=5)
    ceiling = problem.ceiling()
    assert 0 < ceiling <= problem.continuous_ceiling() + 1e-9
    searchers = [
        WeightedNSGA2Searcher(param_space=problem.tune_space(), metric=["f1", "f2"], mode=["min", "min"],
                              population_size=10, generations=6, seed=0),
        RandomSearcher(param_space=problem.tune_space(), metric=["f1", "f2"], mode=["min", "min"],
                       num_samples=60, seed=0),
    ]
    for searcher in searchers:
        run = drive(searcher, problem, 60)
        assert len(run.results) == 60
        assert problem.hypervolume(run.results) <= ceiling + 1e-12
    # Evaluating every x1 level with all other variables 0 reaches the ceiling exactly.
    optimum = [problem.evaluate_chromosome((i,) + (0,) * 5) for i in range(5)]
    assert problem.hypervolume(optimum) == pytest.approx(ceiling)
    if which != "zdt3":  # ZDT3's front is disconnected: some x1 levels are dominated there
        assert np.allclose(problem.minimised(optimum), problem.discrete_front())


def test_zdt1_true_front_is_pymoos() -> None:
    problem = DiscreteZDT("zdt1", n_var=4, levels=6)
    f1, f2 = problem.discrete_front().T
    assert np.allclose(f2, 1 - np.sqrt(f1))  # on pymoo's analytic front
    assert problem.ideal.tolist() == [0.0, 0.0] and problem.nadir.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("call, match", [
    (lambda: make_problem("zdt9"), "unknown benchmark problem 'zdt9'.*zdt1"),
    (lambda: DiscreteZDT("dtlz2"), "which must be one of"),
    (lambda: DiscreteZDT("zdt1", n_var=1), "n_var must be an integer >= 2, got 1"),
    (lambda: DiscreteZDT("zdt1", levels=True), "levels must be an integer >= 2"),
    (lambda: MogaLutProblem(objectives=4), "objectives must be 2 or 3, got 4"),
    (lambda: MogaLutProblem(choices=(0, 0, 1)), "not distinct indices"),
    (lambda: MogaLutProblem(choices=(0, 12)), "not distinct indices in 0..11"),
    (lambda: MogaLutProblem(choices=[3]), "at least 2 indices"),
    (lambda: MogaLutProblem(lut="/nonexistent/lut.json"), "no lookup table.*measure_moga_lut"),
    (lambda: MogaLutProblem().best_reward(lambda a, lat: a), "too many to enumerate"),
    (lambda: make_problem("zdt1").evaluate({"x00": 0.0}), "no valid value for 'x01'"),
    (lambda: drive(None, make_problem("zdt1"), 0), "evaluations must be an integer >= 1"),
])
def test_bad_arguments_give_clear_errors(call, match: str) -> None:
    with pytest.raises(ProblemError, match=match):
        call()


def test_a_file_that_is_not_a_lut_is_refused(tmp_path) -> None:
    path = tmp_path / "lut.json"
    path.write_text(json.dumps({"cost_model": {"schema_version": 99}}))
    with pytest.raises(ProblemError, match="is not a MoGA lookup table"):
        load_lut(path)
