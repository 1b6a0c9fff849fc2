"""The MobileNetV2 / MobileNetV3-Large family as a search space (``mobilenet``).

The two published baselines of the source papers (``reference/architectures.md``): MobileNetV2 1.0
(Sandler et al. 2018, the (t, c, n, s) table) and MobileNetV3-Large 1.0 (Howard et al. 2019, Table 1).
The ``version`` setting fixes the skeleton: stem, the fixed first block, out channels, strides and
activations of the searched layers, and the head. Each searched layer then picks an expansion ratio,
a depthwise kernel (3, 5, 7) and, in v3 only, whether to use squeeze-excite:

* v2: 16 searched layers, expansions (3, 4, 6), ReLU6 everywhere, no SE: 9 choices per layer. 6 is the
  only ratio MobileNetV2 uses; 3 and 4 add the cheaper ratios the NAS spaces built on MobileNetV2 search
  (ProxylessNAS / MnasNet-style), so the space holds the published net and lighter relatives.
* v3-large: 14 searched layers, expansions (2.3, 2.5, 3, 4, 6), MobileNetV3's SE: 30 choices per layer.
  These are exactly the ratios behind MobileNetV3-Large's hidden widths (64/16 = 4, 72/24 = 3,
  200/80 = 2.5, 184/80 = 2.3, 6 elsewhere), so the published net is an encoding of the space.

The hidden width of a block is ``make_divisible(in * t, 8)`` (MobileNetV3's rule; for v2's integer
ratios on multiple-of-8 channels it is exactly ``in * t``). The v3 SE squeezes to
``make_divisible(hidden / 4, 8)`` channels with ReLU inside and a hard-sigmoid gate, whatever the
block's own activation (unlike MoGA, whose SE uses ``hidden // 4`` and the block activation).

The first block (v2: t=1 depthwise-separable 32 -> 16; v3: 16 -> 16 depthwise 3x3 + pointwise, no
expansion, with the identity shortcut MobileNetV3 gives it as in == out at stride 1) is fixed.

Three layers, kept apart: an *encoding* (one choice index per searched layer) -> a
:class:`~spaces._table.LayerwiseArch` of :class:`InvertedResidualArgs` -> the module (built from
:mod:`spaces._mobilenet_nets`'s parts). The supernet shares one set of weights among all choices of a
layer (see :mod:`spaces._mobilenet_nets`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import InvalidEncodingError
from core.settings import Setting, choice

from . import _settings as common
from ._block_args import make_divisible
from ._table import LayerTableSpace
from .base import register_space
from .counting import Cost, conv2d_cost, inverted_residual_cost, linear_cost

if TYPE_CHECKING:
    from ._layerwise import LayerwiseParts

__all__ = ["KERNELS", "SKELETONS", "InvertedResidualArgs", "MobileNetFixedArgs", "MobileNetSpace", "Skeleton"]

KERNELS: tuple[int, ...] = (3, 5, 7)


@dataclass(frozen=True)
class Skeleton:
    """The fixed layout of one version at width 1.0.

    Attributes:
        stem_ch: Stem conv (3x3) output channels.
        stem_act: Stem activation.
        first: (out channels, activation) of the fixed first block (depthwise 3x3 + pointwise).
        layers: (out channels, stride, activation) per searched layer.
        expansions: The searched expansion ratios, ascending.
        se: Whether squeeze-excite is a choice of every searched layer.
        last_ch: Channels of the last 1x1 conv (BN, activation) before pooling.
        last_act: Its activation.
        head_ch: Channels of the 1x1 conv (bias, no BN, h-swish) after pooling, or ``None`` (v2: the
            pooled features go straight to the classifier).
        last_grows_only: Whether ``last_ch`` ignores width multipliers below 1 (v2 keeps 1280 features).
    """

    stem_ch: int
    stem_act: str
    first: tuple[int, str]
    layers: tuple[tuple[int, int, str], ...]
    expansions: tuple[float, ...]
    se: bool
    last_ch: int
    last_act: str
    head_ch: int | None
    last_grows_only: bool


def _v2_layers() -> tuple[tuple[int, int, str], ...]:
    # (c, n, s) rows of MobileNetV2's table after the fixed t=1 row; t=6 is the searched expansion.
    rows = ((24, 2, 2), (32, 3, 2), (64, 4, 2), (96, 3, 1), (160, 3, 2), (320, 1, 1))
    return tuple((c, s if i == 0 else 1, "relu6") for c, n, s in rows for i in range(n))


SKELETONS: dict[str, Skeleton] = {
    "v2": Skeleton(
        stem_ch=32, stem_act="relu6", first=(16, "relu6"), layers=_v2_layers(), expansions=(3, 4, 6), se=False,
        last_ch=1280, last_act="relu6", head_ch=None, last_grows_only=True,
    ),
    "v3-large": Skeleton(
        stem_ch=16, stem_act="hswish", first=(16, "relu"),
        layers=(
            (24, 2, "relu"), (24, 1, "relu"),
            (40, 2, "relu"), (40, 1, "relu"), (40, 1, "relu"),
            (80, 2, "hswish"), (80, 1, "hswish"), (80, 1, "hswish"), (80, 1, "hswish"),
            (112, 1, "hswish"), (112, 1, "hswish"),
            (160, 2, "hswish"), (160, 1, "hswish"), (160, 1, "hswish"),
        ),
        expansions=(2.3, 2.5, 3, 4, 6), se=True, last_ch=960, last_act="hswish", head_ch=1280,
        last_grows_only=False,
    ),
}  # fmt: skip


# ---------------------------------------------------------------------------------------- block args
@dataclass(frozen=True)
class InvertedResidualArgs:
    """Arguments of one MobileNetV2/V3 inverted-residual block.

    ``[1x1 expand (BN, act)] -> depthwise kxk (BN, act) -> [SE] -> 1x1 project (BN, linear) -> [+ input]``.

    Attributes:
        in_ch: Input channels.
        out_ch: Output channels.
        expansion: Ratio ``t``; 1 means no expansion conv (the fixed first block).
        kernel: Depthwise kernel size (odd).
        stride: Depthwise stride.
        se: Whether MobileNetV3's squeeze-excite follows the depthwise conv.
        act: Activation of the expand and depthwise convs: ``relu6`` (V2), ``relu`` or ``hswish`` (V3).
    """

    in_ch: int
    out_ch: int
    expansion: float
    kernel: int
    stride: int
    se: bool
    act: str

    @property
    def has_expand(self) -> bool:
        return self.expansion != 1

    @property
    def hidden(self) -> int:
        """Expanded width: ``make_divisible(in * t, 8)`` (V3's 184 = 80 * 2.3), ``in`` without expansion."""
        return make_divisible(self.in_ch * self.expansion, 8) if self.has_expand else self.in_ch

    @property
    def se_squeeze(self) -> int:
        """MobileNetV3's SE width: ``make_divisible(hidden / 4, 8)``."""
        return make_divisible(self.hidden / 4, 8)

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_ch == self.out_ch


@dataclass(frozen=True)
class MobileNetFixedArgs:
    """The parts every candidate of one space shares.

    Attributes:
        version: ``v2`` or ``v3-large``.
        stem_ch: Stem conv output channels.
        stem_stride: Stem conv stride (2 as published; 1 keeps 32x32 inputs at full resolution).
        stem_act: Stem activation.
        first: The fixed first block (expansion 1, kernel 3, stride 1).
        last_ch: Channels of the last 1x1 conv before pooling.
        last_act: Its activation.
        head_ch: Channels of the post-pooling 1x1 conv (v3), or ``None`` (v2).
        num_classes: Classifier outputs.
        dropout: Dropout probability before the classifier.
    """

    version: str
    stem_ch: int
    stem_stride: int
    stem_act: str
    first: InvertedResidualArgs
    last_ch: int
    last_act: str
    head_ch: int | None
    num_classes: int
    dropout: float


# --------------------------------------------------------------------------------------------- space
@register_space
class MobileNetSpace(LayerTableSpace):
    """The MobileNetV2 / V3-Large family: per searched layer an expansion x kernel (x SE for v3).

    Choices per layer, in index order: for each expansion of the version, for each kernel of
    :data:`KERNELS`, (v3) without then with SE; labels read e.g. ``t6k3`` or ``t2.3k5SE``.

    Settings: ``version`` (``v2`` or ``v3-large``: the skeleton, see :data:`SKELETONS`), ``width_mult``
    (> 0: ``make_divisible(c * width_mult, 8)``; as published, the 1280-wide layer (v2's last conv, v3's
    head conv) only grows, for ``width_mult > 1``), ``input_size`` (>= 16), ``num_classes`` (>= 2),
    ``stem_stride`` and ``dropout``.
    """

    name = "mobilenet"
    SETTINGS = (
        Setting("version", "v3-large", choice(*SKELETONS)), common.width_mult(), common.input_size(224, minimum=16),
        common.num_classes(1000), common.stem_stride(), common.dropout(), common.task("classification"),
        common.head_depths(),
    )  # fmt: skip
    # A narrow v3-large (the version with SE) on 32x32 inputs, 10 classes.
    SMALL_SETTINGS = {
        "version": "v3-large", "width_mult": 0.35, "input_size": 32, "num_classes": 10, "stem_stride": 1,
        "dropout": 0.2,
    }  # fmt: skip
    SUPERNET_OPTIONS = {"kernel_weights": ("per_kernel",)}

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        skeleton = SKELETONS[self.setting("version")]
        se_options = (False, True) if skeleton.se else (False,)
        self._choice_params = tuple((t, k, se) for t in skeleton.expansions for k in KERNELS for se in se_options)
        fixed = self._make_fixed(skeleton)
        table, in_ch = [], fixed.first.out_ch
        for out, stride, act in skeleton.layers:
            out_ch = self._ch(out)
            table.append(tuple(InvertedResidualArgs(in_ch, out_ch, t, k, stride, se, act)
                               for t, k, se in self._choice_params))  # fmt: skip
            in_ch = out_ch
        self._set_table(fixed, table, tuple(f"t{t:g}k{k}{'SE' if se else ''}" for t, k, se in self._choice_params))

    def choice_index(self, expansion: float, kernel: int, se: bool = False) -> int:
        """The per-layer choice index of an (expansion, kernel, SE); :class:`InvalidEncodingError` if none."""
        try:
            return self._choice_params.index((expansion, int(kernel), bool(se)))
        except ValueError:
            skeleton = SKELETONS[self.setting("version")]
            raise InvalidEncodingError(
                f"(t={expansion}, k={kernel}, se={se}) is not a mobilenet {self.setting('version')} choice. HINT: "
                f"t in {skeleton.expansions}, k in {KERNELS}, SE {'optional' if skeleton.se else 'never'}."
            ) from None

    # ------------------------------------------------------------------------------------- helpers
    def _ch(self, channels: int) -> int:
        return make_divisible(channels * self.setting("width_mult"), 8)

    def _wide(self, channels: int) -> int:
        # Both papers keep the 1280-wide layer for narrow models (it feeds the classifier); it grows only.
        return self._ch(channels) if self.setting("width_mult") > 1.0 else channels

    def _make_fixed(self, skeleton: Skeleton) -> MobileNetFixedArgs:
        wide = self._wide
        stem = self._ch(skeleton.stem_ch)
        first_out, first_act = skeleton.first
        first = InvertedResidualArgs(stem, self._ch(first_out), 1, 3, 1, False, first_act)
        return MobileNetFixedArgs(
            version=self.setting("version"), stem_ch=stem, stem_stride=self.setting("stem_stride"),
            stem_act=skeleton.stem_act, first=first,
            last_ch=wide(skeleton.last_ch) if skeleton.last_grows_only else self._ch(skeleton.last_ch),
            last_act=skeleton.last_act, head_ch=None if skeleton.head_ch is None else wide(skeleton.head_ch),
            num_classes=self.setting("num_classes"), dropout=self.setting("dropout"),
        )  # fmt: skip

    # ------------------------------------------------------------------------------- parts and costs
    def _parts(self) -> LayerwiseParts:
        from ._mobilenet_nets import MobileNetParts

        return MobileNetParts()

    def _prefix_cost(self, fixed: MobileNetFixedArgs) -> Cost:
        stem = conv2d_cost(3, fixed.stem_ch, kernel=3, stride=fixed.stem_stride, size=self.input_shape[-1], bn=True)
        return stem + self._block_cost(fixed.first, stem.size)

    def _block_cost(self, args: InvertedResidualArgs, size: int) -> Cost:
        return inverted_residual_cost(
            args.in_ch, args.hidden, args.out_ch, kernel=args.kernel, stride=args.stride,
            se_squeeze=args.se_squeeze if args.se else None, size=size, expand=args.has_expand,
        )

    def _suffix_cost(self, fixed: MobileNetFixedArgs, in_ch: int, size: int) -> Cost:
        cost = conv2d_cost(in_ch, fixed.last_ch, kernel=1, size=size, bn=True)
        features = fixed.last_ch
        if fixed.head_ch is not None:  # runs on the pooled 1x1 map
            cost = cost + conv2d_cost(fixed.last_ch, fixed.head_ch, kernel=1, size=1, bias=True)
            features = fixed.head_ch
        return cost + linear_cost(features, fixed.num_classes)
