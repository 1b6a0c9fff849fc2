"""A Ray Tune user's driver, for the crash tests: ``python tuner_crash_driver.py SEARCHER MODE RUN_DIR``.

MODE ``raise``, ``sigint`` or ``sigkill`` runs ``Tuner.fit()`` on the cluster at ``RAY_ADDRESS`` and, when
``CRASH_AFTER`` trials are complete (others still in flight), crashes the driver that way. MODE ``restore``
continues with ``Tuner.restore(RUN_DIR/run-SEARCHER, ...)`` as the user would, then writes what the run did to
``RUN_DIR/outcome.json``. Every trial appends its config to ``RUN_DIR/evaluations.jsonl`` when it ends.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")  # the experiment state as of each step
from ray import tune  # noqa: E402
from ray.tune.search import ConcurrencyLimiter  # noqa: E402

BUDGET, CRASH_AFTER, GENES = 12, 5, 6
SPACE = {f"g{i}": list(range(4)) for i in range(GENES)}


def run_name(run_dir: Path) -> str:
    """Each run's own experiment name: Ray stages an experiment's files under the cluster session by name
    and start time (to the second), so drivers started side by side under one name would share them."""
    return f"run-{run_dir.name}"


def make_trainable(log: str) -> Any:
    def trainable(config: dict[str, Any]) -> None:
        x = [config[f"g{i}"] for i in range(GENES)]
        time.sleep(0.3)  # long enough for a second trial to be in flight when the driver dies
        with open(log, "a") as f:
            f.write(json.dumps(x) + "\n")
        tune.report({"acc": float(sum(x)), "lat": float(sum(c * c * (1 + i) for i, c in enumerate(x)))})

    return trainable


def make_searcher(name: str) -> Any:
    if name == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        space = {k: tune.choice(v) for k, v in SPACE.items()}
        # Optuna's random sampler: its NSGA-II may itself propose a parent again, which is not what
        # this test looks for (BENCHMARKS.md counts those duplicates).
        return OptunaSearch(space, metric=["acc", "lat"], mode=["max", "min"],
                            sampler=optuna.samplers.RandomSampler(seed=0))
    from searchers import SEARCHERS

    settings = {"weighted-nsga2": dict(population_size=4, generations=3), "random": dict(num_samples=BUDGET),
                "reinforce": dict(num_samples=BUDGET, batch_size=4, quality_metric="acc", cost_metric="lat",
                                  cost_target=10.0)}[name]
    return SEARCHERS.get(name)(param_space=SPACE, metric=["acc", "lat"], mode=["max", "min"], seed=0, **settings)


def wait_for_the_storage_copy(name: str, storage: Path, timeout_s: float = 20.0) -> None:
    """Wait until Tune's background copy of its state files (driver staging directory -> storage) is done.

    Tune 2.60 copies ``experiment_state-*.json`` and the searcher's state to storage file by file, in a
    background thread, after each step. A SIGKILL in the middle of that copy leaves a torn (empty) experiment
    state in storage, and ``Tuner.restore`` then starts the experiment over: Ray's ``OptunaSearch`` ends with
    one trial as ours do (seen in this test, 2026-12-05). That is Tune's copy, not the searchers' contract,
    so the driver kills itself only once storage holds the same state files as the staging directory.
    """
    from ray.train.constants import _get_ray_train_session_dir

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        staged = [f for f in Path(_get_ray_train_session_dir()).glob(f"*/{name}/driver_artifacts/*") if f.is_file()]
        if staged and all((storage / f.name).exists() and (storage / f.name).stat().st_size == f.stat().st_size
                          for f in staged):
            return
        time.sleep(0.05)


class CrashAfter(tune.Callback):
    """The driver dies the given way at the first step after ``CRASH_AFTER`` trials are complete.

    From ``on_step_begin`` an exception leaves ``Tuner.fit()`` (Tune turns one from a trial hook into a
    failed trial instead)."""

    def __init__(self, name: str = "", storage: str = "") -> None:
        self.done = 0
        self.name, self.storage = name, storage

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.done += 1

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        # Tuner.restore brings this callback back: only the first driver, the one told how, crashes.
        how = os.environ.get("CRASH_HOW")
        if self.done < CRASH_AFTER or not how:
            return
        if how == "raise":
            raise RuntimeError("the driver crashed")
        self.done = -10**9  # one signal: Tune's second SIGINT would abort without saving
        if how == "sigkill":
            wait_for_the_storage_copy(self.name, Path(self.storage))
        os.kill(os.getpid(), signal.SIGINT if how == "sigint" else signal.SIGKILL)


def main(name: str, mode: str, run_dir: Path) -> None:
    import ray

    ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    trainable = make_trainable(str(run_dir / "evaluations.jsonl"))
    if mode == "restore":
        results = tune.Tuner.restore(str(run_dir / run_name(run_dir)), trainable=trainable).fit()
        configs = [[r.config[k] for k in SPACE] for r in results]
        outcome = {"trials": len(results), "configs": configs, "errors": len(results.errors)}
        (run_dir / "outcome.json").write_text(json.dumps(outcome))
        return
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(make_searcher(name), max_concurrent=2),
                                    num_samples=BUDGET if name == "optuna" else -1),
        run_config=tune.RunConfig(storage_path=str(run_dir), name=run_name(run_dir), verbose=0,
                                  callbacks=[CrashAfter(run_name(run_dir), str(run_dir / run_name(run_dir)))]),
    )
    os.environ["CRASH_HOW"] = mode
    tuner.fit()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
