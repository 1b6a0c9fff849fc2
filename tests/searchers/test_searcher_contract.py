"""The contract every registered searcher keeps (parametrised over the registry)."""
from __future__ import annotations

import json
import math

import pytest
from ray.tune.search import ConcurrencyLimiter, Searcher
from searcher_testkit import (
    BATCH,
    BUDGET,
    METRICS,
    MODES,
    SEARCHER_KWARGS,
    SPACE,
    TuneSim,
    chromosomes,
    first_appearance,
    make,
)

from searchers import GENERATION_KEY, SEARCHERS
from core.errors import ConfigError, HwnasError


def test_every_registered_searcher_is_under_contract() -> None:
    assert sorted(SEARCHERS.names()) == sorted(SEARCHER_KWARGS)


def test_runs_the_budget_without_duplicates(searcher_name, toy) -> None:
    sim = TuneSim(make(searcher_name), toy).run()
    assert sim.finished
    assert len(sim.suggested) == BUDGET[searcher_name]
    assert len(set(chromosomes(sim.suggested))) == len(sim.suggested)
    assert all(set(c) == set(SPACE) | {GENERATION_KEY} for c in sim.suggested)


def test_suggest_none_and_finished_semantics(searcher_name, toy) -> None:
    searcher = make(searcher_name)
    batch = [searcher.suggest(f"t{i}") for i in range(BATCH[searcher_name])]
    assert all(isinstance(c, dict) and c[GENERATION_KEY] == 0 for c in batch)
    assert searcher.suggest("waiting") is None  # generation in flight
    for i, config in enumerate(batch[:-1]):
        searcher.on_trial_complete(f"t{i}", toy(config))
        assert searcher.suggest(f"waiting-{i}") is None  # still one pending
    searcher.on_trial_complete(f"t{len(batch) - 1}", toy(batch[-1]))
    nxt = searcher.suggest("next")
    if BATCH[searcher_name] == BUDGET[searcher_name]:
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
    batch = BATCH[name]
    return [
        {"suggested": 0},  # before anything
        {"suggested": 1},  # right after the first suggest
        {"completed": min(batch, BUDGET[name] - 1)},  # between generations (nsga2)
        {"completed": batch + 2},  # mid-generation, some results in, some running
        {"suggested": 2 * batch + 1 if batch < BUDGET[name] else batch - 1},  # right after a suggest
        {"completed": BUDGET[name] - 1},  # one result missing
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
    assert len(after.suggested) == BUDGET[searcher_name] - before.completed
    assert restored.pareto_front() == _finished(searcher_name, toy).pareto_front()


def _finished(name: str, toy) -> Searcher:
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


def test_state_is_json_with_schema_version(searcher_name, toy) -> None:
    searcher = make(searcher_name)
    TuneSim(searcher, toy).run(completed=BATCH[searcher_name] + 1)
    state = searcher.get_state()
    assert state["schema_version"] == 1
    assert isinstance(state["rng"]["state"], dict)
    assert json.loads(json.dumps(state, allow_nan=False)) == state


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
    other = "random" if searcher_name != "random" else "weighted-nsga2"
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
    assert len(sim.suggested) == BUDGET[searcher_name]
    failed = [e for e in searcher.evaluated() if e["metrics"] is None]
    assert failed and all(e["config"]["g0"] == 0 for e in failed)
    assert all(e["config"]["g0"] != 0 for e in searcher.pareto_front())


def test_all_trials_failing_still_finishes(searcher_name) -> None:
    searcher = make(searcher_name)
    sim = TuneSim(searcher, lambda config: (None, True)).run()
    assert len(sim.suggested) == BUDGET[searcher_name]
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
    with pytest.raises(ConfigError, match=r"k: must be an integer >= 1.*HINT:"):
        searcher.select_spread(0)


def test_set_search_properties_like_ray_searchers(searcher_name, toy) -> None:
    from ray import tune

    kwargs = SEARCHER_KWARGS[searcher_name]
    searcher = SEARCHERS.get(searcher_name)(seed=0, **kwargs)
    config = {**{k: tune.choice(v) for k, v in SPACE.items()}, "lr": 0.1}
    assert searcher.set_search_properties(METRICS, MODES, config) is True
    assert searcher.set_search_properties(METRICS, MODES, config) is False  # already set
    assert searcher.metric == METRICS and searcher.mode == MODES
    assert TuneSim(searcher, toy).run().suggested == TuneSim(make(searcher_name), toy).run().suggested
    with pytest.raises(HwnasError, match="no param_space yet"):
        SEARCHERS.get(searcher_name)(seed=0, **kwargs).suggest("t")
    with pytest.raises(ConfigError, match=r"param_space\['lr'\].*tune.choice"):
        SEARCHERS.get(searcher_name)(seed=0, **kwargs).set_search_properties(
            None, None, {**config, "lr": tune.uniform(0, 1)})


def test_works_behind_a_concurrency_limiter(searcher_name, toy) -> None:
    for batch in (False, True):
        limited = ConcurrencyLimiter(make(searcher_name), max_concurrent=4, batch=batch)
        sim = TuneSim(limited, toy, max_concurrent=100).run()
        assert len(sim.suggested) == BUDGET[searcher_name]


COMMON_BAD = [
    (dict(param_space={}), r"param_space: must be a non-empty mapping.*got \{\}.*HINT:"),
    (dict(param_space={"a": []}), r"param_space\['a'\]: must be a non-empty list.*HINT:"),
    (dict(param_space={"a": "abc"}), r"param_space\['a'\]: must be a non-empty list.*'abc'.*HINT:"),
    (dict(param_space={GENERATION_KEY: [1, 2]}), r"reserved.*HINT:"),
    (dict(metric=["acc", "lat"], mode=["max"]), r"mode: must have one entry per metric.*HINT:"),
    (dict(mode=["max", "fastest"]), r"mode\[1\]: must be 'max' or 'min'.*'fastest'.*HINT:"),
    (dict(metric=["acc", "acc"]), r"metric: must not repeat.*HINT:"),
    (dict(constraints=[("lat", "<", 5.0)]), r"constraints\[0\]: the op must be one of.*unknown op.*'<'.*HINT:"),
    (dict(constraints=[("lat", "<=")]), r"constraints\[0\]: must be a \(metric, op, bound\) triple.*HINT:"),
    (dict(constraints=[("lat", "<=", math.inf)]), r"constraints\[0\]: the bound must be a finite.*HINT:"),
    (dict(seed="0"), r"seed: must be an integer.*HINT:"),
]


@pytest.mark.parametrize("overrides, message", COMMON_BAD)
def test_bad_settings_raise_config_error(searcher_name, overrides, message) -> None:
    with pytest.raises(ConfigError, match=message):
        make(searcher_name, **overrides)
