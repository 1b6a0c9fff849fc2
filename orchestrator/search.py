"""The search stage: a hwnas searcher inside a ``ray.tune.Tuner``, one trial per candidate.

Resume needs no ``Tuner.restore``: the searcher is deterministic for the seed, so a fresh Tuner replays
the same candidates in the same order, and each one already scored is answered from the evaluation
cache in milliseconds. Work since Tune's last experiment-state save is therefore never redone.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from searchers import SEARCHERS
from spaces import SearchSpace

from .config import SearchConfig
from .evaluator import EvalContext

__all__ = ["SearchProgress", "format_seconds", "make_searcher", "param_space_of", "run_search"]


def make_searcher(cfg: SearchConfig, *, param_space: Mapping[str, Sequence[Any]], seed: int) -> Any:
    """The configured searcher over ``param_space``: the registry's class builds itself from the
    experiment's objectives, constraints and its (already validated) settings."""
    return SEARCHERS.get(cfg.searcher).from_objectives(
        param_space=param_space, objectives=cfg.objectives, constraints=cfg.constraints, seed=seed,
        settings=cfg.settings, where=lambda n: f"config field 'search.settings.{n}'",
    )


def param_space_of(space: SearchSpace) -> dict[str, list[int]]:
    return {d.name: list(range(d.size)) for d in space.dims}


def _evaluate_trial(config: dict[str, Any], ctx: EvalContext) -> None:
    """The Tune function trainable: score one candidate and report it."""
    from ray import tune

    from searchers import GENERATION_KEY

    space = ctx.space
    encoding = tuple(int(config[d.name]) for d in space.dims)
    metrics, cached = ctx.evaluate(encoding)
    tune.report({
        **metrics, "candidate_id": space.candidate_id(encoding), "encoding": space.to_string(encoding),
        "generation": int(config.get(GENERATION_KEY, 0)), "cached": cached,
    })


_SHORT = {"accuracy": "acc"}  # how the progress line names a task's score


class SearchProgress:
    """Turns finished trials into journal records (via ``on_candidate``) and progress lines."""

    def __init__(self, *, total: int, known: set[str], on_candidate: Callable[[dict[str, Any]], None],
                 on_failure: Callable[[str, str], None], printer: Callable[[str], None],
                 score_metric: str = "accuracy") -> None:
        self.total, self.known, self.score_metric = total, known, score_metric
        self.on_candidate, self.on_failure, self.printer = on_candidate, on_failure, printer
        self.done = 0
        self.fresh = 0
        self.started = time.perf_counter()

    def trial_complete(self, result: dict[str, Any]) -> None:
        self.done += 1
        if not result.get("cached"):
            self.fresh += 1
        if result["candidate_id"] not in self.known:
            self.known.add(result["candidate_id"])
            self.on_candidate(result)
        self._print(result)

    def trial_error(self, trial_id: str, reason: str) -> None:
        self.done += 1
        self.on_failure(trial_id, reason)

    def _print(self, r: dict[str, Any]) -> None:
        elapsed = time.perf_counter() - self.started
        eta = elapsed / max(1, self.fresh) * max(0, self.total - self.done) if self.fresh else 0.0
        tag = " (cached)" if r.get("cached") else ""
        self.printer(
            f"[search] gen {r['generation']} candidates {self.done}/{self.total}  {r['candidate_id']}  "
            f"{_SHORT.get(self.score_metric, self.score_metric)} {r[self.score_metric]:.3f}  "
            f"lat {r['latency_ms']:.3f} ms  params {r['params'] / 1e6:.3f}M{tag}  "
            f"ETA {format_seconds(eta)}"
        )


def format_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}"


def _error_line(trial: Any) -> str:
    """The last line of a failed trial's traceback: the part that says what went wrong."""
    try:
        lines = [ln for ln in str(trial.get_error()).splitlines() if ln.strip()]
        return lines[-1].strip()[:400] if lines else "unknown error"
    except Exception:  # noqa: BLE001 - the reason is a courtesy; the full traceback is in Tune's dir
        return "unknown error"


def _tune_callback(progress: SearchProgress) -> Any:
    from ray.tune import Callback

    class HwnasTuneCallback(Callback):
        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            result = trial.last_result or {}
            if "candidate_id" in result:
                progress.trial_complete(result)
            else:
                progress.trial_error(trial.trial_id, "it reported no result")

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            progress.trial_error(trial.trial_id, _error_line(trial))

    return HwnasTuneCallback()


def run_search(*, cfg: SearchConfig, space: SearchSpace, ctx: EvalContext, seed: int, attempt: int,
               progress: SearchProgress, trial_fn: Callable[..., None] | None = None) -> Any:
    """Run (or replay) the whole search; returns the searcher after it reported FINISHED.

    ``trial_fn(config, ctx)`` replaces the default trainable (benchmarks use a trivially cheap one).
    """
    from ray import tune

    import logging

    # hwnas keeps its records in the journal, not in Tune's result files; Tune's end-of-run analysis
    # would warn about every trial that it found none.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    searcher = make_searcher(cfg, param_space=param_space_of(space), seed=seed)
    trainable = tune.with_resources(tune.with_parameters(trial_fn or _evaluate_trial, ctx=ctx), {"cpu": 1})
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher, num_samples=10**7,  # the searcher ends the run with FINISHED
            max_concurrent_trials=cfg.max_concurrent, reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"search-attempt-{attempt}", storage_path=str(Path(ctx.experiment_dir) / "tune"),
            callbacks=[_tune_callback(progress)], verbose=0, log_to_file=False,
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
        ),
    )
    tuner.fit()
    if not searcher.finished:
        # Tune stops early on SIGINT/SIGTERM and returns normally; the search is not done.
        raise KeyboardInterrupt("the search stopped before its last generation")
    return searcher
