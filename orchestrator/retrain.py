"""The retrain stage: the architectures a search found, trained from scratch on Ray Train.

Which: ``retrain.top_k`` spread along the Pareto front's latency axis, explicit candidate ids, or
encodings the search never proposed (``hwnas retrain --arch``). Each retrain is a Ray Train
``TorchTrainer`` inside a Ray Tune trial (Ray Train V2 runs several trainers at once that way), as many
at once as the cluster has room for.

Nothing is lost: a retrain is identified by (candidate, training settings) and journalled when asked for,
at every epoch and when done. ``hwnas resume`` runs the asked-for retrains that have no result, each
from its last Ray Train checkpoint; a finished one is never run again. The epoch history comes from
the checkpoints (rank 0 keeps it in every one), so an epoch the driver missed while it was down is
filled in, and MLflow gets each epoch exactly once (same step, same timestamp).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from core.digest import json_digest
from core.errors import ConfigError, ExperimentError, HwnasError
from core.jsonio import write_json_atomic

from .experiment import Experiment
from .journal import JournalState
from .ranking import format_ranking, plot_ranking, ranking_check
from .results import pareto_ids
from .search import first_line, format_seconds

__all__ = ["RETRAIN_DIR", "plan_retrains", "check_room", "run_retrains", "retrain_rows", "format_retrain_table",
           "retrain_settings", "choose_spanning"]

RETRAIN_DIR = "retrain"
#: The numbers a retrain worker reports every epoch, besides the task's metrics.
EPOCH_KEYS = ("epoch", "train_loss", "lr", "weight_decay", "epoch_seconds", "steps", "time")
Printer = Callable[[str], None]
#: Settings that say how or which, not what is trained: they do not change a retrain's identity.
OPERATIONAL = ("recipe", "top_k", "candidates", "max_concurrent", "register", "model_name", "max_failures",
               "cpus_per_worker", "device", "eval_every")


def retrain_settings(exp: Experiment, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The experiment's ``retrain`` section (defaults when it has none) with ``overrides`` on top, checked."""
    from trainers.retrain import check_retrain_settings

    given = {**(exp.config.retrain or {}), **(overrides or {})}
    if overrides and "recipe" in overrides:  # a new recipe brings its own values, not the old section's
        given = {**{k: v for k, v in (exp.config.retrain or {}).items() if k in OPERATIONAL}, **overrides}
    return check_retrain_settings(given, where=lambda n: f"retrain setting '{n}'")


def retrain_id(candidate_id: str, settings: dict[str, Any]) -> str:
    """``<candidate>-<8 hex digits of the training settings>``: one candidate trained two ways is two retrains."""
    identity = {k: v for k, v in settings.items() if k not in OPERATIONAL}
    return f"{candidate_id}-{json_digest(identity, length=8)}"


# ---------------------------------------------------------------------- which architectures
def choose_spanning(records: Sequence[dict[str, Any]], objectives: Sequence[Any], constraints: Sequence[Any],
                    quality: str, k: int) -> list[dict[str, Any]]:
    """``k`` candidates spanning the Pareto front: evenly spaced latencies along the front (its fastest and
    its slowest included); a front smaller than ``k`` is taken whole and the next front fills up."""
    chosen: list[dict[str, Any]] = []
    remaining = list(records)
    while len(chosen) < k and remaining:
        ids = pareto_ids(remaining, objectives, constraints)
        if not ids:
            break
        layer = sorted((r for r in remaining if r["candidate_id"] in ids), key=lambda r: (r["latency_ms"], -r[quality]))
        need = k - len(chosen)
        chosen.extend(layer if len(layer) <= need else _spread(layer, need, quality))
        remaining = [r for r in remaining if r["candidate_id"] not in ids]
    return chosen


def _spread(layer: list[dict[str, Any]], n: int, quality: str) -> list[dict[str, Any]]:
    if n == 1:
        return [max(layer, key=lambda r: r[quality])]
    low, high = layer[0]["latency_ms"], layer[-1]["latency_ms"]
    picked: list[dict[str, Any]] = []
    for i in range(n):
        target = low + (high - low) * i / (n - 1)
        free = [r for r in layer if r not in picked]
        picked.append(min(free, key=lambda r: abs(r["latency_ms"] - target)))
    return sorted(picked, key=lambda r: r["latency_ms"])


def plan_retrains(exp: Experiment, state: JournalState, settings: dict[str, Any], *, top: int | None = None,
                  candidate_ids: Sequence[str] = (), arches: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The retrain requests for the chosen architectures (checked: an unknown id or a malformed encoding
    is one :class:`ConfigError`, before anything is written)."""
    cfg = exp.config
    space = cfg.build_space()
    quality = cfg.quality_metric
    records = list(state.candidates.values())
    known = state.candidates
    picked: list[tuple[tuple[int, ...], str]] = []  # (encoding, source)
    if arches:
        for text in arches:
            try:
                picked.append((space.parse(text), "arch"))
            except HwnasError as exc:
                raise ConfigError(f"--arch {text!r}: {str(exc).split(' HINT:')[0].rstrip('.')}. HINT: give {len(space.dims)} "
                                  f"choice indices joined by '-', e.g. {space.to_string(space.default_encoding())!r} "
                                  f"(`hwnas spaces` lists each layer's choices).") from None
    else:
        ids = list(candidate_ids) or list(settings["candidates"])
        if ids:
            for cid in ids:
                if cid not in known:
                    hint = ", ".join(sorted(known)[:3])
                    raise ConfigError(f"candidate {cid!r} is not one of the {len(known)} candidates of experiment "
                                      f"{exp.directory}. HINT: pick ids from `hwnas status {exp.directory}` "
                                      f"(e.g. {hint}), or retrain an encoding with --arch.")
                picked.append((space.parse(known[cid]["encoding"]), "search"))
        else:
            chosen = choose_spanning(records, cfg.search.objectives, cfg.search.constraints, quality,
                                     top or settings["top_k"])
            picked = [(space.parse(r["encoding"]), "search") for r in chosen]
    requests, seen = [], set()
    for encoding, source in picked:
        cid = space.candidate_id(encoding)
        rid = retrain_id(cid, settings)
        if rid in seen:
            continue
        seen.add(rid)
        record = known.get(cid)
        requests.append({
            "retrain_id": rid, "candidate_id": cid, "encoding": space.to_string(encoding),
            "source": "search" if record is not None else source, "settings": settings,
            "supernet": {quality: record[quality]} if record is not None else {},
        })
    return requests


# ---------------------------------------------------------------------- room on the cluster
def check_room(settings: dict[str, Any], compute: Any = None) -> dict[str, Any]:
    """How the retrains are placed on the connected Ray cluster: ``{use_gpu, at_once}``. More workers than
    it can place is one :class:`ConfigError` that says how many it can.

    ``retrain.device: auto`` follows the experiment's ``compute.device`` (a :class:`trainers.Compute`);
    ``gpu`` (or ``cuda``) and ``cpu`` override it for the retrain stage."""
    import ray

    total = ray.cluster_resources()
    cpus, gpus = float(total.get("CPU", 0)), float(total.get("GPU", 0))
    wanted = settings["device"]
    if wanted == "auto" and compute is not None:
        wanted = compute.device
    use_gpu = wanted in ("gpu", "cuda") or (wanted == "auto" and gpus >= 1)
    if use_gpu and gpus < 1:
        raise ConfigError(f"the retrain stage is to run on the GPU (device {wanted}), but the Ray cluster has no GPU. "
                          f"HINT: use retrain.device: cpu or compute.device: auto (GPUs where there are any), or "
                          f"join a cluster with GPU nodes (--address).")
    if not use_gpu and compute is not None and compute.precision == "fp16":
        raise ConfigError("config field 'compute.precision' is fp16, but the retrain stage runs on CPUs. HINT: use "
                          "compute.precision: bf16 or fp32, or retrain on GPUs (retrain.device: gpu).")
    per = settings["cpus_per_worker"]
    fit = int(cpus // per)
    if use_gpu:
        fit = min(fit, int(gpus))
    if settings["workers"] > fit:
        what = f"{int(cpus)} CPUs" + (f" and {int(gpus)} GPUs" if use_gpu else "")
        raise ConfigError(
            f"retrain setting 'workers' is {settings['workers']}, but this Ray cluster ({what}) can place at most "
            f"{fit} workers of {per} CPU{'s' if per > 1 else ''}{' and 1 GPU' if use_gpu else ''}. HINT: set "
            f"retrain.workers to {max(1, fit)} or less (--set retrain.workers={max(1, fit)}), or add nodes.")
    room = max(1, fit // settings["workers"])
    return {"use_gpu": use_gpu, "at_once": min(room, settings["max_concurrent"] or room)}


# ---------------------------------------------------------------------- running them
def run_retrains(exp: Experiment, requests: Sequence[dict[str, Any]], *, tracker: Any, printer: Printer,
                 eval_batch_size: int) -> dict[str, Any]:
    """Journal ``requests`` (those not asked for before), run every asked-for retrain without a result,
    and write the retrain table and the ranking check. Returns ``{rows, ranking}``.

    Raises:
        ExperimentError: a retrain failed (its reason is printed; the others are kept, and
            ``hwnas resume`` runs it again from its last checkpoint).
    """
    journal = exp.journal
    state = journal.replay()
    for request in requests:
        if request["retrain_id"] in state.retrains:
            printer(f"[retrain] {request['retrain_id']} finished earlier; not run again")
        elif request["retrain_id"] not in state.retrain_requests:
            journal.append("retrain_requested", **request)
    state = journal.replay()
    pending = state.pending_retrains()
    tracker.sync_retrains(state)  # MLflow catches up with what the journal holds
    if pending:
        _run_pending(exp, pending, state, tracker=tracker, printer=printer, eval_batch_size=eval_batch_size)
    state = journal.replay()
    outcome = write_retrain_results(exp, state, tracker=tracker, printer=printer)
    failed = [r for r in state.pending_retrains() if r["retrain_id"] in state.retrain_failures]
    if failed:
        reasons = "; ".join(f"{r['retrain_id']}: {state.retrain_failures[r['retrain_id']]['reason']}" for r in failed)
        raise ExperimentError(f"{len(failed)} of {len(state.retrain_requests)} retrains failed ({reasons[:600]}). "
                              f"HINT: fix the cause, then `hwnas resume {exp.directory}`: they continue from their "
                              f"last checkpoint, finished ones are kept.")
    return outcome


class _Progress:
    """Turns Tune results of retrain trials into journal records, MLflow logging and progress lines."""

    def __init__(self, exp: Experiment, state: JournalState, tracker: Any, printer: Printer, quality: str) -> None:
        self.exp, self.tracker, self.printer, self.quality = exp, tracker, printer, quality
        self.requests = state.retrain_requests
        self.logged = {rid: set(epochs) for rid, epochs in state.retrain_epochs.items()}
        self.shipped: dict[str, dict[str, Any]] = {}  # trained and exported, not yet measured
        self.started = time.perf_counter()
        # What a worker reports each epoch (Tune adds its own bookkeeping to every result: not kept).
        from trainers import TASKS

        task = TASKS.get(exp.config.data.task)
        self.keep = set(EPOCH_KEYS) | set(task.METRICS) | set(task.DETAIL_METRICS)

    def epoch(self, rid: str, metrics: dict[str, Any]) -> None:
        epoch = int(metrics["epoch"])
        if "restored_from_epoch" in metrics:
            self.printer(f"[retrain] {rid}: Ray Train workers (re)started from the checkpoint of epoch "
                         f"{int(metrics['restored_from_epoch'])}")
        if epoch in self.logged.setdefault(rid, set()):
            return
        record = {k: float(v) for k, v in metrics.items() if k in self.keep and isinstance(v, (int, float))}
        record["epoch"] = epoch
        self.exp.journal.append("retrain_epoch", retrain_id=rid, **record)
        self.logged[rid].add(epoch)
        self.tracker.log_retrain_epochs(self.requests[rid], [record])
        total = self.requests[rid]["settings"]["epochs"]
        score = f"  {self.quality} {metrics[self.quality]:.4f}" if self.quality in metrics else ""
        self.printer(f"[retrain] {rid}  epoch {epoch}/{total}  loss {metrics['train_loss']:.4f}{score}  "
                     f"lr {metrics['lr']:.4g}  {metrics['epoch_seconds']:.1f} s/epoch")

    def trained(self, rid: str, result: dict[str, Any]) -> None:
        for metrics in result["history"]:  # epochs reported while the driver was down
            self.epoch(rid, metrics)
        self.shipped[rid] = result
        score = f"{self.quality} {result['final'][self.quality]:.4f}, " if self.quality in result["final"] else ""
        self.printer(f"[retrain] {rid} trained: {score}exported to ONNX (max rel diff to PyTorch "
                     f"{result['onnx_max_rel_diff']:.1e}); measured once every retrain has finished training")

    def done(self, rid: str, result: dict[str, Any]) -> None:
        request = self.requests[rid]
        final = {k: v for k, v in result["final"].items() if isinstance(v, (int, float))}
        record = {k: result[k] for k in ("candidate_id", "epochs", "params", "madds", "latency_ms", "latency_p90_ms",
                                         "latency_cv", "latency_device", "onnx_max_rel_diff", "files")}
        self.exp.journal.append("retrain_completed", retrain_id=rid, final=final, **record)
        self.tracker.finish_retrain(request, {**record, "final": final}, quality=self.quality,
                                    model_name=request["settings"]["model_name"] or self.exp.config.name)
        score = f"{self.quality} {final[self.quality]:.4f}, " if self.quality in final else ""
        self.printer(f"[retrain] {rid} done: {score}latency {result['latency_ms']:.3f} ms on "
                     f"{result['latency_device']} (the shipped ONNX model)")

    def failed(self, rid: str, reason: str) -> None:
        self.exp.journal.append("retrain_failed", retrain_id=rid, reason=reason)
        self.printer(f"[retrain] {rid} failed: {reason}")


def _run_pending(exp: Experiment, pending: list[dict[str, Any]], state: JournalState, *, tracker: Any,
                 printer: Printer, eval_batch_size: int) -> None:
    import logging

    from ray import tune

    cfg = exp.config
    # The largest retrain sets how many fit at once (retrains asked for at different times may differ).
    room = check_room(max((r["settings"] for r in pending), key=lambda s: s["workers"] * s["cpus_per_worker"]),
                      cfg.compute)
    progress = _Progress(exp, state, tracker, printer, cfg.quality_metric)
    configs = [_trial_config(exp, request, room["use_gpu"], eval_batch_size) for request in pending]
    for request in pending:
        done = len(state.retrain_epochs.get(request["retrain_id"], {}))
        origin = f"candidate {request['candidate_id']}" if request["source"] == "search" else "--arch"
        resume = f", resuming after epoch {done}" if done else ""
        epochs = request["settings"]["epochs"]
        printer(f"[retrain] {request['retrain_id']} ({origin}, {epochs} epoch{'s' if epochs > 1 else ''} on "
                f"{request['settings']['workers']} Ray Train worker{'s' if request['settings']['workers'] > 1 else ''}"
                f"{resume})")
    printer(f"[retrain] {len(pending)} retrain{'s' if len(pending) > 1 else ''}, up to {room['at_once']} at once "
            f"({'GPU' if room['use_gpu'] else 'CPU'})")
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    logging.getLogger("ray.tune.execution.tune_controller").setLevel(logging.CRITICAL)

    # The trial only drives its TorchTrainer, whose workers hold the CPUs: it asks for a token of memory
    # (a bundle must ask for something), so that trials never take CPUs from the workers.
    trainable = tune.with_resources(_retrain_trial, {"CPU": 0, "memory": 1})
    tuner = tune.Tuner(
        trainable,
        param_space={"retrain": tune.grid_search(configs)},
        tune_config=tune.TuneConfig(max_concurrent_trials=room["at_once"]),
        run_config=tune.RunConfig(
            name=f"retrain-{int(time.time())}", storage_path=str(exp.directory / "tune"),
            callbacks=[_tune_callback(progress)], verbose=0, log_to_file=False,
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
            failure_config=tune.FailureConfig(max_failures=0),  # Ray Train retries the workers itself
        ),
    )
    tuner.fit()
    printer(f"[retrain] {len(progress.shipped)} of {len(pending)} retrain{'s' if len(pending) > 1 else ''} trained in "
            f"{format_seconds(time.perf_counter() - progress.started)}")
    _measure(exp, progress.shipped, progress)


def _retrain_trial(config: dict[str, Any]) -> dict[str, Any]:
    """The Tune function trainable of one retrain: fit (resuming from its checkpoints) and ship; the result
    goes back to the driver, which measures the model once no retrain trains beside it."""
    from trainers.retrain import RetrainJob
    from trainers.retrain_worker import fit_retrain, ship

    config = config["retrain"]
    job = RetrainJob(**config["job"])
    result, _ = ship(job, fit_retrain(config), Path(config["run_dir"]))
    return {"retrain_result": json.dumps(result)}


def _measure(exp: Experiment, shipped: dict[str, dict[str, Any]], progress: "_Progress") -> None:
    """Measure each shipped model on the experiment's device, after training: a measurement beside a
    training process would time the contention, not the model."""
    from cluster import LatencyClient

    cost = exp.config.cost
    client = LatencyClient(cost.device, str(exp.directory / "latency_cache.jsonl"), options=cost.measure_options(),
                           device_wait_s=cost.device_wait_s)
    shape = list(exp.config.build_space().input_shape)
    for rid, result in shipped.items():
        onnx_bytes = Path(result["files"]["onnx"]).read_bytes()
        # Its own cache key: the retrained graph is measured, not the supernet candidate's.
        stats = client.measure(f"retrain-{rid}", onnx_bytes, shape)
        result.update(latency_ms=stats["median_ms"], latency_p90_ms=stats["p90_ms"], latency_cv=stats["cv"],
                      latency_device=cost.device)
        write_json_atomic(Path(result["files"]["onnx"]).parent / "result.json", result)
        progress.done(rid, result)


def _trial_config(exp: Experiment, request: dict[str, Any], use_gpu: bool, eval_batch_size: int) -> dict[str, Any]:
    cfg = exp.config
    space = cfg.build_space()
    job = {"retrain_id": request["retrain_id"], "candidate_id": request["candidate_id"],
           "encoding": list(space.parse(request["encoding"])), "space_name": cfg.space.name,
           "space_settings": cfg.space_settings(), "data_kind": cfg.data.kind, "data_settings": dict(cfg.data.settings),
           "seed": cfg.seed, "settings": request["settings"], "task_settings": dict(cfg.detection)}
    run_dir = exp.directory / RETRAIN_DIR / request["retrain_id"]
    run_dir.mkdir(parents=True, exist_ok=True)
    return {"job": job, "run_dir": str(run_dir), "eval_batch_size": eval_batch_size, "use_gpu": use_gpu,
            "precision": cfg.compute.precision}


def _tune_callback(progress: _Progress) -> Any:
    from ray.tune import Callback

    def rid_of(trial: Any) -> str:
        return trial.config["retrain"]["job"]["retrain_id"]

    class RetrainCallback(Callback):
        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            if "epoch" in result and "train_loss" in result and "retrain_result" not in result:
                progress.epoch(rid_of(trial), result)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            result = (trial.last_result or {}).get("retrain_result")
            if result is None:
                progress.failed(rid_of(trial), "the trial ended without a result")
            else:
                progress.trained(rid_of(trial), json.loads(result))

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            progress.failed(rid_of(trial), _reason(trial))

    return RetrainCallback()


def _reason(trial: Any) -> str:
    from .search import _last_error

    error = _last_error(trial)
    if error is None:
        return "unknown error"
    cause = getattr(error, "cause", None) or error
    return f"{type(cause).__name__}: {first_line(cause, 300)}"


# ---------------------------------------------------------------------- results
def retrain_rows(exp: Experiment, state: JournalState) -> list[dict[str, Any]]:
    """One row per asked-for retrain: supernet score beside retrained score, latency, progress."""
    quality = exp.config.quality_metric
    rows = []
    for rid, request in state.retrain_requests.items():
        done = state.retrains.get(rid)
        epochs = state.retrain_epochs.get(rid, {})
        last = epochs[max(epochs)] if epochs else {}
        retrained = (done or {}).get("final", {}).get(quality, None) if done else last.get(quality)
        rows.append({
            "retrain_id": rid, "candidate_id": request["candidate_id"], "source": request["source"],
            "state": "done" if done else ("failed" if rid in state.retrain_failures else
                                          ("started" if epochs else "pending")),
            "epochs": f"{(done or {}).get('epochs', len(epochs))}/{request['settings']['epochs']}",
            f"supernet_{quality}": request["supernet"].get(quality),
            f"retrained_{quality}": retrained,
            "latency_ms": (done or {}).get("latency_ms"), "params": (done or {}).get("params"),
            "encoding": request["encoding"],
        })
    return rows


def format_retrain_table(rows: Sequence[dict[str, Any]], quality: str) -> str:
    def num(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    head = (f"{'retrain_id':<25}  {'state':<8}  {'epochs':>7}  {'supernet ' + quality:>16}  "
            f"{'retrained ' + quality:>17}  {'latency_ms':>10}  {'params':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['retrain_id']:<25}  {r['state'][:8]:<8}  {r['epochs']:>7}  "
                     f"{num(r[f'supernet_{quality}'], '.4f'):>16}  {num(r[f'retrained_{quality}'], '.4f'):>17}  "
                     f"{num(r['latency_ms'], '.4f'):>10}  "
                     f"{'-' if r['params'] is None else format(r['params'] / 1e6, '.3f') + 'M':>8}")
    return "\n".join(lines)


def ranking_pairs(state: JournalState, quality: str) -> list[tuple[str, float, float]]:
    """(candidate, supernet score, retrained score) of the finished retrains of search candidates that were
    trained alike: the largest group sharing training settings (the newest such group on a tie), so a
    candidate retrained again with other settings never mixes recipes in one rank correlation."""
    groups: dict[str, dict[str, tuple[str, float, float]]] = {}
    for rid, done in state.retrains.items():  # journal order: a later group wins a tie
        request = state.retrain_requests.get(rid, {})
        supernet = request.get("supernet", {}).get(quality)
        retrained = done.get("final", {}).get(quality)
        if supernet is not None and retrained is not None:
            group = groups.setdefault(rid.rsplit("-", 1)[-1], {})
            group[done["candidate_id"]] = (done["candidate_id"], float(supernet), float(retrained))
    if not groups:
        return []
    best = max(len(g) for g in groups.values())
    return list([g for g in groups.values() if len(g) == best][-1].values())


def write_retrain_results(exp: Experiment, state: JournalState, *, tracker: Any, printer: Printer) -> dict[str, Any]:
    """``retrain/retrains.csv``, ``retrain/ranking.json`` and ``ranking.png``; the ranking check printed and
    logged to the experiment's MLflow run."""
    import pandas as pd

    quality = exp.config.quality_metric
    folder = exp.directory / RETRAIN_DIR
    folder.mkdir(exist_ok=True)
    rows = retrain_rows(exp, state)
    tmp = folder / ".retrains.csv.tmp"
    pd.DataFrame(rows).to_csv(tmp, index=False)
    tmp.replace(folder / "retrains.csv")
    pairs = ranking_pairs(state, quality)
    check = ranking_check(pairs)
    write_json_atomic(folder / "ranking.json", {"quality": quality, **check,
                                                "pairs": [{"candidate_id": c, "supernet": s, "retrained": r}
                                                          for c, s, r in pairs]})
    plot_ranking(pairs, check, folder / "ranking.png", quality=quality, title=f"{exp.config.name}: ranking check")
    printer(format_ranking(check, quality))
    metrics = {f"ranking_{k}": v for k, v in check.items() if v is not None and not k.endswith("_p")}
    tracker.log_ranking(metrics, [folder / "ranking.png", folder / "ranking.json", folder / "retrains.csv"])
    return {"rows": rows, "ranking": check}
