"""The contract every registered searcher keeps, as an importable pytest suite (like ``optuna.testing``).

A test module runs the whole suite, over every searcher in :data:`searchers.SEARCHERS`, with::

    from searchers.testing import *  # noqa: F401,F403

``searcher_name`` is parametrised over the registry when pytest collects, so a newly registered
searcher is tested without anyone writing a test; it runs with its
:meth:`~searchers.GenerationalSearcher.example_settings` on :class:`ToyProblem`. The helpers (the
toy problem, :class:`TuneSim`, :func:`make`) serve searcher-specific tests too. Needs pytest; register
``pytest.register_assert_rewrite("searchers.testing")`` in a conftest for detailed assertion output.
"""
from __future__ import annotations

import functools
import inspect
import itertools
import json
import math
from typing import Any, Callable

import numpy as np
import pytest
from ray.tune.search import ConcurrencyLimiter, Searcher

from core.errors import ConfigError, HwnasError

from . import GENERATION_KEY, SEARCHERS, Constraint, Objective
from ._base import GenerationalSearcher

__all__ = [
    # helpers
    "METRICS", "MODES", "SPACE", "ToyProblem", "TuneSim", "batch_of", "budget_of", "chromosomes",
    "example_settings", "first_appearance", "hypervolume", "make",
    # pytest hooks and fixtures
    "pytest_generate_tests", "toy",
    # the contract
    "test_every_registered_searcher_is_under_contract", "test_runs_the_budget_without_duplicates",
    "test_suggest_none_and_finished_semantics", "test_finished_is_sticky",
    "test_same_seed_same_sequence_other_seed_other_sequence",
    "test_sequence_independent_of_completion_order",
    "test_restore_continues_the_uninterrupted_sequence",
    "test_unfinished_trials_are_suggested_again_first", "test_tune_resume_waits_for_the_resumed_trials",
    "test_tune_restore_settles_trials_tune_finished_failed_or_never_knew",
    "test_restore_into_a_bare_searcher_like_ray",
    "test_points_to_evaluate_come_first_within_the_budget", "test_points_survive_a_restore_into_a_bare_searcher",
    "test_points_that_do_not_fit_are_refused", "test_evaluated_points_join_the_front_and_are_never_suggested",
    "test_a_given_member_of_the_open_generation_is_not_handed_out",
    "test_given_results_survive_save_and_restore", "test_evaluated_point_values",
    "test_a_space_of_the_same_shape_but_other_values_is_refused", "test_state_is_json_with_schema_version",
    "test_state_keeps_constraints_as_lists",
    "test_save_to_dir_and_restore_from_dir", "test_restore_rejects_foreign_files",
    "test_restore_rejects_other_schema_searcher_or_settings",
    "test_failed_trials_are_infeasible_not_fatal", "test_all_trials_failing_still_finishes",
    "test_tiny_space_is_exhausted_not_hung", "test_constraints_keep_violators_off_the_front",
    "test_pareto_front_and_select_spread", "test_set_search_properties_like_ray_searchers",
    "test_works_behind_a_concurrency_limiter", "test_bad_settings_raise_config_error",
    "test_check_settings_fills_every_default", "test_unknown_setting_lists_the_valid_names",
    "test_every_setting_refuses_a_foreign_value_naming_where",
    "test_signature_shows_every_keyword", "test_from_objectives_equals_the_constructor",
]

# ---------------------------------------------------------------------------------------- helpers
N_GENES, N_CHOICES = 6, 4
SPACE = {f"g{i}": list(range(N_CHOICES)) for i in range(N_GENES)}
METRICS, MODES = ["acc", "lat"], ["max", "min"]
_COMMON = ("param_space", "metric", "mode", "seed", "constraints", "points_to_evaluate")


class ToyProblem:
    """Two conflicting objectives computed analytically from the config (no training).

    Higher choices give more accuracy and more latency, at a per-gene exchange rate, so the front
    is long and non-trivial.
    """

    def __init__(self, seed: int = 12345) -> None:
        rng = np.random.default_rng(seed)  # a local generator: tests never touch the global RNG
        self.acc = np.sort(rng.random((N_GENES, N_CHOICES)), axis=1)
        self.lat = np.sort(rng.random((N_GENES, N_CHOICES)), axis=1) ** 2 * rng.uniform(1, 3, (N_GENES, 1))

    def chromosome(self, config: dict[str, Any]) -> list[int]:
        return [SPACE[f"g{i}"].index(config[f"g{i}"]) for i in range(N_GENES)]

    def __call__(self, config: dict[str, Any]) -> dict[str, float]:
        x = self.chromosome(config)
        return {"acc": float(sum(self.acc[j, c] for j, c in enumerate(x))),
                "lat": float(sum(self.lat[j, c] for j, c in enumerate(x)))}


class TuneSim:
    """Drives a searcher like Tune does: keep up to ``max_concurrent`` trials running, complete one
    at a time (in arrival order, or in an order drawn from ``order_seed``), ask for more."""

    def __init__(self, searcher: Searcher, evaluate: Callable[[dict[str, Any]], Any], *,
                 max_concurrent: int = 3, order_seed: int | None = None, prefix: str = "trial") -> None:
        self.searcher, self.evaluate = searcher, evaluate
        self.max_concurrent = max_concurrent
        self.order = None if order_seed is None else np.random.default_rng(order_seed)
        self.ids = (f"{prefix}-{i}" for i in itertools.count())
        self.suggested: list[dict[str, Any]] = []
        self.running: list[tuple[str, dict[str, Any]]] = []
        self.completed = 0
        self.finished = False

    def fill(self, limit: int | None = None) -> None:
        while len(self.running) < self.max_concurrent and not self.finished:
            if limit is not None and len(self.suggested) >= limit:
                return
            trial_id = next(self.ids)
            config = self.searcher.suggest(trial_id)
            if config == Searcher.FINISHED:
                assert not self.running, "FINISHED while trials are still running"
                self.finished = True
            elif config is None:
                assert self.running, "suggest returned None with no trial pending"
                return
            else:
                self.suggested.append(config)
                self.running.append((trial_id, config))

    def complete_one(self) -> None:
        index = 0 if self.order is None else int(self.order.integers(len(self.running)))
        trial_id, config = self.running.pop(index)
        outcome = self.evaluate(config)
        if isinstance(outcome, tuple):  # (result, error)
            self.searcher.on_trial_complete(trial_id, result=outcome[0], error=outcome[1])
        else:
            self.searcher.on_trial_complete(trial_id, result=outcome)
        self.completed += 1

    def run(self, *, suggested: int | None = None, completed: int | None = None,
            max_steps: int = 100_000) -> TuneSim:
        """Run to FINISHED, or stop right after the ``suggested``-th suggestion / ``completed``-th
        completion (before the next refill)."""
        for _ in range(max_steps):
            self.fill(limit=suggested)
            if self.finished or (suggested is not None and len(self.suggested) >= suggested):
                return self
            self.complete_one()
            if completed is not None and self.completed >= completed:
                return self
        raise AssertionError("searcher never finished")


def chromosomes(configs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Configs without the generation key, as hashable tuples in suggestion order."""
    return [tuple(v for k, v in sorted(c.items()) if k != GENERATION_KEY) for c in configs]


def first_appearance(items: list[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def example_settings(name: str) -> dict[str, Any]:
    """The registered searcher's example settings for the toy problem's metrics."""
    return SEARCHERS.get(name).example_settings(metric=METRICS, mode=MODES)


def make(name: str, *, seed: int = 0, space: dict[str, Any] | None = None,
         **overrides: Any) -> GenerationalSearcher:
    """A searcher on the toy problem with its example settings; ``overrides`` replace constructor
    arguments and settings alike."""
    kwargs = dict(param_space=space or SPACE, metric=METRICS, mode=MODES, seed=seed)
    kwargs.update(example_settings(name))
    kwargs.update(overrides)
    return SEARCHERS.get(name)(**kwargs)


def budget_of(name: str) -> int:
    """How many candidates :func:`make`'s searcher evaluates."""
    return SEARCHERS.get(name).budget(example_settings(name))


@functools.lru_cache(maxsize=None)
def batch_of(name: str) -> int:
    """How many configs :func:`make`'s searcher hands out before it must wait for results."""
    searcher = make(name)
    for i in range(budget_of(name) + 1):
        config = searcher.suggest(f"probe-{i}")
        if not isinstance(config, dict):
            assert config is None, "FINISHED before any result came back"
            return i
    raise AssertionError(f"{name} handed out more than its budget without a result")


def hypervolume(front: list[dict[str, Any]], reference: tuple[float, float]) -> float:
    """2-d hypervolume of a front of (acc max, lat min) entries w.r.t. a (acc, lat) reference."""
    points = sorted((-e["metrics"]["acc"], e["metrics"]["lat"]) for e in front)
    volume, last_lat = 0.0, reference[1]
    for neg_acc, lat in points:
        if neg_acc < -reference[0] and lat < last_lat:
            volume += (-reference[0] - neg_acc) * (last_lat - lat)
            last_lat = lat
    return volume if math.isfinite(volume) else 0.0


# ---------------------------------------------------------------------------------------- pytest glue
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``searcher_name`` takes every registered name, read when pytest collects (not at import), so
    a searcher registered after this module was imported is tested too."""
    if "searcher_name" in metafunc.fixturenames:
        metafunc.parametrize("searcher_name", SEARCHERS.names())


@pytest.fixture
def toy() -> ToyProblem:
    return ToyProblem()


# ---------------------------------------------------------------------------------------- the contract
def test_every_registered_searcher_is_under_contract(searcher_name) -> None:
    cls = SEARCHERS.get(searcher_name)
    assert issubclass(cls, GenerationalSearcher) and cls.name == searcher_name
    settings = cls.check_settings(example_settings(searcher_name))
    assert list(settings) == [s.name for s in cls.SETTINGS]
    assert 1 <= batch_of(searcher_name) <= cls.budget(settings)


def test_runs_the_budget_without_duplicates(searcher_name, toy) -> None:
    sim = TuneSim(make(searcher_name), toy).run()
    assert sim.finished
    assert len(sim.suggested) == budget_of(searcher_name)
    assert len(set(chromosomes(sim.suggested))) == len(sim.suggested)
    assert all(set(c) == set(SPACE) | {GENERATION_KEY} for c in sim.suggested)


def test_suggest_none_and_finished_semantics(searcher_name, toy) -> None:
    searcher = make(searcher_name)
    batch = [searcher.suggest(f"t{i}") for i in range(batch_of(searcher_name))]
    assert all(isinstance(c, dict) and c[GENERATION_KEY] == 0 for c in batch)
    assert searcher.suggest("waiting") is None  # generation in flight
    for i, config in enumerate(batch[:-1]):
        searcher.on_trial_complete(f"t{i}", toy(config))
        assert searcher.suggest(f"waiting-{i}") is None  # still one pending
    searcher.on_trial_complete(f"t{len(batch) - 1}", toy(batch[-1]))
    nxt = searcher.suggest("next")
    if batch_of(searcher_name) == budget_of(searcher_name):
        assert nxt == Searcher.FINISHED
    else:
        assert nxt[GENERATION_KEY] == 1
    searcher.on_trial_complete("never-suggested", toy(batch[0]))  # unknown ids are ignored


def test_finished_is_sticky(searcher_name, toy) -> None:
    searcher = make(searcher_name)
    TuneSim(searcher, toy).run()
    assert searcher.finished
    assert [searcher.suggest(f"late-{i}") for i in range(3)] == [Searcher.FINISHED] * 3


def test_same_seed_same_sequence_other_seed_other_sequence(searcher_name, toy) -> None:
    runs = [TuneSim(make(searcher_name, seed=s), toy).run().suggested for s in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize("order_seed, concurrency", [(1, 2), (2, 5), (3, 50)])
def test_sequence_independent_of_completion_order(searcher_name, toy, order_seed, concurrency) -> None:
    reference = TuneSim(make(searcher_name), toy, max_concurrent=1).run().suggested
    shuffled = TuneSim(make(searcher_name), toy, max_concurrent=concurrency,
                       order_seed=order_seed).run().suggested
    assert shuffled == reference


def _restore_points(name: str) -> list[dict[str, int]]:
    batch, budget = batch_of(name), budget_of(name)
    return [
        {"suggested": 0},  # before anything
        {"suggested": 1},  # right after the first suggest
        {"completed": min(batch, budget - 1)},  # between generations (nsga2)
        {"completed": batch + 2},  # mid-generation, some results in, some running
        {"suggested": 2 * batch + 1 if batch < budget else batch - 1},  # right after a suggest
        {"completed": budget - 1},  # one result missing
    ]


@pytest.mark.parametrize("point", range(6))
def test_restore_continues_the_uninterrupted_sequence(searcher_name, toy, tmp_path, point) -> None:
    reference = chromosomes(TuneSim(make(searcher_name), toy).run().suggested)
    stop = _restore_points(searcher_name)[point]
    before = TuneSim(make(searcher_name), toy, order_seed=point).run(**stop)
    before.searcher.save(str(tmp_path / "state.json"))
    # The driver died: its running trials are lost. A new searcher continues from the file.
    restored = make(searcher_name)
    restored.restore(str(tmp_path / "state.json"))
    after = TuneSim(restored, toy, order_seed=point + 100, prefix="resumed").run()
    assert first_appearance(chromosomes(before.suggested + after.suggested)) == reference
    assert len(after.suggested) == budget_of(searcher_name) - before.completed
    assert restored.pareto_front() == _finished(searcher_name, toy).pareto_front()


def _finished(name: str, toy: ToyProblem) -> GenerationalSearcher:
    searcher = make(name)
    TuneSim(searcher, toy).run()
    return searcher


def test_unfinished_trials_are_suggested_again_first(searcher_name, toy) -> None:
    searcher = make(searcher_name)
    handed = [searcher.suggest(f"t{i}") for i in range(3)]
    searcher.on_trial_complete("t1", toy(handed[1]))
    restored = make(searcher_name)
    restored.set_state(json.loads(json.dumps(searcher.get_state())))
    again = [restored.suggest(f"new-{i}") for i in range(3)]
    assert again[:2] == [handed[0], handed[2]]
    uninterrupted = make(searcher_name)
    assert again[2] == [uninterrupted.suggest(f"u{i}") for i in range(4)][3]
    # A late result under an old id (Tune resumed the trial) counts; its twin is then ignored.
    restored.on_trial_complete("t0", toy(handed[0]))
    restored.on_trial_complete("new-0", {"acc": -1.0, "lat": 1e9})
    restored.on_trial_complete("new-1", toy(handed[2]))
    restored.on_trial_complete("new-2", toy(again[2]))
    TuneSim(restored, toy).run()
    assert restored.pareto_front() == _finished(searcher_name, toy).pareto_front()


def test_tune_resume_waits_for_the_resumed_trials(searcher_name, toy, tmp_path) -> None:
    """``Tuner.restore`` calls ``restore_from_dir`` and then resumes the unfinished trials under their
    old ids: their members are not handed out again, so nothing is evaluated twice."""
    reference = chromosomes(TuneSim(make(searcher_name), toy).run().suggested)
    before = TuneSim(make(searcher_name), toy, order_seed=5).run(completed=batch_of(searcher_name) + 2)
    before.searcher.save_to_dir(str(tmp_path), session_str="crash")
    restored = make(searcher_name)
    restored.restore_from_dir(str(tmp_path))
    resumed = TuneSim(restored, toy, prefix="resumed")
    resumed.running = list(before.running)  # Tune resumes them, under their old trial ids
    resumed.run()
    every = chromosomes(before.suggested + resumed.suggested)
    assert len(every) == len(set(every)) == budget_of(searcher_name)
    assert every == reference
    assert restored.finished and restored.pareto_front() == _finished(searcher_name, toy).pareto_front()


def _write_tune_state(directory: Any, trials: list[tuple[str, dict[str, Any], str, Any]]) -> None:
    """An ``experiment_state-*.json`` as Tune 2.60 writes it, from Tune's own Trial objects:
    ``(trial_id, config, status, last_result)`` each."""
    import json

    from ray.tune.experiment import Trial

    data = []
    for trial_id, config, status, result in trials:
        trial = Trial("trainable", config=config, trial_id=trial_id, stub=True)
        trial.set_status(status)
        trial.run_metadata.last_result = result or {}
        data.append(list(trial.get_json_state()))
    with open(f"{directory}/experiment_state-crash.json", "w", encoding="utf-8") as handle:
        json.dump({"trial_data": data, "runner_data": {}, "stats": {}}, handle)


def test_tune_restore_settles_trials_tune_finished_failed_or_never_knew(searcher_name, toy, tmp_path) -> None:
    """A driver killed between Tune's two writes leaves its trial list a step apart from the searcher's
    state. Of the trials the searcher waits for, Tune holds one as finished (its result is recorded from
    Tune's state, not evaluated again), one as failed (recorded as failed) and does not know the third (it
    is handed out again); the run still ends with the full budget and nothing evaluated twice."""
    before = TuneSim(make(searcher_name), toy, order_seed=5, max_concurrent=4).run(completed=1)
    before.searcher.save_to_dir(str(tmp_path), session_str="crash")
    assert len(before.running) >= 2
    (done_id, done), (failed_id, failed), *lost = before.running
    _write_tune_state(tmp_path, [(done_id, done, "TERMINATED", toy(done)), (failed_id, failed, "ERROR", None)])
    restored = make(searcher_name)
    restored.restore_from_dir(str(tmp_path))
    resumed = TuneSim(restored, toy, prefix="resumed").run()  # Tune resumes nothing
    again = chromosomes(resumed.suggested)
    assert chromosomes([c for _, c in lost]) == again[:len(lost)]  # handed out again, first
    assert not set(chromosomes([done, failed])) & set(again)
    every = chromosomes(before.suggested + resumed.suggested)
    assert len(set(every)) == budget_of(searcher_name) and len(every) == len(set(every)) + len(lost)
    assert restored.finished
    filed = {tuple(e["config"][k] for k in SPACE): e["metrics"] for e in restored.evaluated()}
    assert filed[chromosomes([failed])[0]] is None and filed[chromosomes([done])[0]] is not None


def _point(i: int) -> dict[str, int]:
    """A whole config of the toy space, distinct for each ``i`` < 4**6."""
    return {f"g{j}": SPACE[f"g{j}"][(i // N_CHOICES ** j) % N_CHOICES] for j in range(N_GENES)}


def test_points_to_evaluate_come_first_within_the_budget(searcher_name, toy) -> None:
    points = [_point(4095), _point(1), _point(4095)]  # a repeat is evaluated once
    searcher = make(searcher_name, points_to_evaluate=points)
    sim = TuneSim(searcher, toy).run()
    suggested = [{k: v for k, v in c.items() if k != GENERATION_KEY} for c in sim.suggested]
    assert suggested[:2] == [_point(4095), _point(1)]
    assert len(sim.suggested) == len(set(chromosomes(sim.suggested))) == budget_of(searcher_name)
    assert all(c[GENERATION_KEY] == 0 for c in sim.suggested[:2])
    # Deterministic for the seed, as without points.
    assert TuneSim(make(searcher_name, points_to_evaluate=points), toy).run().suggested == sim.suggested


def test_points_survive_a_restore_into_a_bare_searcher(searcher_name, toy, tmp_path) -> None:
    points = [_point(7), _point(100)]
    reference = TuneSim(make(searcher_name, points_to_evaluate=points), toy).run().suggested
    before = TuneSim(make(searcher_name, points_to_evaluate=points), toy).run(completed=1)
    before.searcher.save(str(tmp_path / "state.json"))
    bare = SEARCHERS.get(searcher_name)()
    bare.restore(str(tmp_path / "state.json"))
    after = TuneSim(bare, toy, prefix="resumed").run()
    assert first_appearance(chromosomes(before.suggested + after.suggested)) == chromosomes(reference)
    with pytest.raises(HwnasError, match="points_to_evaluate"):  # other points: another search
        make(searcher_name, points_to_evaluate=points[:1]).restore(str(tmp_path / "state.json"))


def test_points_that_do_not_fit_are_refused(searcher_name) -> None:
    size = SEARCHERS.get(searcher_name)._generation_size(make(searcher_name).settings)
    with pytest.raises(ConfigError, match=r"points_to_evaluate: must fit in the first generation .*HINT:"):
        make(searcher_name, points_to_evaluate=[_point(i) for i in range(size + 1)])
    with pytest.raises(ConfigError, match=r"points_to_evaluate\[0\]: must give every parameter.*'g5'.*HINT:"):
        make(searcher_name, points_to_evaluate=[{"g0": 0}])
    with pytest.raises(ConfigError, match=r"points_to_evaluate\[1\]\['g2'\]: must be one of its choices.*HINT:"):
        make(searcher_name, points_to_evaluate=[_point(0), {**_point(0), "g2": 9}])
    with pytest.raises(ConfigError, match=r"points_to_evaluate: must be a list of configs.*HINT:"):
        make(searcher_name, points_to_evaluate=_point(0))


def test_evaluated_points_join_the_front_and_are_never_suggested(searcher_name, toy) -> None:
    best, cheapest = _point(4095), _point(0)  # the most accurate and the fastest: both on every front
    searcher = make(searcher_name)
    for point in (best, cheapest):
        searcher.add_evaluated_point({**point, "lr": 0.1}, toy(point))  # keys outside the space: ignored
    searcher.add_evaluated_point(best, {"acc": -1.0, "lat": 99.0})  # already evaluated: the first counts
    assert [e["generation"] for e in searcher.evaluated()] == [-1, -1]
    sim = TuneSim(searcher, toy).run()
    assert len(sim.suggested) == budget_of(searcher_name)
    assert not {tuple(best.values()), tuple(cheapest.values())} & set(chromosomes(sim.suggested))
    front = [e["config"] for e in searcher.pareto_front()]
    assert best in front and cheapest in front
    assert len(searcher.evaluated()) == budget_of(searcher_name) + 2


def test_a_given_member_of_the_open_generation_is_not_handed_out(searcher_name, toy) -> None:
    reference = TuneSim(make(searcher_name), toy).run().suggested
    searcher = make(searcher_name)
    first = searcher.suggest("t0")
    later = {k: v for k, v in reference[1].items() if k != GENERATION_KEY}
    searcher.add_evaluated_point(later, toy(later))  # not handed out yet: it will not be
    searcher.add_evaluated_point({k: v for k, v in first.items()}, toy(first))  # running: its result is ignored
    searcher.on_trial_complete("t0", {"acc": -5.0, "lat": 1e9})
    sim = TuneSim(searcher, toy).run()
    assert later not in [{k: v for k, v in c.items() if k != GENERATION_KEY} for c in sim.suggested]
    assert len(sim.suggested) == budget_of(searcher_name) - 2
    assert searcher.finished and len(searcher.evaluated()) == budget_of(searcher_name)
    assert min(e["metrics"]["acc"] for e in searcher.evaluated()) > 0  # the ignored -5.0 is nowhere


def test_given_results_survive_save_and_restore(searcher_name, toy, tmp_path) -> None:
    def run(interrupt: bool) -> list[Any]:
        searcher = make(searcher_name)
        sim = TuneSim(searcher, toy).run(completed=batch_of(searcher_name) // 2 + 1)
        searcher.add_evaluated_point(_point(4095), toy(_point(4095)))
        searcher.add_evaluated_point(_point(3), (None, None), error=True)
        if interrupt:
            searcher.save(str(tmp_path / "state.json"))
            searcher = make(searcher_name)
            searcher.restore(str(tmp_path / "state.json"))
            sim = TuneSim(searcher, toy, prefix="resumed")  # the running trials were lost with the driver
        sim.run()
        return [searcher.evaluated(), searcher.pareto_front()]

    assert run(interrupt=True) == run(interrupt=False)


def test_evaluated_point_values(searcher_name, toy) -> None:
    searcher = make(searcher_name, constraints=[("mem", "<=", 10.0)])
    searcher.add_evaluated_point(_point(1), {"acc": 1.0, "lat": 2.0, "mem": 3.0})
    searcher.add_evaluated_point(_point(2), [1.0, 2.0, 3.0])  # in metric order, then constraint metrics
    searcher.add_evaluated_point(_point(3), {"acc": 1.0, "lat": math.nan, "mem": 3.0})  # failed, like a trial
    searcher.add_evaluated_point(_point(4), None, pruned=True)
    assert [e["metrics"] for e in searcher.evaluated()] == [
        {"acc": 1.0, "lat": 2.0, "mem": 3.0}, {"acc": 1.0, "lat": 2.0, "mem": 3.0}, None, None]
    for bad in (1.0, [1.0, 2.0], "fast"):
        with pytest.raises(ConfigError, match=r"value: must be a dict of the tracked metrics \['acc', 'lat', 'mem'\]"):
            searcher.add_evaluated_point(_point(5), bad)
    with pytest.raises(ConfigError, match=r"parameters\['g0'\]: must be one of its choices"):
        searcher.add_evaluated_point({**_point(5), "g0": 17}, {"acc": 1.0, "lat": 2.0, "mem": 3.0})
    if searcher_name != "reinforce":  # REINFORCE always tracks a cost besides its quality
        single = make(searcher_name, metric="acc", mode="max")
        single.add_evaluated_point(_point(1), 0.5)
        assert single.evaluated()[0]["metrics"] == {"acc": 0.5}


def test_restore_into_a_bare_searcher_like_ray(searcher_name, toy, tmp_path) -> None:
    """Ray's convention: ``Searcher()`` then ``restore(path)`` rebuilds the space, metrics, seed and
    settings from the file, and the search continues as the uninterrupted one."""
    reference = chromosomes(TuneSim(make(searcher_name), toy).run().suggested)
    before = TuneSim(make(searcher_name, constraints=[("lat", "<=", 1e9)]), toy).run(completed=3)
    before.searcher.save(str(tmp_path / "state.json"))
    bare = SEARCHERS.get(searcher_name)()
    bare.restore(str(tmp_path / "state.json"))
    assert bare.metric == METRICS and bare.mode == MODES and bare.settings == before.searcher.settings
    after = TuneSim(bare, toy, prefix="resumed").run()
    assert first_appearance(chromosomes(before.suggested + after.suggested)) == reference
    assert bare.pareto_front() == _finished(searcher_name, toy).pareto_front()


def test_a_space_of_the_same_shape_but_other_values_is_refused(searcher_name, toy) -> None:
    state = make(searcher_name).get_state()
    shifted = {name: [v + 100 for v in values] for name, values in SPACE.items()}
    with pytest.raises(HwnasError, match=r"saved with other settings \(param_space"):
        make(searcher_name, space=shifted).set_state(state)
    # A state written before the values were recorded (names and sizes only) restores by its shape.
    legacy = json.loads(json.dumps(state))
    legacy["settings"]["param_space"] = {"names": list(SPACE), "sizes": [len(v) for v in SPACE.values()]}
    make(searcher_name).set_state(legacy)


def test_state_is_json_with_schema_version(searcher_name, toy) -> None:
    searcher = make(searcher_name)
    TuneSim(searcher, toy).run(completed=batch_of(searcher_name) + 1)
    state = searcher.get_state()
    assert state["schema_version"] == 1
    assert isinstance(state["rng"]["state"], dict)
    assert json.loads(json.dumps(state, allow_nan=False)) == state


def test_state_keeps_constraints_as_lists(searcher_name) -> None:
    # [metric, op, value], as states written before Constraint objects existed: they stay readable.
    for constraint in (("lat", "<=", 30), Constraint("lat", "<=", 30.0)):
        state = make(searcher_name, constraints=[constraint]).get_state()
        assert state["settings"]["constraints"] == [["lat", "<=", 30.0]]


def test_save_to_dir_and_restore_from_dir(searcher_name, toy, tmp_path) -> None:
    searcher = make(searcher_name)
    TuneSim(searcher, toy).run(completed=3)
    searcher.save_to_dir(str(tmp_path), session_str="2024-01-01_00-00-00")
    assert (tmp_path / "searcher-state-2024-01-01_00-00-00.json").exists()
    restored = make(searcher_name)
    restored.restore_from_dir(str(tmp_path))
    assert restored.get_state() == json.loads(json.dumps(searcher.get_state()))
    with pytest.raises(HwnasError, match="no searcher state"):
        make(searcher_name).restore_from_dir(str(tmp_path / "empty"))


@pytest.mark.parametrize("content, message", [
    ('{"schema_version": 1}', "not a searcher state"),
    ('[1, 2]', "not a searcher state"),
    ('not json at all', "not JSON"),
])
def test_restore_rejects_foreign_files(searcher_name, tmp_path, content, message) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(HwnasError, match=message):
        make(searcher_name).restore(str(path))
    with pytest.raises(HwnasError, match="does not exist"):
        make(searcher_name).restore(str(tmp_path / "missing.json"))


def test_restore_rejects_other_schema_searcher_or_settings(searcher_name, toy) -> None:
    state = make(searcher_name).get_state()
    with pytest.raises(HwnasError, match="schema_version 2"):
        make(searcher_name).set_state({**state, "schema_version": 2})
    other = next(n for n in SEARCHERS.names() if n != searcher_name)
    with pytest.raises(HwnasError, match="written by"):
        make(other).set_state(state)
    with pytest.raises(HwnasError, match="seed: saved 0, now 1"):
        make(searcher_name, seed=1).set_state(state)
    broken = json.loads(json.dumps(state))
    del broken["progress"]["members"]
    fresh = make(searcher_name)
    with pytest.raises(HwnasError, match="malformed"):
        fresh.set_state(broken)
    assert TuneSim(fresh, toy).run().finished  # a refused state leaves the searcher usable


@pytest.mark.parametrize("failure", ["error", "none", "missing", "nan", "text"])
def test_failed_trials_are_infeasible_not_fatal(searcher_name, toy, failure) -> None:
    def evaluate(config):
        if config["g0"] != 0:
            return toy(config)
        return {
            "error": ({"acc": 1.0, "lat": 1.0}, True),
            "none": (None, False),
            "missing": {"acc": 1.0},
            "nan": {"acc": math.nan, "lat": 1.0},
            "text": {"acc": "high", "lat": 1.0},
        }[failure]

    searcher = make(searcher_name)
    sim = TuneSim(searcher, evaluate).run()
    assert len(sim.suggested) == budget_of(searcher_name)
    failed = [e for e in searcher.evaluated() if e["metrics"] is None]
    assert failed and all(e["config"]["g0"] == 0 for e in failed)
    assert all(e["config"]["g0"] != 0 for e in searcher.pareto_front())


def test_all_trials_failing_still_finishes(searcher_name) -> None:
    searcher = make(searcher_name)
    sim = TuneSim(searcher, lambda config: (None, True)).run()
    assert len(sim.suggested) == budget_of(searcher_name)
    assert searcher.pareto_front() == [] and searcher.select_spread(3) == []


def test_tiny_space_is_exhausted_not_hung(searcher_name, toy) -> None:
    space = {"g0": [0, 1], "g1": [0, 1]}
    searcher = make(searcher_name, space=space)
    sim = TuneSim(searcher, lambda c: toy({**c, **{f"g{i}": 0 for i in range(2, 6)}})).run()
    assert sim.finished
    assert sorted(chromosomes(sim.suggested)) == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_constraints_keep_violators_off_the_front(searcher_name, toy) -> None:
    searcher = make(searcher_name, constraints=[("lat", "<=", 3.0)])
    TuneSim(searcher, toy).run()
    front = searcher.pareto_front()
    assert front and all(e["metrics"]["lat"] <= 3.0 for e in front)


def test_pareto_front_and_select_spread(searcher_name, toy) -> None:
    searcher = make(searcher_name)
    TuneSim(searcher, toy).run()
    front = searcher.pareto_front()
    evaluated = [e for e in searcher.evaluated() if e["metrics"] is not None]
    for entry in front:
        acc, lat = entry["metrics"]["acc"], entry["metrics"]["lat"]
        assert not any(o["metrics"]["acc"] >= acc and o["metrics"]["lat"] <= lat
                       and (o["metrics"]["acc"] > acc or o["metrics"]["lat"] < lat) for o in evaluated)
    assert [e["metrics"]["acc"] for e in front] == sorted(e["metrics"]["acc"] for e in front)[::-1]
    spread = searcher.select_spread(3)
    assert len(spread) == min(3, len(front))
    assert spread[0] == front[0] and spread[-1] == front[-1]
    assert searcher.select_spread(10_000) == front
    with pytest.raises(ConfigError, match=r"k: must be an integer >= 1, got 0\. HINT:"):
        searcher.select_spread(0)


def test_set_search_properties_like_ray_searchers(searcher_name, toy) -> None:
    from ray import tune

    cls, settings = SEARCHERS.get(searcher_name), example_settings(searcher_name)
    searcher = cls(seed=0, **settings)
    config = {**{k: tune.choice(v) for k, v in SPACE.items()}, "lr": 0.1}
    assert searcher.set_search_properties(METRICS, MODES, config) is True
    assert searcher.set_search_properties(METRICS, MODES, config) is False  # already set
    assert searcher.metric == METRICS and searcher.mode == MODES
    assert TuneSim(searcher, toy).run().suggested == TuneSim(make(searcher_name), toy).run().suggested
    with pytest.raises(HwnasError, match="no param_space yet"):
        cls(seed=0, **settings).suggest("t")
    # The space in the constructor, the metrics from Tune: taken though the space is kept (False).
    spaced = cls(param_space=SPACE, seed=0, **settings)
    with pytest.raises(HwnasError, match=r"no metric and mode yet\. HINT: pass metric= and mode= to its constructor"):
        spaced.suggest("t")
    assert spaced.set_search_properties(METRICS, MODES, {"lr": 0.1}) is False
    assert spaced.metric == METRICS and spaced.suggest("t") is not None
    with pytest.raises(ConfigError, match=r"param_space\['lr'\].*tune.choice"):
        cls(seed=0, **settings).set_search_properties(None, None, {**config, "lr": tune.uniform(0, 1)})


def test_works_behind_a_concurrency_limiter(searcher_name, toy) -> None:
    for batch in (False, True):
        limited = ConcurrencyLimiter(make(searcher_name), max_concurrent=4, batch=batch)
        sim = TuneSim(limited, toy, max_concurrent=100).run()
        assert len(sim.suggested) == budget_of(searcher_name)


_COMMON_BAD = [
    (dict(param_space={}), r"param_space: must be a non-empty mapping.*, got \{\}\. HINT:"),
    (dict(param_space={"a": []}), r"param_space\['a'\]: must be a non-empty list.*HINT:"),
    (dict(param_space={"a": "abc"}), r"param_space\['a'\]: must be a non-empty list.*'abc'.*HINT:"),
    (dict(param_space={GENERATION_KEY: [1, 2]}), r"reserved.*HINT:"),
    (dict(metric=["acc", "lat"], mode=["max"]), r"mode: must have one entry per metric.*HINT:"),
    (dict(mode=["max", "fastest"]), r"mode\[1\]: must be 'max' or 'min', got 'fastest'\. HINT:"),
    (dict(metric=["acc", "acc"]), r"metric: must not repeat.*HINT:"),
    (dict(constraints=[("lat", "<", 5.0)]),
     r"constraints\[0\]: the op must be one of.*unknown op.*, got '<'\. HINT:"),
    (dict(constraints=[("lat", "<=")]), r"constraints\[0\]: must be a \(metric, op, value\) triple.*HINT:"),
    (dict(constraints=[("lat", "<=", math.inf)]), r"constraints\[0\]: the value must be a finite.*HINT:"),
    (dict(seed="0"), r"seed: must be an integer, got '0'\. HINT:"),
    (dict(no_such_setting=1), r"setting 'no_such_setting': unknown setting.*its settings are: .*HINT:"),
]


@pytest.mark.parametrize("overrides, message", _COMMON_BAD)
def test_bad_settings_raise_config_error(searcher_name, overrides, message) -> None:
    with pytest.raises(ConfigError, match=message):
        make(searcher_name, **overrides)


# ---------------------------------------------------------------------------------------- settings as data
def _config_field(name: str) -> str:
    return f"config field 'search.settings.{name}'"


def test_check_settings_fills_every_default(searcher_name) -> None:
    cls, given = SEARCHERS.get(searcher_name), example_settings(searcher_name)
    resolved = cls.check_settings(given)
    for setting in cls.SETTINGS:
        if setting.name not in given:
            assert resolved[setting.name] == setting.default, setting.name
    assert cls.check_settings(resolved) == resolved  # resolved settings pass unchanged
    assert make(searcher_name).settings == resolved


def test_unknown_setting_lists_the_valid_names(searcher_name) -> None:
    cls = SEARCHERS.get(searcher_name)
    with pytest.raises(ConfigError) as caught:
        cls.check_settings({**example_settings(searcher_name), "populaton": 3}, where=_config_field)
    message = str(caught.value)
    assert message.startswith(_config_field("populaton") + ": unknown setting")
    assert all(s.name in message for s in cls.SETTINGS) and "HINT:" in message


def test_every_setting_refuses_a_foreign_value_naming_where(searcher_name) -> None:
    cls = SEARCHERS.get(searcher_name)
    for setting in cls.SETTINGS:
        with pytest.raises(ConfigError) as caught:
            cls.check_settings({**example_settings(searcher_name), setting.name: object()},
                               where=_config_field)
        assert str(caught.value).startswith(_config_field(setting.name) + ": "), setting.name
        assert "HINT:" in str(caught.value)


def test_signature_shows_every_keyword(searcher_name) -> None:
    cls = SEARCHERS.get(searcher_name)
    parameters = inspect.signature(cls).parameters
    assert list(parameters) == [*_COMMON, *(s.name for s in cls.SETTINGS)]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())
    for setting in cls.SETTINGS:
        default = parameters[setting.name].default
        assert default is inspect.Parameter.empty or default == setting.default


def test_from_objectives_equals_the_constructor(searcher_name, toy) -> None:
    cls, settings = SEARCHERS.get(searcher_name), example_settings(searcher_name)
    built = cls.from_objectives(
        param_space=SPACE, objectives=[Objective("acc", "max", 0.5), Objective("lat", "min", 0.5)],
        constraints=[Constraint("lat", "<=", 3.0)], seed=3, settings=settings)
    direct = make(searcher_name, seed=3, constraints=[("lat", "<=", 3.0)])
    assert TuneSim(built, toy).run().suggested == TuneSim(direct, toy).run().suggested
    assert built.pareto_front() == direct.pareto_front()
