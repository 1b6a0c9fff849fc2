"""The MobileOne search space (Vasu et al., "MobileOne: An Improved One millisecond Mobile Backbone", seed 002).

MobileOne's skeleton (Table 7 of the paper): a stem block, then four stages of (2, 8, 10, 1) network
blocks, each a depthwise 3x3 MobileOne block followed by a pointwise 1x1 MobileOne block, then global
pooling and a linear classifier. Searched: the trivial over-parameterization factor ``k`` (the number
of parallel conv+BN branches of every block but the stem), one width multiplier per stage (``a1`` ..
``a4``) and whether the last five blocks of stage 3 and the stage-4 block use squeeze-excite (as S4).

Models train in *branch form* and fold into one convolution with bias per block for inference (see
:meth:`MobileOneNet.reparameterize`); parameters and MAdds are counted, and ONNX is exported, in that
folded form, as ``reference/architectures.md`` prescribes.

Three layers, kept apart: an *encoding* (6 choice indices) -> :class:`MobileOneArchArgs` (typed block
arguments) -> :class:`MobileOneNet` (the module, which never sees an encoding).
:class:`MobileOneSupernet` shares weights within each block position: a width takes the first
channels, a ``k`` the first ``k`` branches of a block that holds the largest choice.
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from core.errors import InvalidEncodingError
from core.settings import Setting, number

from . import _settings as common
from .base import Dimension, Encoding, Endpoint, SearchSpace, find_endpoints, register_space
from .counting import Cost, conv2d_cost, linear_cost
from .ssdlite import SSDLiteArgs, ssdlite_cost

if TYPE_CHECKING:  # torch is imported only when a model is built
    import torch
    from torch import nn

    from ._mobileone_nets import MobileOneNet, MobileOneSupernet

__all__ = [
    "BRANCH_CHOICES",
    "MobileOneArchArgs",
    "MobileOneBlockArgs",
    "MobileOneNet",
    "MobileOneSpace",
    "MobileOneSupernet",
    "WIDTH_CHOICES",
]

#: Choices of the over-parameterization factor ``k`` (the paper ablates 1..5 and publishes 1 and 4).
BRANCH_CHOICES: tuple[int, ...] = (1, 2, 3, 4)
#: Width multiplier choices per stage (a1..a4). Each set holds the values of S0..S4 (Table 7) and the
#: steps between them; early stages, which run at high resolution, stop lower than late ones.
WIDTH_CHOICES: tuple[tuple[float, ...], ...] = (
    (0.75, 1.0, 1.5, 2.0, 2.5, 3.0),
    (0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5),
    (1.0, 1.5, 2.0, 2.5, 3.0, 3.5),
    (1.5, 2.0, 2.5, 3.0, 3.5, 4.0),
)
_STEM_BASE = 64
_STAGE_BASE: tuple[int, ...] = (64, 128, 256, 512)
_STAGE_BLOCKS: tuple[int, ...] = (2, 8, 10, 1)
# With SE on, the last 5 network blocks of stage 3 and the stage-4 block use it (both their halves).
_STAGE_SE_BLOCKS: tuple[int, ...] = (0, 0, 5, 1)


# ---------------------------------------------------------------------------------------- block args
@dataclass(frozen=True)
class MobileOneBlockArgs:
    """Arguments of one MobileOne block (train form: ``branches`` conv+BN branches, plus a 1x1 conv+BN
    "scale" branch when ``kernel > 1`` and a BN-only identity branch when ``in_ch == out_ch`` and
    ``stride == 1``; summed, then [SE], then ReLU).

    Attributes:
        in_ch: Input channels.
        out_ch: Output channels.
        kernel: Kernel size of the conv branches (3 or 1), padding ``kernel // 2``.
        stride: Stride of every branch.
        groups: Conv groups: ``in_ch`` for a depthwise block, 1 for a full one.
        branches: The over-parameterization factor ``k``.
        se: Whether squeeze-excite follows the branch sum.
    """

    in_ch: int
    out_ch: int
    kernel: int
    stride: int
    groups: int
    branches: int
    se: bool

    @property
    def has_scale(self) -> bool:
        return self.kernel > 1

    @property
    def has_skip(self) -> bool:
        return self.in_ch == self.out_ch and self.stride == 1

    @property
    def se_squeeze(self) -> int:
        """MobileOne's SE width ``int(out_ch / 16)``, at least 1 so that narrow test models still work."""
        return max(1, self.out_ch // 16)


@dataclass(frozen=True)
class MobileOneArchArgs:
    """A decoded MobileOne architecture.

    Attributes:
        branches: The searched ``k`` (every block but the stem has this many conv branches).
        widths: The searched width multipliers ``(a1, a2, a3, a4)``.
        se: Whether the SE blocks of S4's layout are on.
        stem: The stem block (3x3, stride 2, ``k = 1``).
        blocks: The 42 MobileOne blocks after the stem (depthwise, pointwise, depthwise, ...).
        num_classes: Classifier outputs.
    """

    branches: int
    widths: tuple[float, ...]
    se: bool
    stem: MobileOneBlockArgs
    blocks: tuple[MobileOneBlockArgs, ...]
    num_classes: int


# --------------------------------------------------------------------------------------------- space
@register_space
class MobileOneSpace(SearchSpace):
    """MobileOne's skeleton with ``k``, the four stage widths and S4-style SE searched.

    Dimensions, in encoding order: ``k`` (:data:`BRANCH_CHOICES`), ``a1`` .. ``a4`` (per stage, from
    :data:`WIDTH_CHOICES`), ``se`` (off, on). Channels are ``int(base * a * width_scale)`` with bases
    (64, 128, 256, 512); the stem has ``min(int(64 * width_scale), stage-1 channels)``.

    Args:
        input_size: Side of the square input images (>= 32: the network downsamples 32x).
        num_classes: Classifier outputs (>= 2).
        width_scale: Extra channel factor on top of the searched multipliers, 1.0 as published;
            smaller values give CPU-sized models. At least 1/48, so that every layer keeps a channel.
    """

    name = "mobileone"
    SETTINGS = (
        common.input_size(224, minimum=32), common.num_classes(1000),
        # At least 1/48 (up to rounding), so that every layer keeps a channel.
        Setting("width_scale", 1.0, number(low=(1 - 1e-9) / 48), hint="e.g. width_scale=1.0 (>= 1/48)"),
        common.task("classification"), common.head_depths(),
    )
    CLASSIFIER_IDENTITY_OMITS = ("task", "head_depths")  # added with detection (see SearchSpace)
    # 1/8 of the channels, 32x32 inputs, 10 classes.
    SMALL_SETTINGS = {"input_size": 32, "num_classes": 10, "width_scale": 0.125}

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._dims = (
            Dimension("k", tuple(f"k{k}" for k in BRANCH_CHOICES)),
            *(Dimension(f"a{i + 1}", tuple(f"{a:g}x" for a in widths)) for i, widths in enumerate(WIDTH_CHOICES)),
            Dimension("se", ("no_se", "se")),
        )

    @property
    def dims(self) -> tuple[Dimension, ...]:
        return self._dims


    def _decode(self, values: Encoding) -> MobileOneArchArgs:
        k, *widths, se = values
        return self._arch(BRANCH_CHOICES[k], tuple(WIDTH_CHOICES[s][i] for s, i in enumerate(widths)), bool(se))

    def encode(self, block_args: MobileOneArchArgs) -> Encoding:
        """Return the encoding of ``block_args``; raise if they are not an architecture of this space."""
        if not isinstance(block_args, MobileOneArchArgs):
            raise InvalidEncodingError(f"mobileone: encode() takes MobileOneArchArgs, got {type(block_args).__name__}")
        try:
            encoding = (
                BRANCH_CHOICES.index(block_args.branches),
                *(choices.index(a) for choices, a in zip(WIDTH_CHOICES, block_args.widths, strict=True)),
                int(bool(block_args.se)),
            )
        except ValueError:
            encoding = None
        if encoding is None or self.decode(encoding) != block_args:
            raise InvalidEncodingError(
                f"mobileone: block arguments (k={block_args.branches}, widths={block_args.widths}, "
                f"se={block_args.se}) are not an architecture of this space with settings {self.settings}. "
                f"HINT: k in {BRANCH_CHOICES}, widths from {WIDTH_CHOICES}; encode with the space that decoded them."
            )
        return encoding

    def _net(self, arch: MobileOneArchArgs) -> MobileOneNet:
        """The stand-alone net in train (branch) form; fold it with ``reparameterize()`` (in place) or
        ``inference_form()`` (a folded copy) for inference."""
        from ._mobileone_nets import MobileOneNet

        if not self.is_detector:
            return MobileOneNet(arch)
        from ._detector_nets import SSDLiteDetector

        c4, c5 = find_endpoints(arch.stem.stride, arch.blocks)
        return SSDLiteDetector(MobileOneNet(arch, classifier=False), self._head(c4, c5), (c4.block, c5.block))

    def _supernet(self) -> nn.Module:
        """Per block position one weight-shared block for every choice (and a shared SSDLite head held at
        the widest stage widths, for a detector)."""
        from ._mobileone_nets import MobileOneSupernet

        if not self.is_detector:
            return MobileOneSupernet(self)
        from ._detector_nets import SSDLiteDetectorSupernet

        widest = self._arch(max(BRANCH_CHOICES), tuple(max(c) for c in WIDTH_CHOICES), True)
        head = self._head(*find_endpoints(widest.stem.stride, widest.blocks))
        return SSDLiteDetectorSupernet(MobileOneSupernet(self, classifier=False), self, head)

    def _head(self, c4: Endpoint, c5: Endpoint) -> SSDLiteArgs:
        return SSDLiteArgs(c4.channels, c5.channels, tuple(self.setting("head_depths")), self.setting("num_classes"))

    def supernet_blocks(self) -> tuple[tuple[MobileOneBlockArgs, bool], ...]:
        """Per block position (stem first): the largest choice's arguments and whether any choice has
        an identity branch (a stage's first pointwise block has one when its in and out widths meet)."""
        return self._supernet_blocks

    # ------------------------------------------------------------------------------------ counting
    def count(self, encoding: Sequence[int]) -> dict[str, int]:
        """Params and MAdds (per image) of the architecture in its folded inference form, computed
        analytically (no model is built); tested against :mod:`spaces.counting`'s hook counter."""
        arch = self.decode(encoding)
        cost = _block_cost(arch.stem, self.input_shape[-1])
        sizes = []
        for args in arch.blocks:
            cost = cost + _block_cost(args, cost.size)
            sizes.append(cost.size)
        if self.is_detector:
            c4, c5 = find_endpoints(arch.stem.stride, arch.blocks)
            cost = cost + ssdlite_cost(self._head(c4, c5), sizes[c4.block], cost.size)
        else:
            cost = cost + linear_cost(arch.blocks[-1].out_ch, arch.num_classes)
        return {"params": cost.params, "madds": cost.madds}

    def endpoints(self, encoding: Sequence[int]) -> tuple[Endpoint, ...]:
        """C4 (the end of stage 3, stride 16) and C5 (the end of stage 4, stride 32)."""
        arch = self.decode(encoding)
        return find_endpoints(arch.stem.stride, arch.blocks)

    # ------------------------------------------------------------------------------------- helpers
    def _ch(self, base: int, multiplier: float) -> int:
        # The epsilon keeps products such as 64 * 0.75 * s from truncating one channel below their value.
        return max(1, int(base * multiplier * self.setting("width_scale") + 1e-6))

    def _channels(self, widths: tuple[float, ...]) -> tuple[int, tuple[int, ...]]:
        stages = tuple(self._ch(base, a) for base, a in zip(_STAGE_BASE, widths))
        return min(self._ch(_STEM_BASE, 1.0), stages[0]), stages

    def _arch(self, branches: int, widths: tuple[float, ...], se: bool) -> MobileOneArchArgs:
        stem_ch, stages = self._channels(widths)
        stem = MobileOneBlockArgs(3, stem_ch, kernel=3, stride=2, groups=1, branches=1, se=False)
        blocks, in_ch = [], stem_ch
        for out_ch, depth, se_depth in zip(stages, _STAGE_BLOCKS, _STAGE_SE_BLOCKS):
            for j in range(depth):
                stride, use_se = (2 if j == 0 else 1), se and j >= depth - se_depth
                blocks.append(MobileOneBlockArgs(in_ch, in_ch, 3, stride, in_ch, branches, use_se))
                blocks.append(MobileOneBlockArgs(in_ch, out_ch, 1, 1, 1, branches, use_se))
                in_ch = out_ch
        return MobileOneArchArgs(branches, widths, se, stem, tuple(blocks), self.setting("num_classes"))

    @functools.cached_property
    def _supernet_blocks(self) -> tuple[tuple[MobileOneBlockArgs, bool], ...]:
        largest = self._arch(max(BRANCH_CHOICES), tuple(max(c) for c in WIDTH_CHOICES), True)
        positions = (largest.stem, *largest.blocks)
        skips = [False] * len(positions)
        for widths in itertools.product(*WIDTH_CHOICES):  # ~1.5k width combinations, channels only
            pairs = _in_out(*self._channels(widths))
            skips = [s or (p.stride == 1 and i == o) for s, p, (i, o) in zip(skips, positions, pairs)]
        return tuple(zip(positions, skips))


def _in_out(stem_ch: int, stages: tuple[int, ...]) -> list[tuple[int, int]]:
    """(in, out) channels of every block position (stem first) for the given channel layout."""
    pairs, in_ch = [(3, stem_ch)], stem_ch
    for out_ch, depth in zip(stages, _STAGE_BLOCKS):
        for _ in range(depth):
            pairs += [(in_ch, in_ch), (in_ch, out_ch)]
            in_ch = out_ch
    return pairs


# ----------------------------------------------------------------------------------- analytic costs
def _block_cost(args: MobileOneBlockArgs, size: int) -> Cost:
    """Cost of the folded block: one conv with bias, then the SE convs on the pooled 1x1 map."""
    cost = conv2d_cost(
        args.in_ch, args.out_ch, kernel=args.kernel, stride=args.stride, groups=args.groups, size=size, bias=True
    )
    if args.se:
        squeeze = args.se_squeeze
        se = conv2d_cost(args.out_ch, squeeze, kernel=1, size=1, bias=True)
        cost = cost.with_branch(se + conv2d_cost(squeeze, args.out_ch, kernel=1, size=1, bias=True))
    return cost
