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

Three layers, kept apart: an *encoding* (one choice index per searched layer) ->
:class:`MobileNetArchArgs` -> :class:`~spaces._mobilenet_nets.MobileNet`. The supernet shares one set of
weights among all choices of a layer (see :mod:`spaces._mobilenet_nets`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from . import register_space
from ._block_args import make_divisible
from .base import Dimension, Encoding, SearchSpace
from .counting import Cost, conv2d_cost, linear_cost
from ._settings import check_int, check_real
from core.errors import ConfigError, InvalidEncodingError

if TYPE_CHECKING:  # torch is imported only when a model is built
    import torch

    from ._mobilenet_nets import MobileNet, MobileNetSupernet

__all__ = [
    "KERNELS",
    "SKELETONS",
    "InvertedResidualArgs",
    "MobileNet",
    "MobileNetArchArgs",
    "MobileNetFixedArgs",
    "MobileNetSpace",
    "MobileNetSupernet",
    "Skeleton",
]

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


@dataclass(frozen=True)
class MobileNetArchArgs:
    """A decoded architecture: the shared fixed parts and the searched blocks."""

    fixed: MobileNetFixedArgs
    blocks: tuple[InvertedResidualArgs, ...]


# --------------------------------------------------------------------------------------------- space
@register_space
class MobileNetSpace(SearchSpace):
    """The MobileNetV2 / V3-Large family: per searched layer an expansion x kernel (x SE for v3).

    Choices per layer, in index order: for each expansion of the version, for each kernel of
    :data:`KERNELS`, (v3) without then with SE; labels read e.g. ``t6k3`` or ``t2.3k5SE``.

    Args:
        version: ``v2`` or ``v3-large``: the skeleton (see :data:`SKELETONS`).
        width_mult: Channel multiplier (> 0): ``make_divisible(c * width_mult, 8)``. As published, the
            1280-wide layer (v2's last conv, v3's head conv) only grows, for ``width_mult > 1``.
        input_size: Side of the square input images (>= 16).
        num_classes: Classifier outputs (>= 2).
        stem_stride: 2 as published; 1 keeps small (e.g. 32x32) inputs at full resolution.
        dropout: Dropout probability before the classifier, in [0, 1).
    """

    name = "mobilenet"

    def __init__(
        self,
        *,
        version: str = "v3-large",
        width_mult: float = 1.0,
        input_size: int = 224,
        num_classes: int = 1000,
        stem_stride: int = 2,
        dropout: float = 0.2,
    ) -> None:
        if not (isinstance(version, str) and version in SKELETONS):
            raise ConfigError(
                f"mobilenet: setting version must be one of {', '.join(SKELETONS)}, got {version!r}. "
                "HINT: e.g. version='v3-large'."
            )
        self._version = version
        n = self.name
        self._width_mult = check_real(n, "width_mult", width_mult, lambda v: v > 0, "> 0", "width_mult=1.0")
        self._input_size = check_int(n, "input_size", input_size, lambda v: v >= 16, ">= 16", "input_size=224")
        self._num_classes = check_int(n, "num_classes", num_classes, lambda v: v >= 2, ">= 2", "num_classes=1000")
        self._stem_stride = check_int(n, "stem_stride", stem_stride, lambda v: v in (1, 2), "1 or 2", "stem_stride=2")
        self._dropout = check_real(n, "dropout", dropout, lambda v: 0 <= v < 1, "in [0, 1)", "dropout=0.2")
        skeleton = SKELETONS[version]
        se_options = (False, True) if skeleton.se else (False,)
        self._choice_params = tuple((t, k, se) for t in skeleton.expansions for k in KERNELS for se in se_options)
        labels = tuple(f"t{t:g}k{k}{'SE' if se else ''}" for t, k, se in self._choice_params)
        self._fixed = self._make_fixed(skeleton)
        self._layers = self._make_layers(skeleton)
        self._dims = tuple(Dimension(f"layer_{i:02d}", labels) for i in range(len(self._layers)))
        self._table = tuple(
            tuple(InvertedResidualArgs(i, o, t, k, s, se, act) for t, k, se in self._choice_params)
            for i, o, s, act in self._layers
        )
        self._index = tuple({args: c for c, args in enumerate(layer)} for layer in self._table)

    @classmethod
    def small_settings(cls) -> dict[str, Any]:
        """Settings for CPU-sized tests: a narrow v3-large (the version with SE) on 32x32 inputs, 10 classes."""
        return {
            "version": "v3-large", "width_mult": 0.35, "input_size": 32, "num_classes": 10, "stem_stride": 1,
            "dropout": 0.2,
        }  # fmt: skip

    # ------------------------------------------------------------------------------ SearchSpace API
    @property
    def settings(self) -> dict[str, Any]:
        return {
            "version": self._version,
            "width_mult": self._width_mult,
            "input_size": self._input_size,
            "num_classes": self._num_classes,
            "stem_stride": self._stem_stride,
            "dropout": self._dropout,
        }

    @property
    def dims(self) -> tuple[Dimension, ...]:
        return self._dims

    @property
    def fixed(self) -> MobileNetFixedArgs:
        """The fixed parts shared by all candidates of this space."""
        return self._fixed


    def choice_index(self, expansion: float, kernel: int, se: bool = False) -> int:
        """The per-layer choice index of an (expansion, kernel, SE); ``ValueError`` if it is not one."""
        try:
            return self._choice_params.index((expansion, int(kernel), bool(se)))
        except ValueError:
            skeleton = SKELETONS[self._version]
            raise ValueError(
                f"(t={expansion}, k={kernel}, se={se}) is not a mobilenet {self._version} choice; "
                f"t in {skeleton.expansions}, k in {KERNELS}, SE {'optional' if skeleton.se else 'never'}"
            ) from None

    def decode(self, encoding: Sequence[int]) -> MobileNetArchArgs:
        """Validate ``encoding`` and return its typed block arguments."""
        values = self.validate(encoding)
        return MobileNetArchArgs(fixed=self._fixed, blocks=tuple(self._table[i][c] for i, c in enumerate(values)))

    def encode(self, block_args: MobileNetArchArgs) -> Encoding:
        """Return the encoding of ``block_args``; raise if they are not an architecture of this space."""
        if not isinstance(block_args, MobileNetArchArgs):
            raise InvalidEncodingError(f"mobilenet: encode() takes MobileNetArchArgs, got {type(block_args).__name__}")
        if block_args.fixed != self._fixed or len(block_args.blocks) != len(self._layers):
            raise InvalidEncodingError(
                f"mobilenet: these block arguments were decoded by a space with other settings "
                f"({block_args.fixed} vs {self._fixed}). HINT: encode with the space that decoded them."
            )
        encoding = []
        for i, args in enumerate(block_args.blocks):
            if args not in self._index[i]:
                in_ch, out_ch, stride, act = self._layers[i]
                raise InvalidEncodingError(
                    f"mobilenet: {self._dims[i].name} block {args} is not a choice of this space "
                    f"(fixed in={in_ch}, out={out_ch}, stride={stride}, act={act}). "
                    f"HINT: allowed choices: {', '.join(self._dims[i].choices)}."
                )
            encoding.append(self._index[i][args])
        return tuple(encoding)

    def build(self, encoding: Sequence[int], *, generator: torch.Generator | None = None) -> MobileNet:
        """A freshly initialised stand-alone :class:`MobileNet` (weights drawn from ``generator`` only)."""
        from ._blocks import materialize
        from ._mobilenet_nets import MobileNet

        arch = self.decode(encoding)
        return materialize(lambda: MobileNet(arch), generator=generator)

    # ------------------------------------------------------------------------------------ supernet
    def build_supernet(self, *, generator: torch.Generator | None = None) -> MobileNetSupernet:
        """A freshly initialised supernet: per searched layer one weight-shared block for all its choices."""
        from ._blocks import materialize
        from ._mobilenet_nets import MobileNetSupernet

        return materialize(lambda: MobileNetSupernet(self._fixed, self._table), generator=generator)

    def extract(self, supernet: MobileNetSupernet, encoding: Sequence[int]) -> MobileNet:
        """A stand-alone :class:`MobileNet` carrying ``supernet``'s weights and BN buffers for one path.

        The copy shares no storage with the supernet, lives on its device and in its train/eval mode;
        in eval mode ``extract(sn, e)(x)`` equals ``sn(x, e)``.
        """
        from ._blocks import extract_path
        from ._mobilenet_nets import MobileNet, MobileNetSupernet

        arch = self.decode(encoding)
        ours = isinstance(supernet, MobileNetSupernet) and (supernet.fixed, supernet.choices) == (self._fixed, self._table)
        return extract_path(self.name, supernet, ours, lambda: MobileNet(arch), self.validate(encoding))

    # ------------------------------------------------------------------------------------ counting
    def count(self, encoding: Sequence[int]) -> dict[str, int]:
        """Params and MAdds (per image) of the architecture, computed analytically (no model is built).

        Follows the convention of :mod:`spaces.counting`, and is tested against its hook counter.
        """
        arch = self.decode(encoding)
        fixed = arch.fixed
        cost = conv2d_cost(3, fixed.stem_ch, kernel=3, stride=fixed.stem_stride, size=self._input_size, bn=True)
        for args in (fixed.first, *arch.blocks):
            cost = cost + _block_cost(args, cost.size)
        cost = cost + conv2d_cost(arch.blocks[-1].out_ch, fixed.last_ch, kernel=1, size=cost.size, bn=True)
        features = fixed.last_ch
        if fixed.head_ch is not None:  # runs on the pooled 1x1 map
            cost = cost + conv2d_cost(fixed.last_ch, fixed.head_ch, kernel=1, size=1, bias=True)
            features = fixed.head_ch
        cost = cost + linear_cost(features, fixed.num_classes)
        return {"params": cost.params, "madds": cost.madds}

    # ------------------------------------------------------------------------------------- helpers
    def _ch(self, channels: int) -> int:
        return make_divisible(channels * self._width_mult, 8)

    def _wide(self, channels: int) -> int:
        # Both papers keep the 1280-wide layer for narrow models (it feeds the classifier); it grows only.
        return self._ch(channels) if self._width_mult > 1.0 else channels

    def _make_fixed(self, skeleton: Skeleton) -> MobileNetFixedArgs:
        wide = self._wide
        stem = self._ch(skeleton.stem_ch)
        first_out, first_act = skeleton.first
        first = InvertedResidualArgs(stem, self._ch(first_out), 1, 3, 1, False, first_act)
        return MobileNetFixedArgs(
            version=self._version, stem_ch=stem, stem_stride=self._stem_stride, stem_act=skeleton.stem_act,
            first=first, last_ch=wide(skeleton.last_ch) if skeleton.last_grows_only else self._ch(skeleton.last_ch),
            last_act=skeleton.last_act, head_ch=None if skeleton.head_ch is None else wide(skeleton.head_ch),
            num_classes=self._num_classes, dropout=self._dropout,
        )  # fmt: skip

    def _make_layers(self, skeleton: Skeleton) -> tuple[tuple[int, int, int, str], ...]:
        """(in, out, stride, act) per searched layer, at this width."""
        layers, in_ch = [], self._fixed.first.out_ch
        for out, stride, act in skeleton.layers:
            layers.append((in_ch, self._ch(out), stride, act))
            in_ch = self._ch(out)
        return tuple(layers)


# ----------------------------------------------------------------------------------- module helpers
def __getattr__(name: str) -> Any:
    # PEP 562: ``spaces.mobilenet.MobileNet`` works, but torch is imported only when a model class is asked for.
    if name in ("MobileNet", "MobileNetSupernet"):
        from . import _mobilenet_nets

        return getattr(_mobilenet_nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------------- analytic costs
def _block_cost(args: InvertedResidualArgs, size: int) -> Cost:
    hidden = args.hidden
    cost = Cost(size=size)
    if args.has_expand:
        cost = cost + conv2d_cost(args.in_ch, hidden, kernel=1, size=size, bn=True)
    cost = cost + conv2d_cost(
        hidden, hidden, kernel=args.kernel, stride=args.stride, groups=hidden, size=cost.size, bn=True
    )
    if args.se:  # the SE convs run on the pooled 1x1 map
        squeeze = args.se_squeeze
        se = conv2d_cost(hidden, squeeze, kernel=1, size=1, bias=True)
        cost = cost.with_branch(se + conv2d_cost(squeeze, hidden, kernel=1, size=1, bias=True))
    return cost + conv2d_cost(hidden, args.out_ch, kernel=1, size=cost.size, bn=True)
