"""The settings most spaces share, declared once (see :mod:`core.settings`)."""
from __future__ import annotations

from core.settings import Setting, integer, number

__all__ = ["dropout", "input_size", "num_classes", "stem_stride", "width_mult"]


def input_size(default: int, *, minimum: int) -> Setting:
    """Side of the square input images; ``minimum`` keeps every stride-2 stage at least one pixel."""
    return Setting("input_size", default, integer(minimum=minimum, maximum=4096))


def num_classes(default: int) -> Setting:
    """Class logits (classifier outputs, or per-anchor classes of a detector)."""
    return Setting("num_classes", default, integer(minimum=2, maximum=100_000))


def width_mult(default: float = 1.0) -> Setting:
    """A channel multiplier on every base channel count."""
    return Setting("width_mult", default, number(low=0.0, low_open=True, high=8.0))


def stem_stride(default: int = 2) -> Setting:
    """2 as published; 1 keeps small (e.g. 32x32) inputs at full resolution."""
    return Setting("stem_stride", default, integer(minimum=1, maximum=2))


def dropout(default: float = 0.2) -> Setting:
    """Dropout probability before the classifier, in [0, 1)."""
    return Setting("dropout", default, number(low=0.0, high=1.0, high_open=True))
