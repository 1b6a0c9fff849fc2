"""Weighted NSGA-II specifics: Eq. 5 crowding, operators, initial coverage, search quality."""
from __future__ import annotations

import json

import numpy as np
import pytest
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding
from pymoo.operators.survival.rank_and_crowding.metrics import (
    calc_crowding_distance,
    get_crowding_function,
)

from searchers import RandomSearcher, WeightedNSGA2Searcher
from searchers.operators import (
    covering_rows,
    mutate_rows,
    weighted_crowding,
    weighted_crowding_distance,
)
from searchers.operators.crossover import SinglePointChoiceCrossover
from searchers.testing import METRICS, MODES, SPACE, TuneSim, chromosomes, first_appearance, hypervolume
from core.errors import ConfigError, HwnasError


def _fronts(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    cases = [rng.random((n, m)) for n in (3, 4, 7, 20) for m in (1, 2, 3, 4)]
    cases.append(np.round(rng.random((30, 3)) * 4) / 4)  # many ties
    tied = rng.random((10, 3))
    tied[:, 1] = 0.5  # a constant objective
    cases += [tied, np.ones((5, 2)), rng.random((6, 2)) * 1e9]
    return cases


@pytest.mark.parametrize("seed", range(5))
def test_equal_weights_reproduce_pymoo_crowding_exactly(seed: int) -> None:
    for F in _fronts(seed):
        m = F.shape[1]
        expected = calc_crowding_distance(F)
        assert np.array_equal(weighted_crowding_distance(F), expected, equal_nan=True)
        assert np.array_equal(weighted_crowding_distance(F, [1 / m] * m), expected, equal_nan=True)
        # Through the survival wrapper too (it handles fronts of <= 2 points itself).
        assert np.array_equal(weighted_crowding([1 / m] * m).do(F), get_crowding_function("cd").do(F))


# A hand-made front (both objectives minimised): A and E are boundaries, B is crowded in
# objective 1, D in objective 2, C evenly in both.
HAND_FRONT = np.array([[0.0, 10.0], [1.0, 6.0], [2.0, 2.0], [6.0, 1.0], [10.0, 0.0]])


def test_weighted_crowding_follows_eq5_by_hand() -> None:
    # B: 0.9 * (2-0)/10 + 0.1 * (10-2)/10 = 0.26; C: 0.9*0.5 + 0.1*0.5; D: 0.9*0.8 + 0.1*0.2
    d = weighted_crowding_distance(HAND_FRONT, [0.9, 0.1])
    assert np.isinf(d[0]) and np.isinf(d[4])
    np.testing.assert_allclose(d[1:4], [0.26, 0.5, 0.74])
    # A weight of 0 ignores the objective, its boundary included.
    d0 = weighted_crowding_distance(HAND_FRONT, [1.0, 0.0])
    np.testing.assert_allclose(d0[1:4], [0.2, 0.5, 0.8])
    assert np.isinf(d0).sum() == 2


@pytest.mark.parametrize("weights, dropped", [([0.9, 0.1], 1), ([0.1, 0.9], 3)])
def test_weighted_crowding_changes_survival(weights: list[float], dropped: int) -> None:
    problem = Problem(n_var=1, n_obj=2)
    pop = Population.new("X", np.arange(5)[:, None], "F", HAND_FRONT)
    survival = RankAndCrowding(crowding_func=weighted_crowding(weights))
    survivors = survival.do(problem, pop, n_survive=4, random_state=np.random.default_rng(0))
    assert sorted(int(x[0]) for x in survivors.get("X")) == [i for i in range(5) if i != dropped]


def test_initial_population_covers_every_choice() -> None:
    space = {"a": [0, 1], "b": list("xyz"), "c": list(range(4)), "d": list(range(7)), "e": [1, 2, 3, 4, 5]}
    searcher = WeightedNSGA2Searcher(param_space=space, metric=METRICS, mode=MODES,
                                     population_size=9, generations=2, seed=3)
    generation0 = [searcher.suggest(f"t{i}") for i in range(9)]
    assert searcher.suggest("t9") is None
    for name, choices in space.items():
        assert {c[name] for c in generation0} == set(choices)
    assert len(set(chromosomes(generation0))) == 9


def test_covering_rows_smaller_than_a_dimension_repeats_nothing() -> None:
    rows = covering_rows(np.array([12, 3]), 5, np.random.default_rng(0))
    assert len(set(rows[:, 0].tolist())) == 5
    assert set(rows[:, 1].tolist()) == {0, 1, 2}


def test_hierarchical_mutation() -> None:
    rng = np.random.default_rng(0)
    sizes = np.array([4, 1, 3, 12, 2])
    X = np.zeros((2000, 5), dtype=np.int64)
    Y = mutate_rows(X, sizes, 0.2, rng)
    changed = Y != X
    assert changed.any(axis=1).all()  # at least one gene per offspring
    assert not changed[:, 1].any()  # a one-choice gene never mutates
    assert (Y < sizes).all() and (Y >= 0).all()
    assert set(Y[changed[:, 3], 3].tolist()) == set(range(1, 12))  # uniform over the *other* choices
    assert 0.15 < changed[:, 0].mean() < 0.35  # ~gene_prob, plus the at-least-one rule
    everything = mutate_rows(X[:10], sizes, 1.0, rng)
    assert ((everything != 0) == (sizes > 1)).all()


def test_single_point_crossover() -> None:
    crossover = SinglePointChoiceCrossover(prob=1.0)
    parents = np.stack([np.zeros((50, 6), dtype=np.int64), np.ones((50, 6), dtype=np.int64)])
    children = crossover._do(None, parents, random_state=np.random.default_rng(0))
    cuts = set()
    for a, b in zip(children[0], children[1]):
        k = int(np.argmax(a == 1))
        assert k >= 1 and (a == ([0] * k + [1] * (6 - k))).all() and (b == 1 - a).all()
        cuts.add(k)
    assert cuts == {1, 2, 3, 4, 5}


def test_engine_uses_rank_and_crowding_tournament_and_weighted_survival() -> None:
    searcher = WeightedNSGA2Searcher(param_space=SPACE, metric=METRICS, mode=MODES,
                                     weights=[0.7, 0.3], population_size=4, generations=2, seed=0)
    searcher.suggest("t0")
    algorithm = searcher.algorithm
    assert algorithm.tournament_type == "comp_by_rank_and_crowding"
    assert list(algorithm.survival.crowding_func.function.weights) == [0.7, 0.3]


def test_nsga2_front_beats_random_search(toy) -> None:
    """On the toy problem, after the same 80 evaluations (2% of the space), the weighted NSGA-II's
    front has the larger hypervolume and covers more of the other front, for most seeds."""
    reference = (1.0, 7.0)  # worse than every candidate in both objectives
    hv_wins = cover_wins = 0
    for seed in range(10):
        nsga = WeightedNSGA2Searcher(param_space=SPACE, metric=METRICS, mode=MODES,
                                     population_size=8, generations=10, seed=seed)
        rand = RandomSearcher(param_space=SPACE, metric=METRICS, mode=MODES, num_samples=80, seed=seed)
        fronts = [TuneSim(s, toy).run() and s.pareto_front() for s in (nsga, rand)]
        hv_wins += hypervolume(fronts[0], reference) > hypervolume(fronts[1], reference)
        cover_wins += _coverage(fronts[0], fronts[1]) > _coverage(fronts[1], fronts[0])
    assert hv_wins >= 8 and cover_wins >= 8


def _coverage(a: list[dict], b: list[dict]) -> float:
    """Share of ``b`` weakly dominated by some member of ``a`` (Zitzler's C metric)."""
    pa = [(e["metrics"]["acc"], e["metrics"]["lat"]) for e in a]
    return float(np.mean([any(x[0] >= y[0] and x[1] <= y[1] for x in pa)
                          for y in ((e["metrics"]["acc"], e["metrics"]["lat"]) for e in b)]))


@pytest.mark.parametrize("operators", [{}, {"crossover": "single-point", "force_mutation": True}],
                         ids=["default", "moga"])
def test_restore_with_failures_weights_and_constraints(toy, tmp_path, operators) -> None:
    """Infeasible survivors (rank None), infinite crowding and three objectives survive JSON, with
    the default operators and with MoGA's."""
    def evaluate(config):
        if config["g1"] == 3:
            return None, True
        return {**toy(config), "params": float(sum(config[f"g{i}"] for i in range(6)))}

    def make():
        return WeightedNSGA2Searcher(
            param_space=SPACE, metric=["acc", "lat", "params"], mode=["max", "min", "min"],
            weights=[0.4, 0.4, 0.2], population_size=7, generations=5, seed=11,
            constraints=[("lat", "<=", 2.5), ("params", ">=", 4)], mutation_layer_prob=0.3,
            **operators)

    reference = chromosomes(TuneSim(make(), evaluate).run().suggested)
    unranked = 0
    for stop in (9, 17, 23):
        before = TuneSim(make(), evaluate, order_seed=stop).run(completed=stop)
        state = before.searcher.get_state()
        unranked += sum(rank is None for _, rank, _ in state["algorithm"]["population"])
        path = tmp_path / f"state-{stop}.json"
        before.searcher.save(str(path))
        restored = make()
        restored.restore(str(path))
        after = TuneSim(restored, evaluate, prefix="again").run()
        assert first_appearance(chromosomes(before.suggested + after.suggested)) == reference
    assert unranked > 0 and "inf" in json.dumps(state["algorithm"])


def test_failed_candidates_lose_survival_to_feasible_ones(toy) -> None:
    searcher = WeightedNSGA2Searcher(param_space=SPACE, metric=METRICS, mode=MODES,
                                     population_size=6, generations=4, seed=2)
    TuneSim(searcher, lambda c: (None, True) if c["g0"] == 0 else toy(c)).run()
    archive = searcher.evaluated()
    survivors = [archive[i] for i, _, _ in searcher.get_state()["algorithm"]["population"]]
    assert len(survivors) == 6 and all(s["metrics"] is not None for s in survivors)


_SETTING = "searcher weighted-nsga2 setting "
BAD_NSGA = [
    (dict(weights=[0.5, 0.6]),
     _SETTING + r"'weights': must sum to 1 within 1e-6 \(they sum to 1.1\), got \[0.5, 0.6\]\. HINT:"),
    (dict(weights=[1.0]),
     _SETTING + r"'weights': must have one weight per metric \(2 metrics.*, got \[1.0\]\. HINT:"),
    (dict(weights=[1.5, -0.5]), _SETTING + r"'weights'\[1\]: must be a finite number >= 0, got -0.5\. HINT:"),
    (dict(population_size=1), _SETTING + r"'population_size': must be an integer in \[2, 10000\], got 1\. HINT:"),
    (dict(generations=0), _SETTING + r"'generations': must be an integer in \[1, 100000\], got 0\. HINT:"),
    (dict(crossover_prob=1.5),
     _SETTING + r"'crossover_prob': must be a finite number in \[0, 1\], got 1.5\. HINT:"),
    (dict(mutation_layer_prob=-0.1),
     _SETTING + r"'mutation_layer_prob': must be a finite number in \[0, 1\].*HINT:"),
]


@pytest.mark.parametrize("overrides, message", BAD_NSGA)
def test_bad_nsga2_settings(overrides: dict, message: str) -> None:
    kwargs = dict(param_space=SPACE, metric=METRICS, mode=MODES, population_size=4, generations=2, seed=0)
    with pytest.raises(ConfigError, match=message):
        WeightedNSGA2Searcher(**{**kwargs, **overrides})


def test_bad_random_settings() -> None:
    with pytest.raises(ConfigError, match=r"'num_samples': must be an integer in \[1, 1000000\], got 0\. HINT:"):
        RandomSearcher(param_space=SPACE, metric=METRICS, mode=MODES, seed=0, num_samples=0)


def test_offspring_never_repeat_a_candidate_in_a_crowded_space() -> None:
    space = {f"g{i}": [0, 1, 2] for i in range(3)}  # 27 chromosomes for a budget of 24
    searcher = WeightedNSGA2Searcher(param_space=space, metric=METRICS, mode=MODES,
                                     population_size=6, generations=4, seed=4)
    sim = TuneSim(searcher, lambda c: {"acc": float(c["g0"] + c["g1"]), "lat": float(c["g1"] * c["g2"])}).run()
    assert sim.finished and 6 < len(sim.suggested) <= 24
    assert len(set(chromosomes(sim.suggested))) == len(sim.suggested)


def test_malformed_population_state_is_refused(toy) -> None:
    def make():
        return WeightedNSGA2Searcher(param_space=SPACE, metric=METRICS, mode=MODES,
                                     population_size=4, generations=3, seed=0)

    searcher = make()
    TuneSim(searcher, toy).run(completed=5)
    state = json.loads(json.dumps(searcher.get_state()))
    state["algorithm"]["population"][0][0] = 999
    with pytest.raises(HwnasError, match="malformed.*missing from the archive"):
        make().set_state(state)


def test_uniform_crossover_and_optional_forced_mutation() -> None:
    import numpy as np

    from searchers.operators import mutate_rows
    from searchers.operators.crossover import UniformChoiceCrossover

    rng = np.random.default_rng(0)
    X = np.stack([np.zeros((50, 40), dtype=np.int64), np.ones((50, 40), dtype=np.int64)])
    children = UniformChoiceCrossover()._do(None, X, random_state=rng)
    # Every child gene comes from one parent, the two children are complementary, and swaps are ~1/2.
    assert ((children[0] + children[1]) == 1).all()
    assert 0.4 < children[0].mean() < 0.6
    rows = np.zeros((2000, 10), dtype=np.int64)
    sizes = np.full(10, 3)
    forced = mutate_rows(rows, sizes, 0.01, np.random.default_rng(1))
    free = mutate_rows(rows, sizes, 0.01, np.random.default_rng(1), at_least_one=False)
    assert (forced != 0).any(axis=1).all()
    assert 0.8 < (free == 0).all(axis=1).mean() < 0.95  # (1 - 0.01)^10 ~ 0.90 of rows untouched


@pytest.mark.parametrize("kwargs, pattern", [
    ({"crossover": "two-point"}, "'crossover': must be one of single-point, uniform"),
    ({"force_mutation": "yes"}, "'force_mutation': must be true or false"),
])
def test_bad_variation_settings_are_refused(kwargs, pattern) -> None:
    with pytest.raises(ConfigError, match=pattern):
        WeightedNSGA2Searcher(population_size=4, generations=2, seed=0, **kwargs)
