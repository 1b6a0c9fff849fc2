"""Where the experiment's compute goes on the connected Ray cluster: CUDA or the CPU, decided once.

``compute.device: auto`` means CUDA when the *cluster* has a GPU, not when the driver's machine does: the
supernet trainer and the scoring trials then ask Ray for GPUs, and Ray places them on GPU nodes.
"""
from __future__ import annotations

import dataclasses

from core.errors import ConfigError
from trainers.compute import Compute

__all__ = ["cluster_gpus", "placed_compute"]


def cluster_gpus() -> float:
    """The GPUs of the connected Ray cluster (0 on a CPU-only one); without Ray (``hwnas evaluate`` scores
    in its own process), this machine's."""
    import ray

    if ray.is_initialized():
        return float(ray.cluster_resources().get("GPU", 0))
    import torch

    return float(torch.cuda.device_count())


def placed_compute(compute: Compute) -> Compute:
    """``compute`` with its device resolved for the connected cluster: ``"cuda"`` or ``"cpu"``.

    Raises:
        ConfigError: ``cuda`` was asked for and the cluster has no GPU.
    """
    gpus = cluster_gpus()
    if compute.device == "cuda" and gpus < 1:
        raise ConfigError("config field 'compute.device' is cuda, but the Ray cluster has no GPU. HINT: use "
                          "compute.device: auto (CUDA where the cluster has GPUs) or cpu, or join a cluster with "
                          "GPU nodes (--address).")
    device = "cuda" if compute.uses_cuda(gpu_present=gpus >= 1) else "cpu"
    if device == "cpu" and compute.precision == "fp16":
        raise ConfigError("config field 'compute.precision' is fp16, but the Ray cluster has no GPU to run it on. "
                          "HINT: use precision bf16 or fp32 on CPUs, or join a cluster with GPU nodes (--address).")
    return dataclasses.replace(compute, device=device)
