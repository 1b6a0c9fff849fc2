"""How the search stage tells a candidate's failure from the experiment's, on a real Ray Tune run:
a candidate whose evaluation raises on every try is recorded as failed (infeasible to the searcher)
and the search goes on; a broken experiment (a checkpoint that is not the recorded one), or failures
that cannot be the candidates' fault, stop the search, which then never completes."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pytest

from orchestrator.config import SearchConfig
from orchestrator.search import (TRIAL_RETRIES, SearchProgress, SearchStopped, encoding_of, make_searcher,
                                 param_space_of, run_search)
from spaces import get_space

pytestmark = pytest.mark.integration

SPACE_SETTINGS = {"width_mult": 0.25, "input_size": 32, "num_classes": 4, "stem_stride": 2}
CFG = SearchConfig(settings={"population_size": 4, "generations": 2})
SPACE = get_space("moga", **SPACE_SETTINGS)


def _first_suggestions(n: int) -> list[str]:
    """The candidate ids the searcher suggests first (it is deterministic for the seed)."""
    searcher = make_searcher(CFG, param_space=param_space_of(SPACE), seed=0)
    return [SPACE.candidate_id(encoding_of(SPACE, searcher.suggest(f"t{i}"))) for i in range(n)]


def _trial_raising_for(broken: set[str]) -> Callable[..., None]:
    # Defined in a function so that Ray ships it by value: workers cannot import test modules.
    def trial(config: dict[str, Any], ctx: Any) -> None:
        from ray import tune

        from searchers import GENERATION_KEY
        from spaces import get_space

        space = get_space("moga", **ctx.space_settings)
        encoding = tuple(int(config[d.name]) for d in space.dims)
        cid = space.candidate_id(encoding)
        if cid in broken:
            raise ValueError(f"candidate {cid} cannot be built on this device")
        counts = space.count(encoding)
        tune.report({"accuracy": 1.0 / (1.0 + counts["madds"] / 1e6), "latency_ms": counts["madds"] / 1e6,
                     "params": counts["params"], "madds": counts["madds"], "candidate_id": cid,
                     "encoding": space.to_string(encoding), "generation": int(config.get(GENERATION_KEY, 0)),
                     "cached": False})
    return trial


def _run(tmp_path: Path, trial_fn: Callable[..., None] | None, ctx: Any,
         lines: list[str] | None = None) -> tuple[SearchProgress, list, list, list]:
    lines = [] if lines is None else lines
    scored: list[dict] = []
    failed: list[str] = []
    progress = SearchProgress(total=CFG.budget, known=set(), on_candidate=scored.append,
                              on_failure=lambda trial_id, reason: failed.append(reason), printer=lines.append,
                              candidate_of=lambda config: SPACE.candidate_id(encoding_of(SPACE, config)))
    run_search(cfg=CFG, space=SPACE, ctx=ctx, seed=0, attempt=1, progress=progress,
               trial_fn=trial_fn)
    return progress, lines, scored, failed


def test_a_candidate_failing_on_every_try_is_recorded_and_the_search_goes_on(tmp_path: Path, tune_ray: None) -> None:
    broken = _first_suggestions(2)[1]
    ctx = SimpleNamespace(experiment_dir=str(tmp_path), space_settings=SPACE_SETTINGS)
    progress, lines, scored, failed = _run(tmp_path, _trial_raising_for({broken}), ctx)
    assert progress.abort_reason is None
    assert progress.done == CFG.budget and progress.failed == 1
    assert len(failed) == 1 and broken in failed[0] and "ValueError: candidate" in failed[0]
    assert broken not in {r["candidate_id"] for r in scored}
    assert sum(f"candidate {broken}: ValueError" in ln and "retrying" in ln for ln in lines) == TRIAL_RETRIES


def test_failures_that_cannot_be_the_candidates_stop_the_search(tmp_path: Path, tune_ray: None) -> None:
    ctx = SimpleNamespace(experiment_dir=str(tmp_path), space_settings=SPACE_SETTINGS)
    with pytest.raises(SearchStopped, match="the first 3 candidates all failed"):
        _run(tmp_path, _trial_raising_for(set(_first_suggestions(4))), ctx)


def test_a_candidate_that_cannot_be_recorded_stops_the_search_without_a_retry(tmp_path: Path, tune_ray: None) -> None:
    ctx = SimpleNamespace(experiment_dir=str(tmp_path), space_settings=SPACE_SETTINGS)
    recorded: list[str] = []

    def record(result: dict) -> None:
        if len(recorded) == 2:
            raise OSError(28, "No space left on device")
        recorded.append(result["candidate_id"])

    lines: list[str] = []
    progress = SearchProgress(total=CFG.budget, known=set(), on_candidate=record,
                              on_failure=lambda trial_id, reason: pytest.fail(reason), printer=lines.append,
                              candidate_of=lambda config: SPACE.candidate_id(encoding_of(SPACE, config)))
    with pytest.raises(SearchStopped, match=r"recording candidate \S+ failed: OSError: .*No space left on device"):
        run_search(cfg=CFG, space=SPACE, ctx=ctx, seed=0, attempt=1, progress=progress,
                   trial_fn=_trial_raising_for(set()))
    assert not any("retrying" in ln for ln in lines), lines  # Tune never saw it as the trial's failure
    assert len(recorded) == len(set(recorded)) == 2
    assert progress.known == set(recorded)  # the unrecorded candidate is not known: a resume scores it


def test_a_checkpoint_that_is_not_the_recorded_one_stops_the_search_at_once(tmp_path: Path, tune_ray: None) -> None:
    from orchestrator.evaluator import EvalContext

    checkpoint = tmp_path / "supernet.pt"
    checkpoint.write_bytes(os.urandom(1024))
    ctx = EvalContext(
        experiment_dir=str(tmp_path), space_name="moga", space_settings=SPACE_SETTINGS,
        supernet_path=str(checkpoint), supernet_digest="0" * 64, seed=0, data_kind="synthetic",
        data={"num_classes": 4, "image_size": 32, "train_size": 64, "val_size": 32, "noise": 0.45},
        evaluation={"bn_batches": 1, "bn_batch_size": 16, "batch_size": 32}, cost={"kind": "madds"},
        fingerprint="test",
    )
    lines: list[str] = []
    with pytest.raises(SearchStopped, match=r"supernet checkpoint .* recorded when its training finished"):
        _run(tmp_path, None, ctx, lines)
    assert not any("retrying" in ln for ln in lines)  # the experiment's fault: never retried
    assert not any(ln.startswith("[search] gen") for ln in lines)  # and no candidate scored



def test_a_trial_tune_ends_before_its_retries_is_evaluated_again_not_lost(tmp_path: Path, tune_ray: None) -> None:
    """Tune 2.60 handles the one failure of a reused worker that had died (killed while idle, or lost with its
    node) twice: ``_process_trial_failure`` retries the trial (``on_trial_recover``), then, for the same
    death, tells the searcher the trial errored and fires ``on_trial_error`` with 2 failures of 4 allowed
    (tune_controller.py, ``_actor_failed`` and the reset call's own error handler). That exact sequence,
    on Tune's own Trial and the real searcher: the candidate is handed out again and nothing aborts."""
    from ray.exceptions import ActorDiedError
    from ray.train._internal.storage import StorageContext
    from ray.tune.experiment import Trial as TuneTrial

    from orchestrator.search import _tune_callback

    def Trial(name: str, *, config: dict, trial_id: str, stub: bool) -> TuneTrial:  # noqa: N802 - Tune's
        trial = TuneTrial(name, config=config, trial_id=trial_id, stub=stub,
                          storage=StorageContext(storage_path=str(tmp_path), experiment_dir_name="exp"))
        trial.init_local_path()
        return trial

    searcher = make_searcher(CFG, param_space=param_space_of(SPACE), seed=0)
    searcher.set_search_properties(metric=None, mode=None, config={})
    lines: list[str] = []
    progress = SearchProgress(total=CFG.budget, known=set(), on_candidate=lambda r: None,
                              on_failure=lambda trial_id, reason: pytest.fail(reason), printer=lines.append,
                              candidate_of=lambda config: SPACE.candidate_id(encoding_of(SPACE, config)))
    searcher.retry_failed_trials(progress.ended_early)
    callback = _tune_callback(progress)
    config = searcher.suggest("t0")
    trial = Trial("trainable", config=config, trial_id="t0", stub=True)
    died = ActorDiedError()
    trial.handle_error(died)  # the dead worker's failure, first handling: retried
    callback.on_trial_recover(0, [trial], trial)
    trial.handle_error(died)  # ... and second handling: ended
    searcher.on_trial_complete("t0", error=True)
    callback.on_trial_error(0, [trial], trial)
    assert progress.abort_reason is None, lines
    assert any("Tune ended its trial after 2 of 4 tries" in line for line in lines), lines
    assert searcher.suggest("t1") == config  # the same candidate, under a new trial
    again = Trial("trainable", config=config, trial_id="t1", stub=True)
    for _ in range(TRIAL_RETRIES):  # a trial that did use up its retries ...
        again.handle_error(died)
        callback.on_trial_recover(0, [again], again)
    again.handle_error(died)
    assert not progress.ended_early("t1")
    searcher.on_trial_complete("t1", error=True)
    callback.on_trial_error(0, [again], again)  # ... still stops the search, saying how often it failed
    assert progress.abort_reason is not None and f"failed {TRIAL_RETRIES + 1} times" in progress.abort_reason
    assert searcher.suggest("t2") != config  # and its candidate was filed as failed, not handed out again
