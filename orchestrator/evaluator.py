"""Scores one candidate: supernet accuracy, latency (measured, predicted or proxy), params and MAdds.

An :class:`EvalContext` is small, picklable data; everything heavy (space, data, supernet, latency
client, cache) is built once per worker process and reused across trials (Tune reuses actors).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

from core.digest import json_digest
from spaces import SearchSpace, get_space

from .cache import EvaluationCache

__all__ = ["EvalContext", "evaluator_fingerprint", "worker_state"]


def evaluator_fingerprint(*, space_identity: dict[str, Any], supernet_digest: str, seed: int,
                          data: dict[str, Any], evaluation: dict[str, Any], cost: dict[str, Any],
                          task: dict[str, Any] | None = None, compute: dict[str, Any] | None = None) -> str:
    """Identifies everything a score depends on; a changed input gives a new fingerprint. ``task`` (the
    detection settings) enters only when there are any, so classifiers keep their fingerprints; likewise
    ``compute`` (device and precision) only when scores are not computed on the CPU in fp32."""
    return json_digest({"space": space_identity, "supernet": supernet_digest, "seed": seed,
                        "data": data, "evaluation": evaluation, "cost": cost, **({"task": task} if task else {}),
                        **({"compute": compute} if compute else {})})


@dataclass(frozen=True)
class EvalContext:
    """Everything a trial worker needs to score candidates of one experiment."""

    experiment_dir: str
    space_name: str
    space_settings: dict[str, Any]
    supernet_path: str
    supernet_digest: str
    seed: int
    data_kind: str
    data: dict[str, Any]
    evaluation: dict[str, Any]
    cost: dict[str, Any]
    fingerprint: str
    task: dict[str, Any] = field(default_factory=dict)  # the task's settings (detection's NMS, ...)
    #: The experiment's compute section, its device resolved for the cluster ("cuda" or "cpu").
    compute: dict[str, Any] = field(default_factory=dict)

    @property
    def trial_resources(self) -> dict[str, float]:
        """What one scoring trial asks Ray for: a CPU, and a share of a GPU when scoring on CUDA."""
        if self.compute.get("device") == "cuda":
            return {"cpu": 1, "gpu": float(self.compute["gpus_per_trial"])}
        return {"cpu": 1}

    @cached_property
    def space(self) -> SearchSpace:
        return get_space(self.space_name, **self.space_settings)

    @property
    def deploy_options(self) -> dict[str, Any]:
        """The detection loss (it decides how logits become scores), for :func:`trainers.detection.deployable`."""
        return {"loss": self.task["loss"]} if "loss" in self.task else {}

    def evaluate(self, encoding: Sequence[int]) -> tuple[dict[str, Any], bool]:
        """Return (metrics, cached) for ``encoding``, scoring it only if no cached score exists."""
        state = worker_state(self)
        candidate_id = self.space.candidate_id(encoding)
        hit = state.cache.get(candidate_id, self.fingerprint)
        if hit is not None:
            return hit, True
        metrics = self._score(state, tuple(encoding), candidate_id)
        state.cache.put(candidate_id, self.fingerprint, metrics)
        return metrics, False

    def inherited_model(self, state: "_WorkerState", encoding: Sequence[int]) -> Any:
        """The candidate's stand-alone model with the supernet's weights, BN recalibrated, in eval mode."""
        from trainers import inherit_and_calibrate

        return inherit_and_calibrate(
            space=self.space, supernet=state.supernet, encoding=encoding, dataset=state.dataset,
            bn_batches=self.evaluation["bn_batches"], bn_batch_size=self.evaluation["bn_batch_size"],
        )

    def _score(self, state: "_WorkerState", encoding: tuple[int, ...], candidate_id: str) -> dict[str, Any]:
        from trainers import score

        started, began = time.perf_counter(), time.time()  # a duration, and when (the MLflow run's span)
        with state.compute.autocast(state.device):
            model = self.inherited_model(state, encoding)
            metrics: dict[str, Any] = score(state.task, model, state.dataset, batch_size=self.evaluation["batch_size"])
        counts = self.space.count(encoding)
        metrics.update(params=int(counts["params"]), madds=int(counts["madds"]))
        metrics.update(self._latency(state, model, encoding, candidate_id, counts["madds"]))
        metrics.update(eval_seconds=time.perf_counter() - started, eval_started=began)
        return metrics

    def _latency(self, state: "_WorkerState", model: Any, encoding: tuple[int, ...], candidate_id: str,
                 madds: int) -> dict[str, Any]:
        if self.cost["kind"] == "madds":
            # Deterministic proxy: one million multiply-adds count as one millisecond.
            return {"latency_ms": madds / 1e6}
        if self.cost["kind"] in ("kernels", "linear", "lut"):  # config.MODEL_KINDS (config imports this module)
            # The calibration stage's model predicts in microseconds of CPU: no export, no device.
            return {"latency_ms": state.cost_model.predict(encoding)}
        from spaces import export_onnx
        from trainers.detection import deployable

        # A detector is timed as deployed: with its box decoding (NMS stays outside the graph).
        onnx_bytes = export_onnx(deployable(self.space, model, **self.deploy_options), self.space.input_shape)
        stats = state.latency_client.measure(candidate_id, onnx_bytes, list(self.space.input_shape))
        # A search's own trials load its node, so a noisy measurement is reported, not retried (a retry
        # would meet the same load). Unknown (no mark): a window too short to tell, or no /proc/stat.
        busy = {} if stats.get("foreign_cores") is None else {
            "latency_foreign_cores": stats["foreign_cores"], "latency_noisy": 1 if stats.get("noisy") else 0}
        return {
            "latency_ms": stats["median_ms"], "latency_min_ms": stats["min_ms"], "latency_p90_ms": stats["p90_ms"],
            "latency_cv": stats["cv"], "latency_runs": stats["runs"], **busy,
        }


class _WorkerState:
    """Per-process heavy objects for one EvalContext, built on first use."""

    def __init__(self, ctx: EvalContext) -> None:
        import torch

        from trainers import Compute, load_supernet, make_dataset, make_task

        torch.set_num_threads(1)  # one core per trial; also keeps accuracy bitwise reproducible
        self.compute = Compute.from_dict({**ctx.compute, "device": ctx.compute.get("device", "cpu")})
        self.device = self.compute.torch_device()
        self.dataset = make_dataset(ctx.data_kind, seed=ctx.seed, settings=ctx.data)
        self.task = make_task(self.dataset.task, ctx.task)
        self.task.bind(ctx.space)
        # Checked against the digest recorded when training finished: no candidate is ever scored
        # with a damaged or replaced checkpoint.
        self.supernet = load_supernet(ctx.supernet_path, ctx.space, digest=ctx.supernet_digest).to(self.device)
        self.cache = EvaluationCache(Path(ctx.experiment_dir) / "evaluations.jsonl")
        self._ctx = ctx
        self._latency_client = None
        self._cost_model = None

    @property
    def cost_model(self) -> Any:
        """The experiment's cost model (``cost.model_path``), checked against the space once."""
        if self._cost_model is None:
            from cluster.calibration import load_cost_model

            self._cost_model = load_cost_model(self._ctx.cost["model_path"], kind=self._ctx.cost["kind"],
                                               space=self._ctx.space, what="cost model").model
        return self._cost_model

    @property
    def latency_client(self) -> Any:
        if self._latency_client is None:
            from cluster import LatencyClient

            self._latency_client = LatencyClient(
                self._ctx.cost["device"], str(Path(self._ctx.experiment_dir) / "latency_cache.jsonl"),
                options=measure_options(self._ctx.cost), device_wait_s=self._ctx.cost.get("device_wait_s", 0.0),
            )
        return self._latency_client


def measure_options(cost: dict[str, Any]) -> Any:
    """The :class:`~cluster.measure.MeasureOptions` of a context's cost section."""
    from cluster import MeasureOptions

    return MeasureOptions(**{k: cost[k] for k in ("warmup", "min_runs", "max_runs", "cv_threshold")})


_STATES: dict[str, _WorkerState] = {}


def worker_state(ctx: EvalContext) -> _WorkerState:
    """The heavy objects (dataset, task, supernet, caches) of ``ctx`` in this process, built once."""
    key = ctx.fingerprint + ctx.experiment_dir
    if key not in _STATES:
        _STATES.clear()  # one experiment per worker at a time; drop the old supernet
        _STATES[key] = _WorkerState(ctx)
    return _STATES[key]
