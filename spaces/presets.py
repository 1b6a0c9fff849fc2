"""Published architectures expressed in their space's own encoding (``reference/architectures.md``).

A preset is (space name, encoding string, settings): users start from it or compare against it, and
the tests check that it reproduces the published parameter and multiply-add counts.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping

from core.errors import UnknownNameError

from .base import Encoding, SearchSpace, get_space

__all__ = ["PRESETS", "get_preset"]

_IMAGENET_224: dict[str, Any] = {"width_mult": 1.0, "input_size": 224, "num_classes": 1000, "stem_stride": 2}

#: Preset name -> (space name, encoding string, space settings). Read-only.
PRESETS: Mapping[str, tuple[str, str, Mapping[str, Any]]] = MappingProxyType(
    {
        # MoGA Table 1 indices (see spaces.moga.CHOICES), from the (t, k, SE) rows of seed 003.
        "moga-a": ("moga", "8-10-6-7-1-7-6-10-5-10-6-6-9-9", MappingProxyType(_IMAGENET_224)),
        "moga-b": ("moga", "0-0-10-0-8-7-9-0-11-10-2-11-11-7", MappingProxyType(_IMAGENET_224)),
        "moga-c": ("moga", "2-0-2-0-2-2-9-2-2-6-7-7-7-7", MappingProxyType(_IMAGENET_224)),
        # MobileNetV2 1.0 (every searched layer t6k3) and MobileNetV3-Large 1.0 (Table 1: t = 4, 3, 3, 3, 3,
        # 6, 2.5, 2.3, 2.3, 6, ...) in MobileNetSpace's per-layer indices (see MobileNetSpace.choice_index).
        "mobilenet-v2": (
            "mobilenet", "6-6-6-6-6-6-6-6-6-6-6-6-6-6-6-6", MappingProxyType({**_IMAGENET_224, "version": "v2"}),
        ),
        "mobilenet-v3-large": (
            "mobilenet", "18-12-15-15-15-24-6-0-0-25-25-27-27-27",
            MappingProxyType({**_IMAGENET_224, "version": "v3-large"}),
        ),
        # MobileOne S0..S4 (seed 002, Table 7) as MobileOneSpace indices k-a1-a2-a3-a4-se (see its dims).
        **{
            f"mobileone-{variant}": ("mobileone", encoding, MappingProxyType({
                "input_size": 224, "num_classes": 1000, "width_scale": 1.0,
            }))  # fmt: skip
            for variant, encoding in (
                ("s0", "3-0-1-0-1-0"), ("s1", "0-2-2-2-2-0"), ("s2", "0-2-3-3-5-0"), ("s3", "0-3-4-4-5-0"),
                ("s4", "0-5-6-5-5-1"),
            )
        },
        # MobileNetEdgeTPUV2 (seed 004) in EdgeTPUSpace's per-layer indices (see EdgeTPUSpace.choice_index):
        # the block rows of reference/architectures.md, group size 64 (128 for L).
        **{
            f"mobilenet-edgetpu-v2-{variant}": ("edgetpu", encoding, MappingProxyType({
                "variant": variant, "width_mult": 1.0, "input_size": 224, "num_classes": 1001, "stem_stride": 2,
            }))  # fmt: skip
            for variant, encoding in (
                ("tiny", "6-21-27-21-21-21-27-0-0-0-2-0-0-0-2-0-0-0-2"),
                ("xs", "6-21-6-21-4-21-6-0-0-0-2-0-0-0-2-0-0-0-2"),
                ("s", "6-21-6-21-4-21-6-0-0-0-2-0-0-0-2-0-0-0-2"),
                ("m", "6-21-6-21-4-21-6-0-0-0-2-0-0-0-2-0-0-0-2"),
                ("l", "6-22-6-22-4-22-6-0-0-0-2-0-0-0-2-0-0-0-2"),
            )
        },
        # The released MobileDets + SSDLite at 320 (seed 000; the layer rows of reference/architectures.md) in
        # MobileDetSpace's indices: 8 width multipliers (stem, blocks 1-7), then 22 layers (see choice_index).
        **{
            f"mobiledet-{target}": ("mobiledet", encoding, MappingProxyType({
                "variant": "ibn+fused+tucker", "target": target, "task": "detection", "input_size": 320,
                "num_classes": 91,
            }))  # fmt: skip
            for target, encoding in (
                ("cpu", "0-0-0-1-2-2-1-2-16-0-16-16-16-2-0-0-0-3-2-1-0-2-2-2-2-3-1-1-0-2"),
                ("edgetpu", "3-3-0-2-2-3-2-6-9-6-4-6-4-7-4-4-4-2-2-4-4-3-3-2-2-3-2-1-2-3"),
                ("dsp", "3-5-3-4-4-5-3-4-8-2-2-0-5-3-0-2-2-3-0-1-1-3-1-1-1-0-0-2-7-1"),
                ("gpu", "3-3-3-4-4-4-2-6-8-6-8-8-8-6-6-6-4-6-4-4-4-6-6-6-6-4-4-4-4-2"),
            )
        },
    }
)


def get_preset(name: str) -> tuple[SearchSpace, Encoding]:
    """The space (with the preset's settings) and the validated encoding of preset ``name``.

    Raises:
        UnknownNameError: ``name`` is not a preset; the message lists the known ones.
    """
    try:
        space_name, text, settings = PRESETS[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}. "
            "HINT: pick one of the listed names."
        ) from None
    space = get_space(space_name, **dict(settings))
    return space, space.parse(text)
