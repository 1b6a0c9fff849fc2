"""The stages of an experiment, in order, each recorded in the journal:
calibrate (only for cost.kind kernels / linear / lut) -> train supernet -> search -> finalize.

A stage whose completion is in the journal is never run again; a stage that started but did not
complete picks up from its own durable state (supernet checkpoint, evaluation cache).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from core.digest import SHORT, file_digest
from core.errors import ExperimentError
from core.jsonio import repair_jsonl_tail, write_json_atomic

from .config import ExperimentConfig
from .evaluator import EvalContext, evaluator_fingerprint, measure_options, worker_state
from .experiment import Experiment
from .journal import JournalState
from .metrics import TIMING_KEYS, candidate_metrics
from .placement import placed_compute
from .pareto_view import write_pareto_html
from .results import front_table, pareto_ids, plot_front, write_pareto_csv
from .search import (TRIAL_RETRIES, SearchProgress, SearchStopped, encoding_of, first_line, format_seconds,
                     run_search)
from .run_tags import describe_experiment, identifying_tags, source_tags
from .tracking import Tracker

__all__ = ["run_experiment", "STAGES", "stages_for"]

STAGES = ("calibrate", "train_supernet", "search", "finalize", "retrain")
Printer = Callable[[str], None]
COST_MODEL_FILE = "cost_model.json"


def stages_for(cfg: ExperimentConfig) -> tuple[str, ...]:
    """The stages an experiment runs: ``calibrate`` only where a cost model predicts latency, ``retrain``
    only with a ``retrain`` section."""
    return tuple(s for s in STAGES if (s != "calibrate" or cfg.cost.uses_model) and (s != "retrain" or cfg.retrain is not None))


def run_experiment(exp: Experiment, *, address: str | None, printer: Printer = print,
                   retrain_requests: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run every stage not yet completed; return the summary written to summary.json.

    ``retrain_requests`` (from ``hwnas retrain``) are retrained after the stages, besides any retrain the
    config's section or an interrupted earlier run asked for.
    """
    with exp.lock():
        state = exp.journal.replay()
        _preflight(exp, state)  # a damaged file is one clear error before anything is written or started
        identity = _check_data(exp, state, printer)
        exp.record_holder()
        _repair_tails(exp, printer)
        if state.data is None:
            exp.journal.append("data", identity=identity)
        return _run_stages(exp, state, identity, address=address, printer=printer,
                           retrain_requests=retrain_requests or [])


def _check_data(exp: Experiment, state: JournalState, printer: Printer) -> dict[str, Any]:
    """Prepare the data (decode caches) and make sure it is the data the experiment started with."""
    from trainers import DATASETS

    identity = DATASETS.get(exp.config.data.kind).prepare(exp.config.data.settings, printer=printer)
    if state.data is not None and state.data != identity:
        changed = sorted(k for k in set(state.data) | set(identity) if state.data.get(k) != identity.get(k))
        raise ExperimentError(
            f"the data changed since experiment {exp.directory} started ({', '.join(changed)} differ): its scores "
            f"would mix two datasets. HINT: put the original data back, or start a new experiment on the new data."
        )
    return identity


def _preflight(exp: Experiment, state: JournalState) -> None:
    """Check the experiment's state files that a later stage would trip over."""
    from trainers import check_checkpoint

    cfg, path, space = exp.config, exp.supernet_path, exp.config.build_space()
    if cfg.cost.uses_model and state.stage("calibrate") == "completed":
        from cluster.calibration import load_cost_model

        load_cost_model(exp.directory / COST_MODEL_FILE, kind=cfg.cost.kind, space=space,
                        what="the experiment's cost model")
    if path.exists():
        digest = state.completed["train_supernet"]["digest"] if state.stage("train_supernet") == "completed" else None
        check_checkpoint(path, space, digest=digest)
    if cfg.cost.kind == "measured":  # the latency actor loads it too; a damaged file is one line here instead
        from cluster.cache import LatencyCache

        LatencyCache(exp.directory / "latency_cache.jsonl")


#: The append-only files of an experiment; a torn last line (a write cut short) is cut before appending.
APPEND_ONLY = ("journal.jsonl", "evaluations.jsonl", "latency_cache.jsonl")


def _repair_tails(exp: Experiment, printer: Printer) -> None:
    for name in APPEND_ONLY:
        cut = repair_jsonl_tail(exp.directory / name)
        if cut:
            printer(f"hwnas: {name} ended in a torn record ({cut} bytes, kept in {name}.torn); cut it before "
                    f"appending")


def _run_stages(exp: Experiment, state: JournalState, identity: dict[str, Any], *, address: str | None,
                printer: Printer, retrain_requests: list[dict[str, Any]]) -> dict[str, Any]:
    from cluster import connect, require_device

    cfg = exp.config
    journal = exp.journal
    journal.append("attempt_started", attempt=state.attempts + 1)
    tracker = Tracker(tracking_uri=exp.tracking_uri, experiment_name=cfg.name, uid=exp.uid, printer=printer,
                      space_name=cfg.space.name, quality=cfg.quality_metric, space=cfg.build_space(),
                      run_tags=identifying_tags(cfg, exp.uid), description=describe_experiment(cfg),
                      in_process=False)  # logging off the driver's GIL: Tune's event loop never waits for MLflow
    tracker.prepare()  # the tracking process starts up (seconds) while Ray does
    try:
        connect(address, num_cpus=None)
        placed_compute(cfg.compute)  # a cuda or fp16 setting the cluster cannot run fails before any stage
        if cfg.cost.measures:
            require_device(cfg.cost.device)
    except BaseException:
        tracker.close()
        raise
    tracker.start(params=_flat_params(cfg), tags={"hwnas_dir": str(exp.directory),
                                                   **source_tags(f"hwnas search {exp.directory}"),
                                                   "note": f"hwnas experiment {exp.directory}"})
    train = cfg.data.settings.get("train")  # a folder, or a COCO split's {images, annotations}
    source = train.get("annotations") if isinstance(train, dict) else train
    tracker.log_dataset(name=cfg.data.kind, identity=identity, source=str(source or exp.directory))
    try:
        if cfg.cost.uses_model:
            _calibrate(exp, state, printer)
        digest = _train_supernet(exp, state, printer, tracker)
        _search(exp, state, digest, tracker, attempt=state.attempts + 1, printer=printer)
        summary = _finalize(exp, digest, tracker, printer)
        return _retrain(exp, summary, tracker, printer, requests=retrain_requests)
    except BaseException:
        tracker.fail()
        raise
    finally:
        tracker.close()


def _flat_params(cfg: ExperimentConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = value

    walk("", cfg.to_dict())
    return out


# ---------------------------------------------------------------------- stage 0: cost model
def _calibrate(exp: Experiment, state: JournalState, printer: Printer) -> None:
    """Put the experiment's cost model in ``cost_model.json``: a copy of cost.model, or fitted here.

    Fitting measures through the device's latency service into the experiment's latency cache, so
    an interrupted calibration re-measures nothing on resume; the model file is written atomically
    and the stage completed only after it, so a completed stage always has its file.
    """
    from cluster import LatencyClient
    from cluster.calibration import ServiceMeasurer, fit_cost_model, load_cost_model, save_cost_model

    stage, cfg, path = "calibrate", exp.config, exp.directory / COST_MODEL_FILE
    if state.stage(stage) == "completed":
        printer(f"[{stage}] done earlier ({_fidelity_line(state.completed[stage].get('fidelity') or {})}); skipped")
        return
    exp.journal.stage_started(stage)
    if cfg.cost.model:
        result = load_cost_model(cfg.cost.model, kind=cfg.cost.kind, space=cfg.build_space(),
                                 what="config field 'cost.model'")
        save_cost_model(path, result)  # the experiment's own copy: refitting the original changes nothing here
        source = cfg.cost.model
    else:
        samples = cfg.cost.calibration_samples
        how_many = "architectures" if samples == "auto" else f"{samples} architectures"
        until = " until held-out fidelity stops improving" if samples == "auto" else ""
        printer(f"[{stage}] fitting a {cfg.cost.kind} cost model from {how_many} measured on {cfg.cost.device}{until}")
        client = LatencyClient(cfg.cost.device, str(exp.directory / "latency_cache.jsonl"),
                               options=cfg.cost.measure_options(), device_wait_s=cfg.cost.device_wait_s)
        result = fit_cost_model(cfg.cost.kind, cfg.build_space(), samples=cfg.cost.calibration_samples,
                                seed=cfg.seed, measurer=ServiceMeasurer(client, progress=printer),
                                device=cfg.cost.device)
        save_cost_model(path, result)
        source = "calibration"
    fidelity = dict(result.info.get("fidelity") or {})
    exp.journal.stage_completed(stage, kind=cfg.cost.kind, source=source, fidelity=fidelity)
    printer(f"[{stage}] {cfg.cost.kind} cost model in {path}: {_fidelity_line(fidelity)}")


def _fidelity_line(f: dict[str, Any]) -> str:
    if not f:
        return "no held-out fidelity recorded"

    def num(key: str, spec: str) -> str:
        return "n/a" if f.get(key) is None else format(f[key], spec)

    return (f"held-out r2 {num('r2', '.3f')}, RMSE {num('rmse_ms', '.4f')} ms ({num('rmse_pct', '.1f')}% of mean), "
            f"Spearman {num('spearman', '.3f')}, Kendall {num('kendall', '.3f')}, n {f.get('n', '?')}"
            f"{'' if (f.get('passes') or 1) == 1 else ', each the mean of ' + str(f['passes']) + ' passes'}")


def _calibration_metrics(state: JournalState) -> dict[str, float]:
    """The calibration's held-out fidelity as MLflow metrics of the search run (``costmodel_r2``, ...)."""
    fidelity = state.completed.get("calibrate", {}).get("fidelity") or {}
    return {f"costmodel_{k}": float(v) for k, v in fidelity.items() if isinstance(v, (int, float))}


# ---------------------------------------------------------------------- stage 1: supernet
def _train_supernet(exp: Experiment, state: JournalState, printer: Printer, tracker: Tracker | None = None) -> str:
    """Train the supernet (or finish training it); return the sha256 of its final checkpoint.

    A completed stage's checkpoint must still be the file its digest was taken of: every score depends
    on it. A deleted one is trained again from the seed and must come out bit-identical.
    """
    stage, path = "train_supernet", exp.supernet_path
    if state.stage(stage) == "completed":
        digest = state.completed[stage]["digest"]
        if path.exists():  # checked against the digest before anything started (_preflight)
            printer(f"[{stage}] done earlier (step {state.completed[stage]['steps']}); skipped")
            return digest
        printer(f"[{stage}] {path} is missing: training it again from the seed (it must match the recorded digest)")
        _run_trainer(exp, printer, _report_to(exp, tracker))
        if file_digest(path) != digest:
            raise ExperimentError(
                f"the supernet trained again into {path} differs from the one recorded ({digest[:12]}...), so the "
                f"scores already in this experiment came from other weights. HINT: resume on the machine and "
                f"hwnas/torch versions that trained it, or start a new experiment."
            )
        return digest
    exp.journal.stage_started(stage)
    _run_trainer(exp, printer, _report_to(exp, tracker))
    digest = file_digest(path)
    exp.journal.stage_completed(stage, steps=exp.config.supernet.steps, digest=digest)
    return digest


def _report_to(exp: Experiment, tracker: Tracker | None) -> Callable[[dict[str, Any]], None] | None:
    """After every chunk of steps: the supernet's per-step curves to its MLflow run, and a joint search's
    controller to the search run (each a history over steps)."""
    if tracker is None:
        return None
    settings = {f"supernet.{k}": v for k, v in vars(exp.config.supernet).items()}
    if exp.config.search.mode != "joint":
        return lambda info: tracker.log_supernet(info, params=settings)
    from .joint import controller_metrics

    space = exp.config.build_space()

    def report(info: dict[str, Any]) -> None:
        tracker.log_supernet(info, params=settings)
        tracker.log_metrics(controller_metrics(space, info), step=int(info["step"]))
    return report


def _start_trainer(exp: Experiment, cpus: int, compute: Any) -> Any:
    """The trainer's Ray actor: the supernet alone, or with the controller (``search.mode: joint``)."""
    from trainers import SupernetTrainSettings, start_trainer_actor

    cfg = exp.config
    common = dict(num_cpus=cpus, num_gpus=1 if compute.device == "cuda" else 0, compute=compute.to_dict(),
                  space_name=cfg.space.name, space_settings=cfg.space_settings(), data_kind=cfg.data.kind,
                  data_settings=cfg.data.settings, seed=cfg.seed, checkpoint_path=str(exp.supernet_path),
                  train=SupernetTrainSettings(**{**vars(cfg.supernet), "threads": cpus}), task_settings=cfg.detection)
    if cfg.search.mode != "joint":
        return start_trainer_actor(**common)
    from .joint import start_joint_actor

    cost = {k: v for k, v in vars(cfg.cost).items() if k not in ("model", "calibration_samples")}
    return start_joint_actor(**common, joint=dict(cfg.search.settings), cost=cost, experiment_dir=str(exp.directory))


def _run_trainer(exp: Experiment, printer: Printer, on_report: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Train in a Ray actor up to the configured step, from the checkpoint if there is one.

    A trainer that dies (its process killed, its node lost) is started again from the last checkpoint,
    up to :data:`TRIAL_RETRIES` times: training resumes bit for bit, so the fault changes nothing.
    """
    import ray
    from ray.exceptions import RayActorError

    cfg = exp.config
    cpus = max(1, min(cfg.supernet.threads, int(ray.available_resources().get("CPU", 1))))
    compute = placed_compute(cfg.compute)
    joint = " with the REINFORCE controller (joint search)" if cfg.search.mode == "joint" else ""
    printer(f"[train_supernet] computing on {compute.device} ({compute.precision}){joint}")
    for attempt in range(TRIAL_RETRIES + 1):
        actor = _start_trainer(exp, cpus, compute)
        try:
            _train_loop(actor, cfg, printer, on_report=on_report)
            return
        except RayActorError as exc:
            if exc.actor_init_failed:  # an error in the trainer's own start-up (data, code): not worth a retry
                lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
                raise ExperimentError(f"the supernet trainer could not start: {lines[-1][:500]}. HINT: fix the cause, "
                                      f"then `hwnas resume {exp.directory}`.") from None
            reason = first_line(exc, 200)
            if attempt == TRIAL_RETRIES:
                raise ExperimentError(
                    f"the supernet trainer died {TRIAL_RETRIES + 1} times ({reason}); training stopped at its last "
                    f"checkpoint. HINT: check the machine (memory, processes), then `hwnas resume {exp.directory}`."
                ) from None
            printer(f"[train_supernet] the trainer died ({reason}); restarting it from the last checkpoint "
                    f"({attempt + 1} of {TRIAL_RETRIES} retries)")
        finally:
            ray.kill(actor)  # free its CPUs for the search trials


def _train_loop(actor: Any, cfg: ExperimentConfig, printer: Printer,
                on_report: Callable[[dict[str, Any]], None] | None = None) -> None:
    import ray

    total = cfg.supernet.steps
    step = start = ray.get(actor.step.remote())
    if start:
        printer(f"[train_supernet] resuming from checkpoint at step {start}/{total}")
    began = time.perf_counter()
    chunk = max(1, min(cfg.supernet.checkpoint_every, 50))
    while step < total:
        info = ray.get(actor.train_steps.remote(chunk))
        step = info["step"]
        rate = (step - start) / (time.perf_counter() - began)
        controller = "" if "reward" not in info else (
            f"  reward {info['reward']:.3f}  cost {info['cost']:.3f} ms  entropy {info['entropy']:.2f}")
        printer(f"[train_supernet] step {step}/{total}  loss {info['loss']:.3f}  "
                f"train acc {info['train_accuracy']:.3f}{controller}  {rate:.1f} steps/s  "
                f"ETA {format_seconds((total - step) / rate)}")
        if on_report is not None:
            on_report(info)


# ---------------------------------------------------------------------- stage 2: search
def _joint_searcher(exp: Experiment, tracker: Tracker, printer: Printer) -> Any:
    """A joint search's result to score: the trained controller's argmax and next most probable
    architectures, read from the supernet checkpoint (so a resumed search scores the same ones); the
    controller's files (``controller.json``, the heat map ``controller.png``) are written and logged."""
    from searchers.given import GivenSearcher

    from .joint import controller_from_checkpoint, write_controller_files
    from .search import param_space_of

    cfg = exp.config
    space = cfg.build_space()
    report = controller_from_checkpoint(exp.supernet_path, space, cfg.search.settings)
    tracker.log_artifacts(write_controller_files(exp.directory, space, report), artifact_path="controller")
    printer(f"[search] the controller's argmax {space.to_string(report['argmax'])} and {len(report['candidates']) - 1} "
            f"next most probable architectures are scored (entropy {report['entropy']:.2f})")
    return GivenSearcher(param_space=param_space_of(space), metric=[o.metric for o in cfg.search.objectives],
                         mode=[o.mode for o in cfg.search.objectives], seed=cfg.seed,
                         constraints=cfg.search.constraints, candidates=report["candidates"])



def eval_context(exp: Experiment, digest: str) -> EvalContext:
    cfg = exp.config
    space = cfg.build_space()
    data, evaluation, cost = dict(cfg.data.settings), dict(vars(cfg.evaluation)), dict(vars(cfg.cost))
    del cost["model"], cost["calibration_samples"]  # the model's content counts, not where it came from
    device_wait_s = cost.pop("device_wait_s")  # how long to wait for a lost device changes no score
    if cfg.cost.uses_model:
        cost["model_digest"] = file_digest(exp.directory / COST_MODEL_FILE, length=SHORT)
    compute = placed_compute(cfg.compute)
    # Scores computed otherwise than on the CPU in fp32 differ in their last bits: another fingerprint.
    numerics = None if (compute.device, compute.precision) == ("cpu", "fp32") else {
        "device": compute.device, "precision": compute.precision}
    fingerprint = evaluator_fingerprint(space_identity=space.identity, supernet_digest=digest, seed=cfg.seed,
                                        data=data, evaluation=evaluation, cost=cost, task=cfg.detection,
                                        compute=numerics)
    cost["device_wait_s"] = device_wait_s
    if cfg.cost.uses_model:
        cost["model_path"] = str(exp.directory / COST_MODEL_FILE)  # not fingerprinted: a moved directory is the same
    return EvalContext(
        experiment_dir=str(exp.directory), space_name=cfg.space.name, space_settings=cfg.space_settings(),
        supernet_path=str(exp.supernet_path), supernet_digest=digest, seed=cfg.seed, data_kind=cfg.data.kind, data=data,
        evaluation=evaluation, cost=cost, fingerprint=fingerprint, task=dict(cfg.detection),
        compute=compute.to_dict(),
    )


def _search(exp: Experiment, state: JournalState, digest: str, tracker: Tracker, *, attempt: int,
            printer: Printer) -> None:
    stage = "search"
    cfg = exp.config
    space = cfg.build_space()
    known = set(state.candidates)
    if known:
        tracker.sync(state.candidates.values())  # catch MLflow up with what the journal already holds
    if state.stage(stage) == "completed":
        printer(f"[search] done earlier ({len(known)} candidates); skipped")
        return
    exp.journal.stage_started(stage)
    if known:
        printer(f"[search] resuming: {len(known)} candidates already scored are replayed from the cache")

    measured = {"all": 0, "noisy": 0}  # this run's latency measurements, and those taken on a busy node

    def on_candidate(result: dict[str, Any]) -> None:
        record = {"candidate_id": result["candidate_id"], "encoding": result["encoding"], "space": space.name,
                  "generation": int(result["generation"]), **candidate_metrics(result),
                  **{k: float(result[k]) for k in TIMING_KEYS if result.get(k) is not None}}
        exp.journal.append("candidate", **record)
        tracker.log_candidate({**record, "time": time.time()})
        if "latency_noisy" in record and not result.get("cached"):
            measured["all"] += 1
            measured["noisy"] += int(record["latency_noisy"])

    def on_failure(trial_id: str, reason: str) -> None:
        exp.journal.append("candidate_failed", trial_id=trial_id, reason=reason)
        printer(f"[search] trial {trial_id} failed and counts as infeasible: {reason} "
                f"(traceback under {exp.directory / 'tune'})")

    ctx = eval_context(exp, digest)
    if cfg.cost.kind == "measured":
        _start_latency_service(ctx)
    progress = SearchProgress(total=cfg.total_candidates, known=known, on_candidate=on_candidate,
                              on_failure=on_failure, printer=printer, score_metric=cfg.quality_metric,
                              candidate_of=lambda config: space.candidate_id(encoding_of(space, config)))
    searcher = _joint_searcher(exp, tracker, printer) if cfg.search.mode == "joint" else None
    try:
        run_search(cfg=cfg.search, space=space, ctx=ctx, seed=cfg.seed, attempt=attempt, progress=progress,
                   searcher=searcher)
    except SearchStopped as exc:
        hint = "" if "HINT:" in str(exc) else (
            f" HINT: see the traceback under {exp.directory / 'tune'}; fix the cause, then "
            f"`hwnas resume {exp.directory}`.")
        raise SearchStopped(
            f"the search stopped, not completed ({len(progress.known)} candidates scored are kept): "
            f"{str(exc).rstrip('.')}.{hint}"
        ) from None
    if measured["noisy"]:
        printer(f"[search] {measured['noisy']} of {measured['all']} latency measurements were taken while other "
                f"processes kept the node's cores busy (latency_noisy = 1 in their metrics): those figures may be "
                f"high. HINT: measure with fewer trials at once (search.max_concurrent) or on a quieter node, or "
                f"search with a cost model fitted on an idle node (cost.kind: kernels).")
    exp.journal.stage_completed(stage, candidates=len(progress.known))


def _start_latency_service(ctx: EvalContext) -> None:
    """Create the device's measuring actor from the driver, so it lives as long as the job."""
    from cluster import get_latency_actor

    get_latency_actor(ctx.cost["device"], str(Path(ctx.experiment_dir) / "latency_cache.jsonl"),
                      options=measure_options(ctx.cost))


# ---------------------------------------------------------------------- stage 4: retrain
def _retrain(exp: Experiment, summary: dict[str, Any], tracker: Tracker, printer: Printer, *,
             requests: list[dict[str, Any]]) -> dict[str, Any]:
    """Retrain what the config's ``retrain`` section, ``hwnas retrain`` or an interrupted earlier run asked
    for; add the retrain table and the ranking check to the summary."""
    from .retrain import plan_retrains, run_retrains

    cfg, stage = exp.config, "retrain"
    state = exp.journal.replay()
    wanted = list(requests)
    if cfg.retrain is not None and state.stage(stage) != "completed":
        if stage not in state.started:
            exp.journal.stage_started(stage)
        wanted = plan_retrains(exp, state, cfg.retrain) + wanted
    if not wanted and not state.retrain_requests:
        return summary
    from cluster import get_latency_actor

    # The retrained models are measured on the experiment's device whatever cost.kind scored the search
    # (started here, in the driver, so that it outlives every retrain trial).
    get_latency_actor(cfg.cost.device, str(exp.directory / "latency_cache.jsonl"), options=cfg.cost.measure_options())
    outcome = run_retrains(exp, wanted, tracker=tracker, printer=printer, eval_batch_size=cfg.evaluation.batch_size)
    if cfg.retrain is not None and state.stage(stage) != "completed":
        exp.journal.stage_completed(stage, retrains=len(outcome["rows"]))
    summary = {**summary, "retrains": outcome["rows"], "ranking": outcome["ranking"]}
    write_json_atomic(exp.directory / "summary.json", summary)
    return summary


# ---------------------------------------------------------------------- stage 3: finalize
def _finalize(exp: Experiment, digest: str, tracker: Tracker, printer: Printer) -> dict[str, Any]:
    cfg = exp.config
    state = exp.journal.replay()
    records = list(state.candidates.values())
    front = pareto_ids(records, cfg.search.objectives, cfg.search.constraints)
    quality = cfg.quality_metric
    rows = front_table(records, front, quality)
    if state.stage("finalize") != "completed":
        exp.journal.stage_started("finalize")
    onnx_paths = _export_front(exp, digest, rows, printer)
    # Candidates first: their run ids go into pareto.csv, summary.json and the Pareto view.
    synced = tracker.sync(records)
    run_ids = tracker.candidate_run_ids() if synced else {}
    rows = [{**row, "mlflow_run_id": run_ids.get(row["candidate_id"], "")} for row in rows]
    summary = {"experiment": cfg.name, "directory": str(exp.directory), "candidates": len(records),
               "failed_trials": len(state.failures), "pareto": rows, "tracking_uri": exp.tracking_uri,
               "mlflow_experiment_id": tracker.experiment_id, "mlflow_run_id": tracker.parent_run_id}
    files = _write_results(exp, records, front, rows, run_ids, summary)
    model_file = exp.directory / COST_MODEL_FILE
    synced = synced and tracker.finish(
        pareto_ids=front, models={row["candidate_id"]: path for row, path in zip(rows, onnx_paths)},
        artifacts=[*[(path, None) for path in files],
                   *([(model_file, None)] if cfg.cost.uses_model and model_file.is_file() else [])],
        metrics={"candidates": len(records), "pareto_size": len(front), **_calibration_metrics(state)},
    )
    if state.stage("finalize") != "completed":
        exp.journal.stage_completed("finalize", pareto=len(front))
    exp.journal.append("mlflow_synced" if synced else "mlflow_pending")
    summary["mlflow_synced"] = bool(synced)
    write_json_atomic(exp.directory / "summary.json", summary)
    return summary


def _write_results(exp: Experiment, records: list[dict[str, Any]], front: set[str], rows: list[dict[str, Any]],
                   run_ids: dict[str, str], summary: dict[str, Any]) -> list[Path]:
    """pareto.csv, pareto.png, the interactive pareto.html and summary.json; their paths."""
    cfg, folder = exp.config, exp.directory
    title = f"{cfg.name}: {len(records)} candidates"
    write_pareto_csv(rows, folder / "pareto.csv", cfg.quality_metric)
    objectives, constraints = cfg.search.objectives, cfg.search.constraints
    plot_front(records, front, folder / "pareto.png", title=title, quality=cfg.quality_metric,
               objectives=objectives, constraints=constraints)
    write_pareto_html(records, objectives, front, folder / "pareto.html", title=title, run_ids=run_ids,
                      quality=cfg.quality_metric, constraints=constraints)
    write_json_atomic(folder / "summary.json", summary)
    return [folder / name for name in ("pareto.html", "pareto.png", "pareto.csv", "summary.json")]


def _export_front(exp: Experiment, digest: str, rows: list[dict[str, Any]], printer: Printer) -> list[Path]:
    """ONNX files of the Pareto candidates, with inherited, BN-recalibrated supernet weights."""
    import torch

    from spaces import export_onnx
    from trainers.detection import deployable

    # Small models on a busy machine: more threads only add contention (seen here: 50x slower).
    torch.set_num_threads(1)

    ctx = eval_context(exp, digest)
    out_dir = exp.directory / "onnx"
    out_dir.mkdir(exist_ok=True)
    paths = []
    for row in rows:
        path = out_dir / f"{row['candidate_id']}.onnx"
        if not path.exists():
            model = ctx.inherited_model(worker_state(ctx), ctx.space.parse(row["encoding"]))
            tmp = path.with_suffix(".onnx.tmp")
            export_onnx(deployable(ctx.space, model, **ctx.deploy_options), ctx.space.input_shape, tmp)
            tmp.replace(path)
            printer(f"[finalize] exported {len(paths) + 1}/{len(rows)} Pareto candidates")
        paths.append(path)
    printer(f"[finalize] {len(paths)} Pareto candidates in {out_dir}")
    return paths
