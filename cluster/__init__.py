"""Where work runs and what it costs there: the Ray connection, devices and the latency service.

With no address, :func:`connect` starts an embedded Ray whose node advertises ``device:cpu``; with
one, it joins a cluster whose device nodes advertise ``device:NAME``. A device's latency actor
(:mod:`cluster.latency`) is placed by that resource, measures with :mod:`cluster.measure` (ONNX
Runtime) or :mod:`cluster.torch_runtime` (PyTorch, the ``cuda-torch`` device), marks a measurement
taken while other processes kept the node busy (:mod:`cluster.host_load`) and keeps every measurement
in a :mod:`cluster.cache`. Cost models (:mod:`cluster.costmodels`) are fitted to such measurements
(:mod:`cluster.calibration`: sample, measure paired with a reference, fit, report held-out fidelity
with intervals) and predict latency without measuring.

The names below are imported on first use (PEP 562): ``import cluster.measure`` or
``cluster.calibration`` must not pull in Ray, so that a machine with only PyTorch (a lent GPU, a
phone's host) can measure and fit cost models with the same code.
"""
from __future__ import annotations

import importlib
from typing import Any

# Public name -> the submodule that defines it.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("CalibrationResult", "ServiceMeasurer", "evaluate_cost_model", "fit_cost_model",
                     "load_cost_model", "save_cost_model"), "calibration"),
    **dict.fromkeys(("COST_MODELS", "CostModel", "KernelCostModel", "LinearCostModel", "LookupTableCostModel",
                     "fidelity", "kendall_tau", "spearman_rho"), "costmodels"),
    **dict.fromkeys(("LOCAL_DEVICE", "DeviceProfile", "device_from_dict", "device_names", "get_device",
                     "is_device_name", "provider_options", "register_device", "require_provider",
                     "resolve_device"), "devices"),
    "LatencyCache": "cache",
    "LatencyService": "service",
    **dict.fromkeys(("LATENCY_NAMESPACE", "LatencyActor", "LatencyClient", "get_latency_actor",
                     "latency_actor_name"), "latency"),
    **dict.fromkeys(("measure_model", "measure_onnx", "require_runtime", "runtime_string"), "measure"),
    **dict.fromkeys(("LatencyStats", "MeasureOptions"), "stats"),
    **dict.fromkeys(("connect", "device_resource", "require_device"), "runtime"),
    "check_shared_directory": "shared_storage",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cluster' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
