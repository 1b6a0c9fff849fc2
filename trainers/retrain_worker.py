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

__all__ = ["train_loop_per_worker", "fit_retrain", "ship", "STATE_FILE", "WORKERS_DIR"]

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
                       wrap=ray.train.torch.prepare_model if world > 1 else None,
                       precision=config.get("precision", "fp32"))
    checkpoint = ray.train.get_checkpoint()
    restored = None
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            loop.load_state_dict(torch.load(Path(directory) / STATE_FILE, map_location=loop.device, weights_only=True))
        restored = loop.epoch
    epochs, every = job.settings["epochs"], job.settings["eval_every"]
    while loop.epoch < epochs:
        metrics = loop.train_epoch()
        if world > 1:  # the loss of the whole global batch, not just this worker's share
            loss = torch.tensor([metrics["train_loss"]], device=loop.device)
            torch.distributed.all_reduce(loss)
            metrics["train_loss"] = float(loss) / world
        metrics["time"] = time.time()
        if restored is not None:  # the first epoch after a restart: the driver says where it picked up
            metrics["restored_from_epoch"], restored = restored, None
        if rank == 0 and (loop.epoch % every == 0 or loop.epoch == epochs):
            metrics.update(loop.evaluate(config["eval_batch_size"]))
        with tempfile.TemporaryDirectory() as directory:
            saved = None
            if rank == 0:
                loop.history.append({k: v for k, v in metrics.items() if k != "restored_from_epoch"})
                torch.save(loop.state_dict(), Path(directory) / STATE_FILE)
                saved = ray.train.Checkpoint.from_directory(directory)
            ray.train.report(metrics, checkpoint=saved)


def _record_worker(run_dir: Path, rank: int) -> None:
    folder = run_dir / WORKERS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".rank{rank}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}))
    tmp.replace(folder / f"rank{rank}.json")


def fit_retrain(config: dict[str, Any]) -> dict[str, Any]:
    """Train one architecture with a ``TorchTrainer`` (resuming from its checkpoints, if any); return the
    final checkpoint's state. Called inside a Ray Tune trial, so that several run at once."""
    import ray.train
    import torch
    from ray.train.torch import TorchTrainer

    from .retrain import RetrainJob

    job = RetrainJob(**config["job"])
    settings = job.settings
    run_dir = Path(config["run_dir"])
    from ray.tune.integration.ray_train import TuneReportCallback
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"job": config["job"], "run_dir": str(run_dir), "eval_batch_size": config["eval_batch_size"],
                           "precision": config.get("precision", "fp32")},
        scaling_config=ray.train.ScalingConfig(num_workers=settings["workers"], use_gpu=config["use_gpu"],
                                               resources_per_worker={"CPU": settings["cpus_per_worker"],
                                                                     **({"GPU": 1} if config["use_gpu"] else {})}),
        run_config=ray.train.RunConfig(
            name=job.retrain_id, storage_path=str(run_dir.parent),
            failure_config=ray.train.FailureConfig(max_failures=settings["max_failures"]),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=[TuneReportCallback()],  # each epoch's metrics reach the driver as a Tune result
        ),
    )
    result = trainer.fit()
    with result.checkpoint.as_directory() as directory:
        return torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)


def ship(job: Any, state: dict[str, Any], run_dir: Path) -> tuple[dict[str, Any], bytes]:
    """Write the shipped model (``model.onnx``: folded, with a detector's box decoding; ``model.pt``: the
    weights; ``arch.json``: how to build it); return the retrain's result and the ONNX bytes."""
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
    counts = space.count(job.encoding)
    history = list(state["history"])
    final = dict(history[-1]) if history else {}
    result = {
        "retrain_id": job.retrain_id, "candidate_id": job.candidate_id, "epochs": int(state["epoch"]),
        "history": history, "final": final, "params": int(counts["params"]), "madds": int(counts["madds"]),
        "onnx_max_rel_diff": parity,
        "files": {"onnx": str(run_dir / "model.onnx"), "weights": str(run_dir / "model.pt"),
                  "arch": str(run_dir / "arch.json")},
    }
    return result, onnx_bytes


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
