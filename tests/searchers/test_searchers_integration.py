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
