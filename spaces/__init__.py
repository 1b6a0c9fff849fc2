"""Search spaces: encodings, decoding to block arguments, builders, supernets, presets, counting, export.

``spaces`` imports nothing of the other hwnas packages except :mod:`core`. Every space registers
itself in :data:`SPACES` when its module is imported here; :mod:`spaces.testing` is the contract suite
every registered space passes.
"""
from __future__ import annotations

from core.errors import (
    ConfigError,
    DeviceError,
    ExperimentError,
    HwnasError,
    InvalidEncodingError,
    UnknownNameError,
)

from . import edgetpu as _edgetpu  # noqa: F401  (registers the space)
from . import mobiledet as _mobiledet  # noqa: F401
from . import mobilenet as _mobilenet  # noqa: F401
from . import mobileone as _mobileone  # noqa: F401
from . import moga as _moga  # noqa: F401
from ._table import LayerTableSpace, LayerwiseArch
from .base import SPACES, Dimension, Encoding, Endpoint, LayerParts, SearchSpace, get_space, register_space
from .counting import count_madds, count_params
from .export import export_onnx, onnx_parity
from .moga import MogaSpace
from .presets import PRESETS, get_preset

__all__ = [
    "PRESETS",
    "SPACES",
    "ConfigError",
    "DeviceError",
    "Dimension",
    "Encoding",
    "Endpoint",
    "ExperimentError",
    "HwnasError",
    "InvalidEncodingError",
    "LayerParts",
    "LayerTableSpace",
    "LayerwiseArch",
    "MogaSpace",
    "SearchSpace",
    "UnknownNameError",
    "count_madds",
    "count_params",
    "export_onnx",
    "get_preset",
    "get_space",
    "onnx_parity",
    "register_space",
]
