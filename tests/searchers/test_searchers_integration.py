"""Each searcher inside a real ``ray.tune.Tuner`` on a local 2-CPU Ray."""
from __future__ import annotations

from typing import Any

import pytest

ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402
from ray.tune.search import ConcurrencyLimiter  # noqa: E402

from searchers import GENERATION_KEY, SEARCHERS  # noqa: E402
from searchers.testing import METRICS, MODES, SPACE, make  # noqa: E402

pytestmark = pytest.mark.integration

POPULATION, GENERATIONS = 4, 3


def _make_trainable() -> Any:
    # Defined in a function so that Ray ships it by value: workers cannot import test modules.
    def trainable(config: dict[str, Any]) -> None:
        # Two conflicting objectives straight from the config: no training, just the protocol.
        x = [config[f"g{i}"] for i in range(6)]
        tune.report({"acc": float(sum(x)),
                     "lat": float(sum(c * c * (1 + i) for i, c in enumerate(x)))})

    return trainable


@pytest.mark.parametrize("name, batch, space_from_tuner", [
    ("weighted-nsga2", False, False),
    ("weighted-nsga2", True, False),  # batch=True works too, but idles slots within a generation
    ("weighted-nsga2", False, True),  # the space comes from Tuner(param_space=...)
    ("random", False, False),
    ("reinforce", False, False),
])
def test_searcher_drives_a_real_tuner(tune_ray, tmp_path, name: str, batch: bool,
                                      space_from_tuner: bool) -> None:
    budget = POPULATION * GENERATIONS
    overrides = {
        "weighted-nsga2": dict(population_size=POPULATION, generations=GENERATIONS),
        "random": dict(num_samples=budget),
        "reinforce": dict(num_samples=budget, batch_size=POPULATION, quality_metric="acc",
                          cost_metric="lat", cost_target=10.0),
    }[name]
    searcher = make(name, seed=5, **overrides)
    param_space = None
    if space_from_tuner:
        searcher = SEARCHERS.get(name)(metric=METRICS, mode=MODES, seed=5, **overrides)
        param_space = {**{k: tune.choice(v) for k, v in SPACE.items()}, "lr": 0.1}
    tuner = tune.Tuner(
        _make_trainable(),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=2, batch=batch),
            num_samples=10_000,  # the searcher's FINISHED ends the run, not this
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="run", verbose=0),
    )
    results = tuner.fit()
    assert not results.errors
    configs = [r.config for r in results]
    assert len(configs) == budget
    assert len({tuple(c[k] for k in SPACE) for c in configs}) == budget
    if name != "random":
        per_generation = [sum(c[GENERATION_KEY] == g for c in configs) for g in range(GENERATIONS)]
        assert per_generation == [POPULATION] * GENERATIONS
    # Tune checkpointed the searcher as JSON in the experiment directory; it restores as finished.
    restored = make(name, seed=5, **overrides)
    restored.restore_from_dir(str(tmp_path / "run"))
    assert len(restored.evaluated()) == budget
    assert restored.pareto_front()
    assert restored.suggest("after") == "FINISHED"
    assert restored.pareto_front() == searcher.pareto_front()  # Tune drove this very object
    if space_from_tuner:
        assert all(c["lr"] == 0.1 for c in configs)  # constants pass through untouched


def _make_single_objective_trainable() -> Any:
    def trainable(config: dict[str, Any]) -> None:
        tune.report({"acc": float(sum(config[f"g{i}"] for i in range(6)))})

    return trainable


@pytest.mark.parametrize("name", ["weighted-nsga2", "random"])
def test_one_objective_is_a_string_and_ray_repeater_averages_it(tune_ray, tmp_path, name: str) -> None:
    from ray.tune.search import Repeater

    overrides = {"weighted-nsga2": dict(population_size=2, generations=2), "random": dict(num_samples=4)}[name]
    searcher = SEARCHERS.get(name)(param_space=SPACE, metric="acc", mode="max", seed=3, **overrides)
    assert searcher.metric == "acc" and searcher.mode == "max"  # Ray's convention: a string for one metric
    tuner = tune.Tuner(
        _make_single_objective_trainable(),
        tune_config=tune.TuneConfig(search_alg=Repeater(searcher, repeat=2), num_samples=-1),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="run", verbose=0),
    )
    results = tuner.fit()
    assert not results.errors and len(results) == 8  # 4 candidates, each repeated twice
    assert searcher.finished and len(searcher.evaluated()) == 4


def test_too_few_num_samples_are_said_at_the_start(tune_ray, tmp_path) -> None:
    searcher = SEARCHERS.get("weighted-nsga2")(metric=METRICS, mode=MODES, seed=5, population_size=4, generations=3)
    tuner = tune.Tuner(
        _make_trainable(), param_space={k: tune.choice(v) for k, v in SPACE.items()},
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=8),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="run", verbose=0),
    )
    with pytest.warns(UserWarning, match=r"num_samples=8\) stops Tune before this search's 12 candidates.*"
                                         r"HINT: pass num_samples=-1"):
        tuner.fit()


def test_the_readme_example_runs(tune_ray, tmp_path, monkeypatch) -> None:
    """The README's example of the searchers in a user's own Tuner, run as written (its trainable here)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Using hwnas's searchers in your own Ray Tune run", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)

    def make_trainable() -> Any:
        def trainable(config: dict[str, Any]) -> None:
            x = [config[f"layer_{i}"] for i in range(14)]
            tune.report({"acc": float(sum(x)), "lat": float(sum(c * c for c in x))})
        return trainable

    monkeypatch.chdir(tmp_path)
    # As a user runs it: Tune's result files on (the restored ResultGrid reads its metrics from them).
    monkeypatch.delenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", raising=False)
    scope: dict[str, Any] = {"trainable": make_trainable()}
    code = code.replace('tune.RunConfig(name="nas")', f'tune.RunConfig(name="nas", storage_path={str(tmp_path)!r}, verbose=0)')
    exec(compile(code, "README.md", "exec"), scope)
    searcher, results = scope["searcher"], scope["results"]
    assert not results.errors and len(results) == 24  # restored from its finished state: the same trials
    assert searcher.finished and len(searcher.evaluated()) == 25 and searcher.pareto_front()
    assert searcher.evaluated()[0]["generation"] == -1  # the given point: filed, never run
    assert all(any(v != 0 for k, v in r.config.items() if k.startswith("layer_")) for r in results)
    first = next(e for e in searcher.evaluated() if e["generation"] == 0)
    assert first["config"] == {f"layer_{i}": 3 for i in range(14)}  # the point to evaluate came first
    # A later search seeded with this run's ResultGrid: every trial filed as given, none handed out again.
    from searchers import WeightedNSGA2Searcher

    seeded = WeightedNSGA2Searcher(param_space=scope["space"], metric=["acc", "lat"], mode=["max", "min"],
                                   population_size=8, generations=1)
    seeded.add_evaluated_trials(results, metric="acc")
    given = seeded.evaluated()
    assert len(given) == 24 and all(e["generation"] == -1 and e["metrics"] for e in given)
    ran = {tuple(r.config[f"layer_{i}"] for i in range(14)) for r in results}
    outs = [seeded.suggest(f"t{i}") for i in range(8)]
    assert all(isinstance(o, dict) for o in outs), outs  # a full generation 0 beside the given points
    handed = [tuple(o[f"layer_{j}"] for j in range(14)) for o in outs]
    assert not ran & set(handed)
    with pytest.raises(Exception, match=r"metric: must be one of the searcher's metrics"):
        seeded.add_evaluated_trials(results, metric="loss")
