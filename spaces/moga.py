"""The MoGA search space (Chu et al., "MoGA: Searching Beyond MobileNetV3", seed 003).

A MobileNetV3-Large skeleton whose 14 inverted-residual blocks each choose an expansion ratio
(3, 6), a depthwise kernel (3, 5, 7) and whether to use squeeze-excite: 12 choices per layer, numbered
as in Table 1 of the paper. Out channels, strides and activations are fixed.

Three layers, kept apart: an *encoding* (14 choice indices) -> a
:class:`~spaces._table.LayerwiseArch` of :class:`MBBlockArgs` (typed block arguments) -> the module
(built from :mod:`spaces._moga_nets`'s parts; it never sees an encoding). The supernet shares one set of
weights among the 12 choices of each layer (single-path one-shot, every choice a slice of the largest).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import InvalidEncodingError

from . import _settings as common
from ._block_args import MBBlockArgs, make_divisible
from ._table import LayerTableSpace
from .base import register_space
from .counting import Cost, conv2d_cost, inverted_residual_cost, linear_cost

if TYPE_CHECKING:
    from ._layerwise import LayerwiseParts

__all__ = ["CHOICES", "CHOICE_PARAMS", "MBBlockArgs", "MogaFixedArgs", "MogaSpace", "choice_index"]

EXPANSIONS: tuple[int, ...] = (3, 6)
KERNELS: tuple[int, ...] = (3, 5, 7)
#: (expansion, kernel, se) per choice index: index = 6*[t==6] + 2*[k index in (3, 5, 7)] + [SE].
CHOICE_PARAMS: tuple[tuple[int, int, bool], ...] = tuple(
    (t, k, se) for t in EXPANSIONS for k in KERNELS for se in (False, True)
)
#: Choice labels per index, e.g. ``CHOICES[7] == "t6k3SE"``.
CHOICES: tuple[str, ...] = tuple(f"t{t}k{k}{'SE' if se else ''}" for t, k, se in CHOICE_PARAMS)

# (out channels, stride, activation) of the 14 searched blocks at width 1.0, as in MobileNetV3-Large.
_LAYERS: tuple[tuple[int, int, str], ...] = (
    (24, 2, "relu"), (24, 1, "relu"),
    (40, 2, "relu"), (40, 1, "relu"), (40, 1, "relu"),
    (80, 2, "hswish"), (80, 1, "hswish"), (80, 1, "hswish"), (80, 1, "hswish"),
    (112, 1, "hswish"), (112, 1, "hswish"),
    (160, 2, "hswish"), (160, 1, "hswish"), (160, 1, "hswish"),
)  # fmt: skip
_STEM_CH, _LAST_CH, _HEAD_CH = 16, 960, 1280


def choice_index(expansion: int, kernel: int, se: bool) -> int:
    """The Table-1 index of an (expansion, kernel, SE) choice; :class:`InvalidEncodingError` if it is not one."""
    try:
        return CHOICE_PARAMS.index((int(expansion), int(kernel), bool(se)))
    except ValueError:
        raise InvalidEncodingError(
            f"(t={expansion}, k={kernel}, se={se}) is not a MoGA choice. HINT: t in {EXPANSIONS}, k in {KERNELS}."
        ) from None


# ---------------------------------------------------------------------------------------- block args
@dataclass(frozen=True)
class MogaFixedArgs:
    """The parts every MoGA candidate of one space shares.

    Attributes:
        stem_ch: Stem conv output channels (16 at width 1.0).
        stem_stride: Stem conv stride (2 in the paper; 1 keeps 32x32 inputs at full resolution).
        first_ch: Output channels of the fixed depthwise-separable first block.
        last_ch: Channels of the last 1x1 conv (960 at width 1.0).
        head_ch: Channels of the 1x1 head conv after pooling (1280).
        num_classes: Classifier outputs.
        dropout: Dropout probability before the classifier.
    """

    stem_ch: int
    stem_stride: int
    first_ch: int
    last_ch: int
    head_ch: int
    num_classes: int
    dropout: float


# --------------------------------------------------------------------------------------------- space
@register_space
class MogaSpace(LayerTableSpace):
    """MoGA's 14-layer, 12-choice space on the MobileNetV3-Large skeleton.

    Settings: ``width_mult`` (> 0; channels become ``make_divisible(c * width_mult, 8)``, except the
    1280-wide head, which, as in MobileNetV3, only grows, for ``width_mult > 1``), ``input_size``
    (>= 16), ``num_classes`` (>= 2), ``stem_stride`` (2 as published; 1 keeps 32x32 inputs at full
    resolution) and ``dropout`` (before the classifier, in [0, 1)).
    """

    name = "moga"
    SETTINGS = (
        common.width_mult(), common.input_size(224, minimum=16), common.num_classes(1000), common.stem_stride(),
        common.dropout(), common.task("classification"), common.head_depths(),
    )
    SMALL_SETTINGS = {"width_mult": 0.35, "input_size": 32, "num_classes": 10, "stem_stride": 1, "dropout": 0.2}
    SUPERNET_OPTIONS = {"kernel_weights": ("per_kernel",)}

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        fixed = self._make_fixed()
        layers, in_ch = [], fixed.first_ch
        for out, stride, act in _LAYERS:
            out_ch = self._ch(out)
            layers.append(tuple(MBBlockArgs(in_ch, out_ch, t, k, stride, se, act) for t, k, se in CHOICE_PARAMS))
            in_ch = out_ch
        self._set_table(fixed, layers, CHOICES)

    def _ch(self, channels: int) -> int:
        return make_divisible(channels * self.setting("width_mult"), 8)

    def _make_fixed(self) -> MogaFixedArgs:
        # MobileNetV3 only widens the head: narrow models keep 1280 features for the classifier.
        head = self._ch(_HEAD_CH) if self.setting("width_mult") > 1.0 else _HEAD_CH
        stem = self._ch(_STEM_CH)
        return MogaFixedArgs(
            stem_ch=stem, stem_stride=self.setting("stem_stride"), first_ch=stem, last_ch=self._ch(_LAST_CH),
            head_ch=head, num_classes=self.setting("num_classes"), dropout=self.setting("dropout"),
        )  # fmt: skip

    def _parts(self) -> LayerwiseParts:
        from ._moga_nets import MogaParts

        return MogaParts()

    def _prefix_cost(self, fixed: MogaFixedArgs) -> Cost:
        stem = conv2d_cost(3, fixed.stem_ch, kernel=3, stride=fixed.stem_stride, size=self.input_shape[-1], bn=True)
        dw = conv2d_cost(fixed.stem_ch, fixed.stem_ch, kernel=3, groups=fixed.stem_ch, size=stem.size, bn=True)
        return stem + dw + conv2d_cost(fixed.stem_ch, fixed.first_ch, kernel=1, size=dw.size, bn=True)

    def _block_cost(self, args: MBBlockArgs, size: int) -> Cost:
        return inverted_residual_cost(
            args.in_ch, args.hidden, args.out_ch, kernel=args.kernel, stride=args.stride,
            se_squeeze=args.se_squeeze if args.se else None, size=size,
        )

    def _suffix_cost(self, fixed: MogaFixedArgs, in_ch: int, size: int) -> Cost:
        last = conv2d_cost(in_ch, fixed.last_ch, kernel=1, size=size, bn=True)
        head = conv2d_cost(fixed.last_ch, fixed.head_ch, kernel=1, size=1)
        return last + head + linear_cost(fixed.head_ch, fixed.num_classes)
