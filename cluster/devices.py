"""Device profiles: what a latency device is and how a measurement on it is configured.

A device is a name plus the runtime settings its latencies are measured with. The name doubles as a
Ray custom resource, ``device:NAME``, which the node holding the hardware advertises
(``ray start --address=... --resources='{"device:NAME": 1}'``) so the latency actor of that device
is placed there and nowhere else.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from core.errors import DeviceError
from core.registry import Registry
from core.validation import check_choice, check_int, invalid

__all__ = [
    "LOCAL_DEVICE",
    "DeviceProfile",
    "device_from_dict",
    "device_names",
    "get_device",
    "is_device_name",
    "provider_options",
    "register_device",
    "require_provider",
    "resolve_device",
]

LOCAL_DEVICE = "cpu"
"""The device every local (embedded) Ray node advertises: the machine's own CPU."""

#: "onnxruntime": the exported model run by ONNX Runtime with ``provider``. "torch": the same exported
#: model run by PyTorch (:mod:`cluster.torch_runtime`) on the torch device ``provider`` ("cuda" or
#: "cpu"), for GPU nodes without the onnxruntime-gpu wheel.
SUPPORTED_RUNTIMES = ("onnxruntime", "torch")
SUPPORTED_PRECISIONS = ("fp32", "fp16", "int8")
TORCH_DEVICES = ("cuda", "cpu")
CUDA_PROVIDER = "CUDAExecutionProvider"
TENSORRT_PROVIDER = "TensorrtExecutionProvider"

# A device name becomes part of a Ray resource name, an actor name and a file record: keep it to
# characters that are safe in all three (and in a shell command line).
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def is_device_name(name: object) -> bool:
    """Whether ``name`` can name a device (and so a Ray resource, an actor and a cache record)."""
    return isinstance(name, str) and _NAME_RE.match(name) is not None


@dataclass(frozen=True)
class DeviceProfile:
    """A latency device and the settings its measurements use.

    Attributes:
        name: Device name; the node holding the device advertises the resource ``device:NAME``.
        runtime: Inference runtime that runs the exported model: ``"onnxruntime"`` or ``"torch"``.
        provider: ONNX Runtime execution provider, e.g. ``"CPUExecutionProvider"``; with runtime
            ``"torch"``, the torch device type, ``"cuda"`` or ``"cpu"``.
        threads: Intra-op threads of the inference session.
        batch: Batch size callers put first in the input shape they measure.
        precision: Numeric precision of the models measured on the device (metadata for callers;
            the input tensor follows the model's declared input type).
    """

    name: str
    runtime: str = "onnxruntime"
    provider: str = "CPUExecutionProvider"
    threads: int = 1
    batch: int = 1
    precision: str = "fp32"

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def resource(self) -> str:
        """The Ray custom resource a node carrying this device advertises."""
        return f"device:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form that :func:`device_from_dict` reads back."""
        return asdict(self)


def _validate(profile: DeviceProfile) -> None:
    if not is_device_name(profile.name):
        raise invalid("device.name", "must be 1-64 characters of letters, digits, '.', '_' or '-', starting with "
                      "a letter or digit", profile.name, "e.g. 'pixel4-edgetpu'")
    check_choice("device.runtime", profile.runtime, SUPPORTED_RUNTIMES,
                 hint="measure other runtimes by exporting to ONNX")
    if profile.runtime == "torch":
        _validate_torch(profile)
    elif not isinstance(profile.provider, str) or not profile.provider.endswith("ExecutionProvider"):
        raise invalid("device.provider", "must name an ONNX Runtime execution provider (ending in "
                      "'ExecutionProvider')", profile.provider, "e.g. 'CPUExecutionProvider'")
    _validate_settings(profile)


def _validate_settings(profile: DeviceProfile) -> None:
    for field_name in ("threads", "batch"):
        # check_int refuses bools (True threads is a config typo, not one thread) and returns a plain
        # int, stored so that a numpy integer never reaches a record or a Ray message.
        value = check_int(f"device.{field_name}", getattr(profile, field_name), minimum=1,
                          hint="use 1 for a single-threaded, batch-1 measurement")
        object.__setattr__(profile, field_name, value)
    check_choice("device.precision", profile.precision, SUPPORTED_PRECISIONS,
                 hint="'fp32' unless the exported model is quantised")
    _validate_precision(profile)


def _validate_torch(profile: DeviceProfile) -> None:
    check_choice(f"device.provider of torch device {profile.name!r}", profile.provider, TORCH_DEVICES,
                 hint="the torch device type the model runs on: 'cuda' (or 'cpu')")


def _validate_precision(profile: DeviceProfile) -> None:
    if profile.runtime == "torch" and profile.precision not in ("fp32", "fp16"):
        raise invalid(f"device.precision of device {profile.name!r}", "must be 'fp32' or 'fp16' with runtime torch "
                      "(it casts the exported fp32 model; it does not quantise)", profile.precision,
                      "use precision 'fp32' or 'fp16'")
    if profile.runtime == "torch" and profile.precision == "fp16" and profile.provider != "cuda":
        raise invalid(f"device.precision of device {profile.name!r}", "can be 'fp16' only on provider 'cuda' "
                      "(PyTorch's CPU kernels are fp32)", profile.precision, "use precision 'fp32'")
    if profile.provider == CUDA_PROVIDER and profile.precision == "fp16":
        # The CUDA provider runs the graph in the precision it was exported in, and hwnas exports
        # fp32: an "fp16" label would record fp32 timings as fp16 ones.
        raise invalid(f"device.precision of device {profile.name!r}",
                      f"must be 'fp32' with {CUDA_PROVIDER}, which would still run the fp32 models hwnas exports",
                      profile.precision, f"use provider {TENSORRT_PROVIDER!r} (it builds fp16 kernels from an fp32 "
                      f"model), or precision 'fp32'")


def device_from_dict(data: Mapping[str, Any]) -> DeviceProfile:
    """Build a validated :class:`DeviceProfile` from a config mapping.

    Args:
        data: Mapping with ``name`` and any of the optional profile fields.

    Returns:
        The profile.

    Raises:
        ConfigError: A field is missing, unknown, or has an invalid value; the message names it.
    """
    if not isinstance(data, Mapping):
        raise invalid("device", "must be a mapping with at least 'name'", data, "e.g. {name: pixel4, threads: 1}")
    known = [f.name for f in fields(DeviceProfile)]
    unknown = sorted(map(str, set(data) - set(known)))
    if unknown:
        raise invalid("device", f"must have only the fields {', '.join(known)}", dict(data),
                      f"check the spelling of {', '.join(map(repr, unknown))}")
    if "name" not in data:
        raise invalid("device.name", "is required", dict(data), "e.g. name: pixel4-edgetpu")
    return DeviceProfile(**dict(data))


def provider_options(profile: DeviceProfile) -> dict[str, str]:
    """ONNX Runtime options of the profile's execution provider (empty for CPU and CUDA).

    TensorRT is the one provider that turns an fp32 model into fp16 kernels itself, so a profile's
    ``precision: fp16`` becomes its ``trt_fp16_enable`` option; the engine cache keeps a second
    measurement of the same model from rebuilding the engine.
    """
    if profile.provider != TENSORRT_PROVIDER:
        return {}
    return {"trt_fp16_enable": "True" if profile.precision == "fp16" else "False"}


def require_provider(provider: str) -> None:
    """Check that this process's ONNX Runtime has ``provider``; call it where the measurement runs.

    Raises:
        DeviceError: The installed onnxruntime lacks the provider (the CPU-only wheel has no CUDA or
            TensorRT); the message lists the available ones and how to get the missing one.
    """
    import onnxruntime as ort  # deferred: only measuring processes need it

    available = ort.get_available_providers()
    if provider in available:
        return
    hint = ("install the `onnxruntime-gpu` wheel (CUDA and TensorRT) on the node that carries the device, "
            "and run there" if provider in (CUDA_PROVIDER, TENSORRT_PROVIDER)
            else "install the onnxruntime build with it on the device node, or fix device.provider")
    raise DeviceError(
        f"ONNX Runtime {ort.__version__} on this node lacks the execution provider {provider!r} "
        f"(available: {', '.join(available)}). HINT: {hint}."
    )


_DEVICES: Registry[DeviceProfile] = Registry("device")


def register_device(profile: DeviceProfile) -> DeviceProfile:
    """Add a profile to the registry of known devices.

    Registering an equal profile again is a no-op, so config loading may run twice.

    Raises:
        HwnasError: A different profile is already registered under the same name.
    """
    if profile.name in _DEVICES and _DEVICES.get(profile.name) == profile:
        return _DEVICES.get(profile.name)
    return _DEVICES.register(profile.name)(profile)


def get_device(name: str) -> DeviceProfile:
    """The registered profile called ``name``.

    Raises:
        UnknownNameError: No such device; the message lists the known ones.
    """
    return _DEVICES.get(name)


def device_names() -> list[str]:
    """Names of all registered devices, sorted."""
    return _DEVICES.names()


def resolve_device(device: DeviceProfile | str) -> DeviceProfile:
    """A profile given as itself or by its registered name."""
    if isinstance(device, DeviceProfile):
        return device
    if isinstance(device, str):
        return get_device(device)
    raise invalid("device", "must be a DeviceProfile or a registered device name", device,
                  f"pick one of: {', '.join(device_names())}")


register_device(DeviceProfile(name=LOCAL_DEVICE))
# GPU devices by name: measured where a node advertises device:cuda / device:tensorrt[-fp16] and its
# onnxruntime has the provider (require_provider says so clearly where it does not).
register_device(DeviceProfile(name="cuda", provider=CUDA_PROVIDER))
register_device(DeviceProfile(name="tensorrt", provider=TENSORRT_PROVIDER))
register_device(DeviceProfile(name="tensorrt-fp16", provider=TENSORRT_PROVIDER, precision="fp16"))
# The exported model run by PyTorch on the node's GPU and timed with CUDA events, where the
# onnxruntime-gpu wheel is absent (see cluster.torch_runtime).
register_device(DeviceProfile(name="cuda-torch", runtime="torch", provider="cuda"))
