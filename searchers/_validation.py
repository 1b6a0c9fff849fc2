"""Eager argument checks whose messages name the argument, the rule, the value and the fix."""
from __future__ import annotations

import math
from typing import Any

from core.errors import ConfigError

__all__ = ["config_error", "check_float", "check_int", "check_probability", "check_seed"]


def config_error(argument: str, rule: str, value: Any, hint: str) -> ConfigError:
    """A :class:`ConfigError` in the project's one-message format."""
    shown = repr(value)
    if len(shown) > 200:
        shown = shown[:197] + "..."
    return ConfigError(f"{argument}: {rule}; got {shown}. HINT: {hint}")


def check_int(argument: str, value: Any, *, minimum: int, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise config_error(argument, f"must be an integer >= {minimum}", value, hint)
    return int(value)


def check_seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise config_error("seed", "must be an integer", value, "pass the experiment seed, e.g. seed=0.")
    return int(value)


def check_probability(argument: str, value: Any, *, hint: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise config_error(argument, "must be a number in [0, 1]", value, hint)
    if math.isnan(value):
        raise config_error(argument, "must be a number in [0, 1]", value, hint)
    return float(value)


def check_float(argument: str, value: Any, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, hint: str) -> float:
    """A finite number with ``low <= value < high`` (``low < value`` when ``low_open``)."""
    rule = "must be a finite number"
    if low is not None:
        rule += f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        rule += f"{' and' if low is not None else ''} < {high:g}"
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high
    if not ok:
        raise config_error(argument, rule, value, hint)
    return float(value)
