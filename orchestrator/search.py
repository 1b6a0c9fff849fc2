"""The search stage: a hwnas searcher inside a ``ray.tune.Tuner``, one trial per candidate.

Resume needs no ``Tuner.restore``: the searcher is deterministic for the seed, so a fresh Tuner replays
the same candidates in the same order, and each one already scored is answered from the evaluation
cache in milliseconds. Work since Tune's last experiment-state save is therefore never redone.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from core.errors import ExperimentError, HwnasError
from searchers import SEARCHERS
from spaces import SearchSpace

from .config import SearchConfig
from .evaluator import EvalContext

__all__ = ["SearchProgress", "SearchStopped", "TRIAL_RETRIES", "encoding_of", "first_line", "format_seconds",
           "make_searcher", "param_space_of", "run_search"]


class SearchStopped(ExperimentError):
    """The search stopped before its end for a reason that is not a candidate's: nothing is completed."""


def make_searcher(cfg: SearchConfig, *, param_space: Mapping[str, Sequence[Any]], seed: int) -> Any:
    """The configured searcher over ``param_space``: the registry's class builds itself from the
    experiment's objectives, constraints and its (already validated) settings."""
    return SEARCHERS.get(cfg.searcher).from_objectives(
        param_space=param_space, objectives=cfg.objectives, constraints=cfg.constraints, seed=seed,
        settings=cfg.settings, where=lambda n: f"config field 'search.settings.{n}'",
    )


def param_space_of(space: SearchSpace) -> dict[str, list[int]]:
    return {d.name: list(range(d.size)) for d in space.dims}


#: Tries of a trial after the first whose worker died or raised (Tune's FailureConfig.max_failures):
#: a machine fault is retried, so it never changes which candidates the search sees.
TRIAL_RETRIES = 3

FATAL_KEY = "hwnas_fatal"  # a trial reports this instead of metrics when the experiment itself is broken


def encoding_of(space: SearchSpace, config: Mapping[str, Any]) -> tuple[int, ...]:
    """The encoding a trial's config holds (one choice index per dimension)."""
    return tuple(int(config[d.name]) for d in space.dims)


def first_line(error: BaseException, limit: int = 300) -> str:
    """An error's first line of text (its type's name if it has none), cut to ``limit`` characters."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__


def _evaluate_trial(config: dict[str, Any], ctx: EvalContext) -> None:
    """The Tune function trainable: score one candidate and report it.

    An :class:`HwnasError` (a damaged checkpoint, a missing cost model) is the experiment's fault, not the
    candidate's: it is reported as fatal, and the search stops instead of retrying every trial into it.
    Any other error propagates: Tune retries the trial (:data:`TRIAL_RETRIES`).
    """
    from ray import tune

    from searchers import GENERATION_KEY

    space = ctx.space
    encoding = encoding_of(space, config)
    try:
        metrics, cached = ctx.evaluate(encoding)
    except HwnasError as exc:
        # Tune insists on the searcher's metrics in every result: NaN (infeasible) for each, unread anyway.
        from trainers import DATASETS

        from .metrics import metric_names

        tune.report({FATAL_KEY: str(exc), **dict.fromkeys(metric_names(DATASETS.get(ctx.data_kind).task), math.nan)})
        return
    tune.report({
        **metrics, "candidate_id": space.candidate_id(encoding), "encoding": space.to_string(encoding),
        "generation": int(config.get(GENERATION_KEY, 0)), "cached": cached,
    })


_SHORT = {"accuracy": "acc"}  # how the progress line names a task's score


class SearchProgress:
    """Turns finished trials into journal records (via ``on_candidate``) and progress lines, and decides
    when the search must stop: a fatal report, or a trial that failed for infrastructure reasons after
    its retries. ``abort_reason`` then says why; the stage is not completed."""

    def __init__(self, *, total: int, known: set[str], on_candidate: Callable[[dict[str, Any]], None],
                 on_failure: Callable[[str, str], None], printer: Callable[[str], None],
                 score_metric: str = "accuracy", candidate_of: Callable[[dict[str, Any]], str] = str) -> None:
        self.total, self.known, self.score_metric = total, known, score_metric
        self.on_candidate, self.on_failure, self.printer = on_candidate, on_failure, printer
        self.candidate_of = candidate_of
        self.done = 0
        self.fresh = 0
        self.failed = 0
        self.abort_reason: str | None = None
        self.started = time.perf_counter()
        self._recovered: dict[str, Any] = {}  # trial id -> Tune's Trial, once Tune retried it

    def trial_complete(self, result: dict[str, Any]) -> None:
        if FATAL_KEY in result:
            self.abort(str(result[FATAL_KEY]))
            return
        self.done += 1
        if not result.get("cached"):
            self.fresh += 1
        if result["candidate_id"] not in self.known:
            try:
                self.on_candidate(result)
            except Exception as exc:  # noqa: BLE001 - any failure to record stops the search, reported
                # Raised into Tune, it would count as the trial's failure: the trial retried, the candidate
                # scored and recorded twice. Not recording it is the experiment's fault (a full disk, a lost
                # tracking server): stop; `hwnas resume` replays what the journal holds.
                self.abort(f"recording candidate {result['candidate_id']} failed: {type(exc).__name__}: {exc}")
                return
            self.known.add(result["candidate_id"])
        self._print(result)

    def trial_retried(self, trial: Any, reason: str) -> None:
        self._recovered[trial.trial_id] = trial
        self.printer(f"[search] candidate {self.candidate_of(trial.config)}: {reason}; "
                     f"retrying ({trial.num_failures} of {TRIAL_RETRIES} retries)")

    def ended_early(self, trial_id: str) -> bool:
        """Whether Tune ended this trial before its retries were used up: Tune 2.60 handles the one failure
        of a reused worker that had died (killed while idle, or lost with its node) twice, retrying the
        trial and then failing it. The searcher then hands the candidate out again (its
        ``retry_failed_trials`` filter)."""
        trial = self._recovered.get(trial_id)
        return trial is not None and trial.num_failures <= TRIAL_RETRIES

    def trial_error(self, trial: Any, reason: str, *, infrastructure: bool) -> None:
        """A trial failed for good. A machine fault stops the search; a candidate whose evaluation raised
        on every try is recorded as failed, and counts as infeasible to the searcher."""
        candidate, trial_id = self.candidate_of(trial.config), trial.trial_id
        if self.ended_early(trial_id):
            self.printer(f"[search] candidate {candidate}: Tune ended its trial after {trial.num_failures} of "
                         f"{TRIAL_RETRIES + 1} tries ({reason}); a new trial evaluates it")
            return
        if infrastructure:
            self.abort(f"the trial of candidate {candidate} failed {max(trial.num_failures, 1)} times for a reason "
                       f"outside the candidate ({reason})")
            return
        self.done += 1
        self.failed += 1
        self.on_failure(trial_id, f"candidate {candidate}: {reason}")
        if self.failed >= 3 and self.failed == self.done:
            self.abort(f"the first {self.failed} candidates all failed, the last with: {reason}; that is not "
                       f"the candidates' fault")

    def abort(self, reason: str) -> None:
        if self.abort_reason is None:
            self.abort_reason = reason

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


def _failure(trial: Any) -> tuple[str, bool]:
    """(the reason in one line, whether it is an infrastructure failure) of a trial's last error.

    A Python exception the evaluation raised is the candidate's; a dead worker, a lost node or an
    out-of-memory kill is the machine's.
    """
    from ray.exceptions import RayError, RayTaskError

    error = _last_error(trial)
    if error is None:
        return "error: unknown error", True
    if isinstance(error, RayTaskError) and not isinstance(error.cause, RayError):
        return f"{type(error.cause).__name__}: {first_line(error.cause)}", False
    return f"{type(error).__name__}: {first_line(error)}", True


def _last_error(trial: Any) -> BaseException | None:
    """The exception of the trial's last failure, from the pickle Tune writes next to the trial (its
    local copy: the one in the storage path is synced later)."""
    import cloudpickle

    for read in (lambda: cloudpickle.loads(Path(trial.pickled_error_file).read_bytes()), trial.get_pickled_error):
        try:
            error = read()
        except Exception:  # noqa: BLE001 - missing or unreadable: try the next place
            continue
        if error is not None:
            return error
    return None


def _tune_callback(progress: SearchProgress) -> Any:
    from ray.tune import Callback

    class HwnasTuneCallback(Callback):
        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            result = trial.last_result or {}
            if "candidate_id" in result or FATAL_KEY in result:
                progress.trial_complete(result)
            else:
                progress.trial_error(trial, "it reported no result", infrastructure=True)

        def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            reason, _ = _failure(trial)
            progress.trial_retried(trial, reason)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            reason, infrastructure = _failure(trial)
            progress.trial_error(trial, reason, infrastructure=infrastructure)

    return HwnasTuneCallback()


def _abort_stopper(progress: SearchProgress) -> Any:
    from ray.tune import Stopper

    class AbortStopper(Stopper):
        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return False

        def stop_all(self) -> bool:
            return progress.abort_reason is not None

    return AbortStopper()


def run_search(*, cfg: SearchConfig, space: SearchSpace, ctx: EvalContext, seed: int, attempt: int,
               progress: SearchProgress, trial_fn: Callable[..., None] | None = None, searcher: Any = None) -> Any:
    """Run (or replay) the whole search; returns the searcher after it reported FINISHED.

    ``trial_fn(config, ctx)`` replaces the default trainable (benchmarks use a trivially cheap one);
    ``searcher`` the configured searcher (a joint search scores its controller's architectures).
    """
    from ray import tune

    import logging

    # hwnas keeps its records in the journal, not in Tune's result files; Tune's end-of-run analysis
    # would warn about every trial that it found none.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    # A failed trial is reported by hwnas in one line (retried, or why the search stopped); Tune's own
    # log of it is a page of traceback, kept in the trial's error file under tune/.
    logging.getLogger("ray.tune.execution.tune_controller").setLevel(logging.CRITICAL)
    searcher = searcher or make_searcher(cfg, param_space=param_space_of(space), seed=seed)
    trainable = tune.with_resources(tune.with_parameters(trial_fn or _evaluate_trial, ctx=ctx),
                                     # a CPU, and a share of a GPU when scoring on CUDA; a stand-in context
                                     # (benchmarks, tests) without that property takes a CPU
                                     getattr(ctx, "trial_resources", {"cpu": 1}))
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
            failure_config=tune.FailureConfig(max_failures=TRIAL_RETRIES),
            stop=_abort_stopper(progress),
        ),
    )
    if hasattr(searcher, "retry_failed_trials"):  # after the Tuner pickled its config: a filter is no state
        searcher.retry_failed_trials(progress.ended_early)
    tuner.fit()
    if progress.abort_reason is not None:
        raise SearchStopped(progress.abort_reason)
    if not searcher.finished:
        # Tune stops early on SIGINT/SIGTERM and returns normally; the search is not done.
        raise KeyboardInterrupt("the search stopped before its last generation")
    return searcher
