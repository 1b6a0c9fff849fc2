"""Validation of space settings and supernet paths, shared by every space.

Messages name the space, the setting, the rule, the value and end with a HINT.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Callable, Sequence

from core.errors import ConfigError, InvalidEncodingError

__all__ = ["check_real", "check_int", "check_supernet_path"]


def check_real(space: str, name: str, value: Any, rule: Callable[[float], bool], rule_text: str, example: str) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value) and rule(value)
    if not ok:
        raise ConfigError(f"{space}: setting {name} must be a number {rule_text}, got {value!r}. HINT: e.g. {example}.")
    return float(value)


def check_int(space: str, name: str, value: Any, rule: Callable[[int], bool], rule_text: str, example: str) -> int:
    if not (isinstance(value, Integral) and not isinstance(value, bool) and rule(value)):
        raise ConfigError(f"{space}: setting {name} must be an integer {rule_text}, got {value!r}. HINT: e.g. {example}.")
    return int(value)


def check_supernet_path(choices: Sequence[Sequence[Any]], path: Sequence[int]) -> None:
    """Refuse a path that is not one in-range integer index per layer.

    Sequence indexing accepts negative indices, so a bad path would otherwise silently run the wrong choices.
    """
    if len(path) != len(choices) or any(
        not isinstance(c, Integral) or not 0 <= c < len(layer) for layer, c in zip(choices, path)
    ):
        raise InvalidEncodingError(
            f"supernet path must be {len(choices)} integer choice indices in "
            f"0..{len(choices[0]) - 1}, got {list(path)!r}. HINT: validate it with the space's parse()."
        )
