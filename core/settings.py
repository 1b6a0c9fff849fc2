"""Settings as data: a plugin declares its settings once (name, default, check), and gets validation,
defaults and an introspectable signature from that one declaration.

Spaces, searchers and datasets are configured by keyword settings that come from Python calls, YAML
configs and CLI flags alike. Declaring them as a tuple of :class:`Setting` makes the declaration the
single source of the names, the defaults and the rules; :func:`resolve_settings` applies it, naming the
offending setting in the project's one message format (:mod:`core.validation`).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from . import validation
from .errors import ConfigError

__all__ = [
    "REQUIRED",
    "Check",
    "Setting",
    "boolean",
    "choice",
    "integer",
    "number",
    "optional",
    "resolve_settings",
    "settings_signature",
]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of a setting that has none: it must be given.
REQUIRED: Any = _Required()

#: ``check(where, value, hint) -> normalised value``; raises :class:`~core.errors.ConfigError`.
Check = Callable[[str, Any, str], Any]


@dataclass(frozen=True)
class Setting:
    """One keyword setting of a plugin.

    Attributes:
        name: The keyword.
        default: Its value when not given, or :data:`REQUIRED`.
        check: Validates and normalises a given value (see :data:`Check`).
        hint: The fix a message suggests; by default ``e.g. NAME=DEFAULT``.
    """

    name: str
    default: Any
    check: Check
    hint: str | None = None

    def example(self) -> str:
        if self.hint is not None:
            return self.hint
        return f"e.g. {self.name}={self.default!r}" if self.default is not REQUIRED else f"give {self.name}"


def integer(*, minimum: int | None = None, maximum: int | None = None) -> Check:
    return lambda where, value, hint: validation.check_int(where, value, minimum=minimum, maximum=maximum, hint=hint)


def number(*, low: float | None = None, high: float | None = None, low_open: bool = False,
           high_open: bool = False) -> Check:
    return lambda where, value, hint: validation.check_number(
        where, value, low=low, high=high, low_open=low_open, high_open=high_open, hint=hint)


def choice(*options: Any) -> Check:
    return lambda where, value, hint: validation.check_choice(where, value, options, hint=hint)


def boolean() -> Check:
    return lambda where, value, hint: validation.check_bool(where, value, hint=hint)


def optional(check: Check) -> Check:
    """``None``, or a value ``check`` accepts."""
    return lambda where, value, hint: None if value is None else check(where, value, hint)


def resolve_settings(
    spec: Sequence[Setting], values: Mapping[str, Any], *, owner: str,
    where: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Check ``values`` against ``spec``; return every setting, defaults filled in, in spec order.

    Args:
        spec: The plugin's settings.
        values: The given ones.
        owner: Who has these settings, for messages (``"space moga"``, ``"searcher random"``).
        where: How a message names setting ``n``; default ``"{owner} setting 'n'"``. A config passes
            ``lambda n: f"config field 'space.settings.{n}'"`` so the user sees the field they wrote.

    Raises:
        ConfigError: an unknown name, a missing required setting, or a value its check refuses.
    """
    where = where or (lambda name: f"{owner} setting '{name}'")
    known = {s.name: s for s in spec}
    for name in values:
        if name not in known:
            raise ConfigError(
                f"{where(str(name))}: unknown setting for {owner}; its settings are: "
                f"{', '.join(known) or '(none)'}. HINT: check the spelling."
            )
    resolved = {}
    for setting in spec:
        if setting.name in values:
            resolved[setting.name] = setting.check(where(setting.name), values[setting.name], setting.example())
        elif setting.default is REQUIRED:
            hint = setting.example().rstrip(".")
            raise ConfigError(f"{where(setting.name)}: is required by {owner}. HINT: {hint}.")
        else:
            resolved[setting.name] = setting.default
    return resolved


def settings_signature(spec: Sequence[Setting], leading: Sequence[inspect.Parameter] = ()) -> inspect.Signature:
    """A keyword-only signature for ``spec`` (after ``leading`` parameters), for ``help()`` and IDEs."""
    params = list(leading) + [
        inspect.Parameter(s.name, inspect.Parameter.KEYWORD_ONLY,
                          default=inspect.Parameter.empty if s.default is REQUIRED else s.default)
        for s in spec
    ]
    return inspect.Signature(params)
