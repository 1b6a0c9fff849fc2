"""Where work runs and what it costs there: the Ray connection, devices and the latency service.

With no address, :func:`connect` starts an embedded Ray whose node advertises ``device:cpu``; with
one, it joins a cluster whose device nodes advertise ``device:NAME``. A device's latency actor
(:mod:`cluster.latency`) is placed by that resource, measures with :mod:`cluster.measure` and keeps
every measurement in a :mod:`cluster.cache`. Cost models (:mod:`cluster.costmodels`) are
fitted to such measurements (:mod:`cluster.calibration`: sample, measure through the service,
fit, report held-out fidelity) and predict latency without measuring.
"""
from __future__ import annotations

from .calibration import (
    CalibrationResult,
    ServiceMeasurer,
    evaluate_cost_model,
    fit_cost_model,
    load_cost_model,
    save_cost_model,
)
from .costmodels import (
    COST_MODELS,
    CostModel,
    LinearCostModel,
    LookupTableCostModel,
    fidelity,
    kendall_tau,
    spearman_rho,
)
from .devices import (
    LOCAL_DEVICE,
    DeviceProfile,
    device_from_dict,
    device_names,
    get_device,
    is_device_name,
    provider_options,
    register_device,
    require_provider,
    resolve_device,
)
from .cache import LatencyCache
from .latency import (
    LATENCY_NAMESPACE,
    LatencyActor,
    LatencyClient,
    LatencyService,
    get_latency_actor,
    latency_actor_name,
)
from .measure import LatencyStats, MeasureOptions, measure_onnx, runtime_string
from .runtime import connect, device_resource, require_device

__all__ = [
    "CalibrationResult",
    "ServiceMeasurer",
    "evaluate_cost_model",
    "fit_cost_model",
    "load_cost_model",
    "save_cost_model",
    "provider_options",
    "require_provider",
    "COST_MODELS",
    "CostModel",
    "LinearCostModel",
    "LookupTableCostModel",
    "fidelity",
    "kendall_tau",
    "spearman_rho",
    "LOCAL_DEVICE",
    "LATENCY_NAMESPACE",
    "DeviceProfile",
    "LatencyActor",
    "LatencyCache",
    "LatencyClient",
    "LatencyService",
    "LatencyStats",
    "MeasureOptions",
    "connect",
    "device_from_dict",
    "device_names",
    "device_resource",
    "get_device",
    "get_latency_actor",
    "is_device_name",
    "latency_actor_name",
    "measure_onnx",
    "register_device",
    "require_device",
    "resolve_device",
    "runtime_string",
]
