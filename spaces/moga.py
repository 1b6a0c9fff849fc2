"""The MoGA search space (Chu et al., "MoGA: Searching Beyond MobileNetV3", seed 003).

A MobileNetV3-Large skeleton whose 14 inverted-residual blocks each choose an expansion ratio
(3, 6), a depthwise kernel (3, 5, 7) and whether to use squeeze-excite: 12 choices per layer, numbered
as in Table 1 of the paper. Out channels, strides and activations are fixed.

Three layers, kept apart: an *encoding* (14 choice indices) -> :class:`MogaArchArgs` (typed block
arguments) -> :class:`MogaNet` (the module, which never sees an encoding). :class:`MogaSupernet`
shares one set of weights among the 12 choices of each layer (single-path one-shot, every choice a
slice of the largest) and is the one model that takes choice indices, as the path to run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from . import register_space
from ._block_args import MBBlockArgs, make_divisible
from .base import Dimension, Encoding, SearchSpace
from .counting import Cost, conv2d_cost, linear_cost
from ._settings import check_int, check_real
from core.errors import InvalidEncodingError

if TYPE_CHECKING:  # torch is imported only when a model is built
    import torch

    from ._moga_nets import MogaNet, MogaSupernet

__all__ = [
    "CHOICES",
    "MBBlockArgs",
    "MogaArchArgs",
    "MogaFixedArgs",
    "MogaNet",
    "MogaSpace",
    "MogaSupernet",
    "choice_index",
]

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
    """The Table-1 index of an (expansion, kernel, SE) choice; ``ValueError`` if it is not one."""
    try:
        return CHOICE_PARAMS.index((int(expansion), int(kernel), bool(se)))
    except ValueError:
        raise ValueError(
            f"(t={expansion}, k={kernel}, se={se}) is not a MoGA choice; t in {EXPANSIONS}, k in {KERNELS}"
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


@dataclass(frozen=True)
class MogaArchArgs:
    """A decoded MoGA architecture: the shared fixed parts and the 14 searched blocks."""

    fixed: MogaFixedArgs
    blocks: tuple[MBBlockArgs, ...]


# --------------------------------------------------------------------------------------------- space
@register_space
class MogaSpace(SearchSpace):
    """MoGA's 14-layer, 12-choice space on the MobileNetV3-Large skeleton.

    Args:
        width_mult: Channel multiplier (> 0); channels become ``make_divisible(c * width_mult, 8)``,
            except the 1280-wide head, which (as in MobileNetV3) only grows, for ``width_mult > 1``.
        input_size: Side of the square input images (>= 16).
        num_classes: Classifier outputs (>= 2).
        stem_stride: 2 as published; 1 keeps small (e.g. 32x32) inputs at full resolution.
        dropout: Dropout probability before the classifier, in [0, 1).
    """

    name = "moga"

    def __init__(
        self,
        *,
        width_mult: float = 1.0,
        input_size: int = 224,
        num_classes: int = 1000,
        stem_stride: int = 2,
        dropout: float = 0.2,
    ) -> None:
        self._width_mult = check_real("moga", "width_mult", width_mult, lambda v: v > 0, "> 0", "width_mult=1.0")
        self._input_size = check_int("moga", "input_size", input_size, lambda v: v >= 16, ">= 16", "input_size=224")
        self._num_classes = check_int("moga", "num_classes", num_classes, lambda v: v >= 2, ">= 2", "num_classes=1000")
        self._stem_stride = check_int("moga", "stem_stride", stem_stride, lambda v: v in (1, 2), "1 or 2", "stem_stride=2")
        self._dropout = check_real("moga", "dropout", dropout, lambda v: 0 <= v < 1, "in [0, 1)", "dropout=0.2")
        self._dims = tuple(Dimension(f"layer_{i:02d}", CHOICES) for i in range(len(_LAYERS)))
        self._fixed = self._make_fixed()
        self._layers = self._make_layers()

    @classmethod
    def small_settings(cls) -> dict[str, Any]:
        """Settings for CPU-sized tests and quick starts: a narrow net on 32x32 inputs, 10 classes."""
        return {"width_mult": 0.35, "input_size": 32, "num_classes": 10, "stem_stride": 1, "dropout": 0.2}

    # ------------------------------------------------------------------------------ SearchSpace API
    @property
    def settings(self) -> dict[str, Any]:
        return {
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
    def fixed(self) -> MogaFixedArgs:
        """The fixed parts shared by all candidates of this space."""
        return self._fixed


    def decode(self, encoding: Sequence[int]) -> MogaArchArgs:
        """Validate ``encoding`` and return its typed block arguments."""
        values = self.validate(encoding)
        return MogaArchArgs(fixed=self._fixed, blocks=tuple(self._block_args(i, c) for i, c in enumerate(values)))

    def encode(self, block_args: MogaArchArgs) -> Encoding:
        """Return the encoding of ``block_args``; raise if they are not an architecture of this space."""
        if not isinstance(block_args, MogaArchArgs):
            raise InvalidEncodingError(f"moga: encode() takes MogaArchArgs, got {type(block_args).__name__}")
        if block_args.fixed != self._fixed or len(block_args.blocks) != len(self._layers):
            raise InvalidEncodingError(
                f"moga: these block arguments were decoded by a space with other settings "
                f"({block_args.fixed} vs {self._fixed}). HINT: encode with the space that decoded them."
            )
        return tuple(self._choice_of(i, args) for i, args in enumerate(block_args.blocks))

    def build(self, encoding: Sequence[int], *, generator: torch.Generator | None = None) -> MogaNet:
        """A freshly initialised stand-alone :class:`MogaNet` (weights drawn from ``generator`` only)."""
        from ._blocks import materialize
        from ._moga_nets import MogaNet

        arch = self.decode(encoding)
        return materialize(lambda: MogaNet(arch), generator=generator)

    # ------------------------------------------------------------------------------------ supernet
    def build_supernet(self, *, generator: torch.Generator | None = None) -> MogaSupernet:
        """A freshly initialised supernet: per searched layer one weight-shared block for all 12 choices."""
        from ._blocks import materialize
        from ._moga_nets import MogaSupernet

        choices = self._supernet_choices()
        return materialize(lambda: MogaSupernet(self._fixed, choices), generator=generator)

    def extract(self, supernet: MogaSupernet, encoding: Sequence[int]) -> MogaNet:
        """A stand-alone :class:`MogaNet` carrying ``supernet``'s weights and BN buffers for one path.

        Each searched block gets its choice's slices of its layer's shared block (see :class:`MogaSupernet`).
        The copy shares no storage with the supernet, lives on its device and in its train/eval mode;
        in eval mode ``extract(sn, e)(x)`` equals ``sn(x, e)``.
        """
        from ._blocks import extract_path
        from ._moga_nets import MogaNet, MogaSupernet

        arch = self.decode(encoding)
        ours = isinstance(supernet, MogaSupernet) and (supernet.fixed, supernet.choices) == (
            self._fixed, self._supernet_choices())  # fmt: skip
        return extract_path(self.name, supernet, ours, lambda: MogaNet(arch), self.validate(encoding))

    # ------------------------------------------------------------------------------------ counting
    def count(self, encoding: Sequence[int]) -> dict[str, int]:
        """Params and MAdds (per image) of the architecture, computed analytically (no model is built).

        Follows the convention of :mod:`spaces.counting`, and is tested against its hook counter.
        """
        arch = self.decode(encoding)
        cost = _trunk_head_cost(arch.fixed, self._input_size)
        for args in arch.blocks:
            cost = cost + _mb_block_cost(args, cost.size)
        cost = cost + _tail_cost(arch.fixed, arch.blocks[-1].out_ch, cost.size)
        return {"params": cost.params, "madds": cost.madds}

    # ------------------------------------------------------------------------------------- helpers
    def _ch(self, channels: int) -> int:
        return make_divisible(channels * self._width_mult, 8)

    def _make_fixed(self) -> MogaFixedArgs:
        # MobileNetV3 only widens the head: narrow models keep 1280 features for the classifier.
        head = self._ch(_HEAD_CH) if self._width_mult > 1.0 else _HEAD_CH
        return MogaFixedArgs(
            stem_ch=self._ch(_STEM_CH), stem_stride=self._stem_stride, first_ch=self._ch(_STEM_CH),
            last_ch=self._ch(_LAST_CH), head_ch=head, num_classes=self._num_classes, dropout=self._dropout,
        )  # fmt: skip

    def _make_layers(self) -> tuple[tuple[int, int, int, str], ...]:
        """(in, out, stride, act) per searched layer, at this width."""
        layers, in_ch = [], self._fixed.first_ch
        for out, stride, act in _LAYERS:
            layers.append((in_ch, self._ch(out), stride, act))
            in_ch = self._ch(out)
        return tuple(layers)

    def _supernet_choices(self) -> tuple[tuple[MBBlockArgs, ...], ...]:
        """Per searched layer, the block arguments of all its choices, in choice-index order."""
        return tuple(tuple(self._block_args(i, c) for c in range(len(CHOICES))) for i in range(len(_LAYERS)))

    def _block_args(self, layer: int, choice: int) -> MBBlockArgs:
        in_ch, out_ch, stride, act = self._layers[layer]
        t, k, se = CHOICE_PARAMS[choice]
        return MBBlockArgs(in_ch=in_ch, out_ch=out_ch, expansion=t, kernel=k, stride=stride, se=se, act=act)

    def _choice_of(self, layer: int, args: MBBlockArgs) -> int:
        in_ch, out_ch, stride, act = self._layers[layer]
        if isinstance(args, MBBlockArgs) and (args.in_ch, args.out_ch, args.stride, args.act) == self._layers[layer]:
            if (args.expansion, args.kernel, args.se) in CHOICE_PARAMS:
                return CHOICE_PARAMS.index((args.expansion, args.kernel, args.se))
        raise InvalidEncodingError(
            f"moga: {self._dims[layer].name} block {args} is not a choice of this space "
            f"(fixed in={in_ch}, out={out_ch}, stride={stride}, act={act}; t in {EXPANSIONS}, k in {KERNELS}). "
            f"HINT: allowed choices: {', '.join(CHOICES)}."
        )


# ----------------------------------------------------------------------------------- module helpers
def __getattr__(name: str) -> Any:
    # PEP 562: ``spaces.moga.MogaNet`` works, but torch is imported only when a model class is asked for.
    if name in ("MogaNet", "MogaSupernet"):
        from . import _moga_nets

        return getattr(_moga_nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------------- analytic costs
def _trunk_head_cost(fixed: MogaFixedArgs, input_size: int) -> Cost:
    stem = conv2d_cost(3, fixed.stem_ch, kernel=3, stride=fixed.stem_stride, size=input_size, bn=True)
    dw = conv2d_cost(fixed.stem_ch, fixed.stem_ch, kernel=3, groups=fixed.stem_ch, size=stem.size, bn=True)
    pw = conv2d_cost(fixed.stem_ch, fixed.first_ch, kernel=1, size=dw.size, bn=True)
    return stem + dw + pw


def _mb_block_cost(args: MBBlockArgs, size: int) -> Cost:
    hidden = args.hidden
    cost = conv2d_cost(args.in_ch, hidden, kernel=1, size=size, bn=True)
    cost = cost + conv2d_cost(hidden, hidden, kernel=args.kernel, stride=args.stride, groups=hidden, size=size, bn=True)
    if args.se:  # the SE convs run on the pooled 1x1 map
        squeeze = args.se_squeeze
        se = conv2d_cost(hidden, squeeze, kernel=1, size=1, bias=True)
        cost = cost.with_branch(se + conv2d_cost(squeeze, hidden, kernel=1, size=1, bias=True))
    return cost + conv2d_cost(hidden, args.out_ch, kernel=1, size=cost.size, bn=True)


def _tail_cost(fixed: MogaFixedArgs, in_ch: int, size: int) -> Cost:
    last = conv2d_cost(in_ch, fixed.last_ch, kernel=1, size=size, bn=True)
    head = conv2d_cost(fixed.last_ch, fixed.head_ch, kernel=1, size=1)
    return last + head + linear_cost(fixed.head_ch, fixed.num_classes)
