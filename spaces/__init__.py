"""Search spaces: encodings, decoding to block arguments, builders, supernets, presets, counting, export.

``spaces`` is the bottom of the dependency graph: it imports nothing of the other hwnas packages,
and it also holds the pieces every package shares (errors, seeding, atomic JSON).
"""
from __future__ import annotations

from typing import Any

from .base import Dimension, Encoding, SearchSpace
from core.errors import (
    ConfigError,
    DeviceError,
    ExperimentError,
    HwnasError,
    InvalidEncodingError,
    UnknownNameError,
)
from core.registry import Registry

SPACES: Registry[type[SearchSpace]] = Registry("search space")


def register_space(cls: type[SearchSpace]) -> type[SearchSpace]:
    """Class decorator: register a space under ``cls.name``."""
    return SPACES.register(cls.name)(cls)


def get_space(name: str, **settings: Any) -> SearchSpace:
    """Instantiate the registered space ``name`` with keyword ``settings``."""
    return SPACES.get(name)(**settings)


# Registration happens on import of each space module.
from . import moga as _moga  # noqa: E402,F401
from . import edgetpu as _edgetpu  # noqa: E402,F401
from . import mobileone as _mobileone  # noqa: E402,F401
from . import mobiledet as _mobiledet  # noqa: E402,F401
from . import mobilenet as _mobilenet  # noqa: E402,F401
from .counting import count_madds, count_params  # noqa: E402
from .export import export_onnx, onnx_parity  # noqa: E402
from .moga import MogaSpace  # noqa: E402
from .presets import PRESETS, get_preset  # noqa: E402

__all__ = [
    "PRESETS",
    "SPACES",
    "ConfigError",
    "DeviceError",
    "Dimension",
    "Encoding",
    "ExperimentError",
    "HwnasError",
    "InvalidEncodingError",
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
