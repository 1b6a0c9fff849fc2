"""A retrain on Ray Train: the per-worker loop (a ``TorchTrainer``'s ``train_loop_per_worker``) and the
trial function that runs one ``TorchTrainer`` and ships its model.

Checkpoints go through Ray Train every epoch (rank 0 writes model, optimizer, EMA and the epoch history
so far), into ``<storage>/<retrain_id>/``. A worker group that fails is restarted by Ray Train from the
last checkpoint (``FailureConfig``); a ``TorchTrainer`` started again with the same name and storage
(``hwnas resume`` after the driver died) restores the same way, so a retrain never starts over.
"""
from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["train_loop_per_worker", "run_retrain", "STATE_FILE", "WORKERS_DIR"]

STATE_FILE = "state.pt"
#: Each worker writes ``rank<r>.json`` (pid, host, start time) here when it starts: which processes train
#: a retrain right now (what an operator, or the fault-injection test, looks for).
WORKERS_DIR = "workers"


def train_loop_per_worker(config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch
    import torch

    from .retrain import RetrainJob, RetrainLoop

    job = RetrainJob(**config["job"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(job.settings["cpus_per_worker"])
    _record_worker(Path(config["run_dir"]), rank)
    loop = RetrainLoop(job, rank=rank, world=world, device=ray.train.torch.get_device(),
                       wrap=ray.train.torch.prepare_model if world > 1 else None)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            loop.load_state_dict(torch.load(Path(directory) / STATE_FILE, map_location=loop.device, weights_only=True))
    epochs, every = job.settings["epochs"], job.settings["eval_every"]
    while loop.epoch < epochs:
        metrics = loop.train_epoch()
        if world > 1:  # the loss of the whole global batch, not just this worker's share
            loss = torch.tensor([metrics["train_loss"]], device=loop.device)
            torch.distributed.all_reduce(loss)
            metrics["train_loss"] = float(loss) / world
        metrics["time"] = time.time()
        if rank == 0 and (loop.epoch % every == 0 or loop.epoch == epochs):
            metrics.update(loop.evaluate(config["eval_batch_size"]))
        with tempfile.TemporaryDirectory() as directory:
            saved = None
            if rank == 0:
                loop.history.append(metrics)
                torch.save(loop.state_dict(), Path(directory) / STATE_FILE)
                saved = ray.train.Checkpoint.from_directory(directory)
            ray.train.report(metrics, checkpoint=saved)


def _record_worker(run_dir: Path, rank: int) -> None:
    folder = run_dir / WORKERS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".rank{rank}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}))
    tmp.replace(folder / f"rank{rank}.json")


def run_retrain(config: dict[str, Any]) -> dict[str, Any]:
    """Train one architecture with a ``TorchTrainer`` (resuming its checkpoints), then export and measure
    the shipped model; return its result. A Ray Tune function trainable: several run at once."""
    import ray.train
    import torch
    from ray.train.torch import TorchTrainer

    from .retrain import RetrainJob

    job = RetrainJob(**config["job"])
    settings = job.settings
    run_dir = Path(config["run_dir"])
    callbacks = []
    if config.get("in_tune", True):
        from ray.tune.integration.ray_train import TuneReportCallback

        callbacks.append(TuneReportCallback())  # each epoch's metrics reach the driver as a Tune result
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"job": config["job"], "run_dir": str(run_dir), "eval_batch_size": config["eval_batch_size"]},
        scaling_config=ray.train.ScalingConfig(num_workers=settings["workers"], use_gpu=config["use_gpu"],
                                               resources_per_worker={"CPU": settings["cpus_per_worker"],
                                                                     **({"GPU": 1} if config["use_gpu"] else {})}),
        run_config=ray.train.RunConfig(
            name=job.retrain_id, storage_path=str(run_dir.parent),
            failure_config=ray.train.FailureConfig(max_failures=settings["max_failures"]),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=callbacks,
        ),
    )
    result = trainer.fit()
    with result.checkpoint.as_directory() as directory:
        state = torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)
    return ship(job, state, run_dir, config)


def ship(job: Any, state: dict[str, Any], run_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Write the shipped model (``model.onnx``: folded, with a detector's box decoding; ``model.pt``: the
    weights; ``arch.json``: how to build it), measure the ONNX model on the experiment's device, and
    return the retrain's result (also written to ``result.json``)."""
    import torch

    from core.jsonio import write_json_atomic
    from spaces import export_onnx
    from spaces.export import onnx_parity

    from .detection import deployable
    from .retrain import build_shipped, shipped_state

    torch.set_num_threads(1)
    space = job.space()
    weights = shipped_state(state)
    model = build_shipped(job, weights)
    deploy = deployable(space, model, **({"loss": job.task_settings["loss"]} if "loss" in job.task_settings else {}))
    onnx_bytes = export_onnx(deploy, space.input_shape)
    # The shipped graph is the folded one (MobileOne): it must compute what the trained branches compute.
    parity = onnx_parity(deploy, onnx_bytes, space.input_shape, seed=job.seed)
    _write_atomic(run_dir / "model.onnx", onnx_bytes)
    with tempfile.NamedTemporaryFile(dir=run_dir, suffix=".tmp", delete=False) as fh:
        torch.save(weights, fh)
    os.replace(fh.name, run_dir / "model.pt")
    write_json_atomic(run_dir / "arch.json", {
        "space": job.space_name, "space_settings": job.space_settings, "encoding": space.to_string(job.encoding),
        "candidate_id": job.candidate_id, "task_settings": job.task_settings,
    })
    latency = _measure(config, job, onnx_bytes, space.input_shape)
    counts = space.count(job.encoding)
    history = list(state["history"])
    final = dict(history[-1]) if history else {}
    result = {
        "retrain_id": job.retrain_id, "candidate_id": job.candidate_id, "epochs": int(state["epoch"]),
        "history": history, "final": final, "params": int(counts["params"]), "madds": int(counts["madds"]),
        "onnx_max_rel_diff": parity, **latency,
        "files": {"onnx": str(run_dir / "model.onnx"), "weights": str(run_dir / "model.pt"),
                  "arch": str(run_dir / "arch.json")},
    }
    write_json_atomic(run_dir / "result.json", result)
    return result


def _measure(config: dict[str, Any], job: Any, onnx_bytes: bytes, input_shape: Any) -> dict[str, Any]:
    from cluster import LatencyClient, MeasureOptions

    cost = config["cost"]
    client = LatencyClient(cost["device"], cost["cache_path"],
                           options=MeasureOptions(**{k: cost[k] for k in ("warmup", "min_runs", "max_runs",
                                                                          "cv_threshold")}))
    # Its own cache key: the retrained graph is measured, not the supernet candidate's.
    stats = client.measure(f"retrain-{job.retrain_id}", onnx_bytes, list(input_shape))
    return {"latency_ms": stats["median_ms"], "latency_p90_ms": stats["p90_ms"], "latency_cv": stats["cv"],
            "latency_device": cost["device"]}


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
