"""Published architectures expressed in their space's own encoding (``reference/architectures.md``).

A preset is (space name, encoding string, settings): users start from it or compare against it, and
the tests check that it reproduces the published parameter and multiply-add counts.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping

from .base import Encoding, SearchSpace
from .errors import UnknownNameError

__all__ = ["PRESETS", "get_preset"]

_IMAGENET_224: dict[str, Any] = {"width_mult": 1.0, "input_size": 224, "num_classes": 1000, "stem_stride": 2}

#: Preset name -> (space name, encoding string, space settings). Read-only.
PRESETS: Mapping[str, tuple[str, str, Mapping[str, Any]]] = MappingProxyType(
    {
        # MoGA Table 1 indices (see spaces.moga.CHOICES), from the (t, k, SE) rows of seed 003.
        "moga-a": ("moga", "8-10-6-7-1-7-6-10-5-10-6-6-9-9", MappingProxyType(_IMAGENET_224)),
        "moga-b": ("moga", "0-0-10-0-8-7-9-0-11-10-2-11-11-7", MappingProxyType(_IMAGENET_224)),
        "moga-c": ("moga", "2-0-2-0-2-2-9-2-2-6-7-7-7-7", MappingProxyType(_IMAGENET_224)),
    }
)


def get_preset(name: str) -> tuple[SearchSpace, Encoding]:
    """The space (with the preset's settings) and the validated encoding of preset ``name``.

    Raises:
        UnknownNameError: ``name`` is not a preset; the message lists the known ones.
    """
    from . import get_space  # the registry lives in the package; imported late to avoid a cycle

    try:
        space_name, text, settings = PRESETS[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}. "
            "HINT: pick one of the listed names."
        ) from None
    space = get_space(space_name, **dict(settings))
    return space, space.parse(text)
