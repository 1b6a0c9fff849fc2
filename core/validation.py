"""The one format of validation messages, and the checks that produce it.

Every message reads ``WHERE: RULE, got VALUE. HINT: FIX``: where the value came from (a config field,
a setting, a CLI flag, an argument), the rule it breaks, the value as given, and what to do. The
checks return the value normalised (``int``, ``float``, ``bool``) so callers store what they checked.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Sequence

from .errors import ConfigError, HwnasError

__all__ = [
    "check_bool",
    "check_choice",
    "check_int",
    "check_number",
    "check_out_file",
    "check_probability",
    "check_str",
    "invalid",
    "show",
]

_SHOWN = 200  # characters of a value shown in a message


def show(value: Any) -> str:
    """``repr(value)``, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def invalid(where: str, rule: str, value: Any, hint: str, *, error: type[HwnasError] = ConfigError) -> HwnasError:
    """The error to raise for ``value`` breaking ``rule`` at ``where`` (not raised here)."""
    hint = hint.strip()
    if hint and hint[-1] not in ".!?":
        hint += "."
    return error(f"{where}: {rule}, got {show(value)}. HINT: {hint}")


def _num(x: float) -> str:
    """A bound as written: whole numbers in full (10000000, not 1e+07), others compactly."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


def _bounds_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{_num(low)}, {_num(high)}{')' if high_open else ']'}"
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {_num(low)}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {_num(high)}")
    return " and ".join(parts)


def check_int(where: str, value: Any, *, minimum: int | None = None, maximum: int | None = None, hint: str) -> int:
    """An integer (not a bool, not a float) within the inclusive bounds given."""
    ok = isinstance(value, Integral) and not isinstance(value, bool)
    ok = ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        bounds = _bounds_text(minimum, maximum, False, False)
        raise invalid(where, f"must be an integer{' ' + bounds if bounds else ''}", value, hint)
    return int(value)


def check_number(
    where: str, value: Any, *, low: float | None = None, high: float | None = None, low_open: bool = False,
    high_open: bool = False, hint: str,
) -> float:
    """A finite real number (not a bool) within the bounds given; ``*_open`` excludes the bound itself."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        bounds = _bounds_text(low, high, low_open, high_open)
        raise invalid(where, f"must be a finite number{' ' + bounds if bounds else ''}", value, hint)
    return float(value)


def check_probability(where: str, value: Any, *, hint: str) -> float:
    """A number in [0, 1]."""
    return check_number(where, value, low=0.0, high=1.0, hint=hint)


def check_choice(where: str, value: Any, choices: Sequence[Any], *, hint: str | None = None) -> Any:
    """One of ``choices`` (compared with ``==``, so ``1`` matches ``1.0``; strings exactly)."""
    if isinstance(value, bool) or value not in choices or isinstance(value, (list, dict)):
        listed = ", ".join(str(c) for c in choices)
        raise invalid(where, f"must be one of {listed}", value, hint or f"pick one of: {listed}")
    return value


def check_bool(where: str, value: Any, *, hint: str) -> bool:
    """``True`` or ``False`` (YAML's true / false), never a number or a string."""
    if not isinstance(value, bool):
        raise invalid(where, "must be true or false", value, hint)
    return value


def check_str(where: str, value: Any, *, hint: str) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise invalid(where, "must be a non-empty string", value, hint)
    return value


def check_out_file(where: str, path: str, *, force: bool = True, example: str = "out.json") -> "Path":
    """A file path a command may write: not a directory, under directories (not files), and, unless
    ``force``, not an existing file. Nothing is created here."""
    from pathlib import Path

    out = Path(path)
    if out.is_dir():
        raise ConfigError(f"{where} {path!r} is a directory. HINT: name a file, e.g. {where} {out / example}.")
    parent = next((p for p in out.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConfigError(f"{where} {path!r} lies under {str(parent)!r}, which is a file. HINT: name a file in a "
                          f"directory.")
    if out.exists() and not force:
        raise ConfigError(f"{where} {path!r} exists; nothing was changed. HINT: pass --force to replace it, "
                          f"or choose another file.")
    return out
