"""The settings most spaces share, declared once (see :mod:`core.settings`)."""
from __future__ import annotations

from numbers import Integral
from typing import Any, Sequence

from core.settings import Setting, choice, integer, number
from core.validation import invalid

from .ssdlite import EXTRA_DEPTHS

__all__ = ["TASKS", "dropout", "head_depths", "input_size", "num_classes", "stem_stride", "task", "width_mult"]

#: What a space's network predicts: a pooled classifier, or an SSDLite detection head on C4 / C5.
TASKS: tuple[str, ...] = ("classification", "detection")


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


def task(default: str) -> Setting:
    """``classification`` (pooled classifier) or ``detection`` (SSDLite head on C4 / C5); the data decides."""
    return Setting("task", default, choice(*TASKS))


def head_depths() -> Setting:
    """Depths of the SSDLite extra maps after C5 (detection only); 512, 256, 256, 128 as published."""
    return Setting("head_depths", EXTRA_DEPTHS, _check_head_depths,
                   hint="e.g. head_depths=[512, 256, 256, 128] (the published SSDLite extra maps)")


def _check_head_depths(where: str, value: Any, hint: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
        raise invalid(where, "must be a non-empty list of even integers", value, hint)
    for d in value:
        if not (isinstance(d, Integral) and not isinstance(d, bool) and d >= 2 and d % 2 == 0):
            raise invalid(where, f"must hold even integers >= 2, not {d!r}", list(value), hint)
    return tuple(int(d) for d in value)
