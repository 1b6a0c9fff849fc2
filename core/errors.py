"""The one exception hierarchy of hwnas.

Every error a user can cause derives from :class:`HwnasError`; the CLI turns it into one message and
exit code 2. Messages name the thing that is wrong, the rule, the value, and end with a ``HINT:``.
"""
from __future__ import annotations

__all__ = [
    "HwnasError",
    "ConfigError",
    "InvalidEncodingError",
    "UnknownNameError",
    "ExperimentError",
    "DeviceError",
]


class HwnasError(Exception):
    """Root of every error hwnas raises on purpose."""


class ConfigError(HwnasError):
    """An experiment config (file, ``--set`` override or CLI argument) is invalid."""


class InvalidEncodingError(HwnasError):
    """An architecture encoding is not a member of its search space."""


class UnknownNameError(HwnasError, KeyError):
    """A registry lookup missed; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ExperimentError(HwnasError):
    """An experiment directory is missing, foreign or inconsistent."""


class DeviceError(HwnasError):
    """A latency device is unknown, unplaceable or failed to measure."""
