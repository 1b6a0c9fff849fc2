"""Where models compute and in what precision: the ``compute`` section of a config.

One setting serves supernet training, BN recalibration, candidate scoring and retraining. ``auto`` takes
CUDA where this process sees a GPU; ``cpu`` / ``fp32`` (and ``auto`` on a machine without a GPU) leaves
everything exactly as it was: no autocast, no scaler, tensors where they were, so CPU results stay bit
for bit. ``bf16`` / ``fp16`` run the forward passes under ``torch.autocast``; ``fp16`` adds a gradient
scaler (its range is too small for unscaled gradients) and needs CUDA.

Batches and paths are drawn on the CPU from (seed, step) whatever the device, so a supernet trained on a
GPU sees the same data and paths as on the CPU; only float rounding differs.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Mapping

from core.errors import ConfigError, DeviceError
from core.settings import Setting, choice, number, resolve_settings

if TYPE_CHECKING:
    import torch

__all__ = ["COMPUTE_SETTINGS", "Compute", "batch_to", "module_device"]

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")

#: The settings of a config's ``compute`` section.
COMPUTE_SETTINGS: tuple[Setting, ...] = (
    Setting("device", "auto", choice(*DEVICES), hint="auto (CUDA where there is a GPU), cpu or cuda"),
    Setting("precision", "fp32", choice(*PRECISIONS), hint="fp32, or bf16 / fp16 autocast"),
    #: The share of one GPU a candidate-scoring trial asks Ray for when scoring runs on CUDA.
    Setting("gpus_per_trial", 0.25, number(low=0.0, high=1.0, low_open=True),
            hint="a share of one GPU in (0, 1], e.g. 0.25: four trials score on one GPU at once"),
)

_FP16_NEEDS_CUDA = ("compute precision fp16 needs compute device cuda: PyTorch's CPU autocast and gradient "
                    "scaling are for bf16. HINT: set compute.precision: bf16, or compute.device: cuda.")


@dataclass(frozen=True)
class Compute:
    """A validated ``compute`` section (see the module docstring)."""

    device: str = "auto"
    precision: str = "fp32"
    gpus_per_trial: float = 0.25

    def __post_init__(self) -> None:
        checked = resolve_settings(COMPUTE_SETTINGS, asdict(self), owner="compute")
        for name, value in checked.items():
            object.__setattr__(self, name, value)
        if self.precision == "fp16" and self.device == "cpu":
            raise ConfigError(_FP16_NEEDS_CUDA)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Compute:
        """The section from its JSON form (``None``/empty: the defaults)."""
        return cls(**dict(data or {}))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def uses_cuda(self, *, gpu_present: bool) -> bool:
        """Whether work placed on a node (or cluster) with or without a GPU runs on CUDA."""
        return self.device == "cuda" or (self.device == "auto" and gpu_present)

    def torch_device(self) -> torch.device:
        """The device this process computes on: ``auto`` takes CUDA when this process sees a GPU.

        Raises:
            DeviceError: ``cuda`` was asked for and this process has no CUDA device, or ``fp16`` would
                run on the CPU.
        """
        import torch

        if self.device == "cuda" and not torch.cuda.is_available():
            raise DeviceError(f"compute device cuda was asked for, but PyTorch {torch.__version__} in this process "
                              f"sees no CUDA device. HINT: run on a node with a GPU (Ray places the work there when "
                              f"the cluster has one), or set compute.device: auto or cpu.")
        use_cuda = self.device == "cuda" or (self.device == "auto" and torch.cuda.is_available())
        if self.precision == "fp16" and not use_cuda:
            raise DeviceError(_FP16_NEEDS_CUDA)
        return torch.device("cuda" if use_cuda else "cpu")

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """The forward passes' context: ``torch.autocast`` in bf16 / fp16, nothing at all in fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        import torch

        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=device.type, dtype=dtype)

    def grad_scaler(self, device: torch.device) -> Any:
        """A gradient scaler, enabled for fp16 only (a disabled one passes everything through)."""
        import torch

        return torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")


def module_device(model: Any) -> torch.device:
    """The device of a model's first parameter (or buffer); the CPU for a model with neither."""
    import itertools

    import torch

    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


def batch_to(value: Any, device: torch.device) -> Any:
    """Images or targets on ``device``: a tensor, or a detector's list of per-image dicts of tensors
    (non-tensor fields such as COCO image ids stay as they are). A no-op where they already are."""
    if hasattr(value, "to"):
        return value.to(device)
    if isinstance(value, list):
        return [{k: (v.to(device) if hasattr(v, "to") else v) for k, v in t.items()} if isinstance(t, dict)
                else batch_to(t, device) for t in value]
    return value

