"""The MoGA networks: a stand-alone :class:`MogaNet` and the one-shot :class:`MogaSupernet`.

Kept apart from :mod:`spaces.moga` so that decoding, validating and counting never import torch.
"""
from __future__ import annotations


import torch
from torch import nn

from ._block_args import MBBlockArgs
from ._blocks import ConvBNAct, DepthwiseSeparable, MBBlock, make_activation
from ._elastic import ElasticMBBlock
from ._layerwise import LayerwiseSupernet
from .moga import MogaArchArgs, MogaFixedArgs

__all__ = ["MogaNet", "MogaSupernet"]


class _MogaTrunk(nn.Module):
    """Stem, fixed first block and tail shared (same module names) by MogaNet and MogaSupernet.

    Equal names are what lets :meth:`MogaSpace.extract` copy a path's weights by state-dict key.
    """

    def __init__(self, fixed: MogaFixedArgs, tail_in: int) -> None:
        super().__init__()
        self.fixed = fixed
        self.stem = ConvBNAct(3, fixed.stem_ch, kernel=3, stride=fixed.stem_stride, act="hswish")
        self.first = DepthwiseSeparable(fixed.stem_ch, fixed.first_ch, kernel=3, act="relu")
        self.last = ConvBNAct(tail_in, fixed.last_ch, kernel=1, act="hswish")
        # MobileNetV3's head: a 1x1 conv after pooling, with no BN and (in MoGA) no bias.
        self.head = nn.Conv2d(fixed.last_ch, fixed.head_ch, 1, bias=False)
        self.head_act = make_activation("hswish")
        self.dropout = nn.Dropout(fixed.dropout)
        self.classifier = nn.Linear(fixed.head_ch, fixed.num_classes)

    def forward_tail(self, x: torch.Tensor) -> torch.Tensor:
        x = self.last(x).mean((2, 3), keepdim=True)
        x = self.head_act(self.head(x)).flatten(1)
        return self.classifier(self.dropout(x))


class MogaNet(_MogaTrunk):
    """A stand-alone MoGA network built from decoded arguments.

    Args:
        arch: The decoded architecture (see :meth:`MogaSpace.decode`).

    Input ``(N, 3, H, W)`` float tensors; output ``(N, num_classes)`` logits. Constructed directly it
    gets torch's default initialisation; :meth:`MogaSpace.build` gives the seeded MobileNet-style one.
    """

    def __init__(self, arch: MogaArchArgs) -> None:
        super().__init__(arch.fixed, tail_in=arch.blocks[-1].out_ch)
        self.arch = arch
        self.blocks = nn.Sequential(*(MBBlock(args) for args in arch.blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_tail(self.blocks(self.first(self.stem(x))))


class MogaSupernet(LayerwiseSupernet, _MogaTrunk):
    """Single-path one-shot supernet with weights shared within each searched layer.

    Every searched layer holds one :class:`ElasticMBBlock` at the layer's largest choice (``t6k7SE``);
    each of its 12 choices runs on a slice of those weights (first ``in*t`` hidden channels, centre
    ``k x k`` of the 7x7 depthwise kernel, first ``hidden // 4`` SE channels), so every training step
    updates every layer. Stem, first block and tail are shared too. A step gives gradients and BN
    running-stat updates only to the slices its path uses; SE weights get no gradient without SE.

    Args:
        fixed: The shared fixed parts.
        choices: Per searched layer, the block arguments of each candidate, in choice-index order.
    """

    def __init__(self, fixed: MogaFixedArgs, choices: tuple[tuple[MBBlockArgs, ...], ...]) -> None:
        super().__init__(fixed, tail_in=choices[-1][0].out_ch)
        self.choices = choices
        self.blocks = nn.ModuleList(ElasticMBBlock(_largest(layer)) for layer in choices)


def _largest(layer: tuple[MBBlockArgs, ...]) -> MBBlockArgs:
    """The choice whose weights hold every other choice of ``layer`` (largest expansion and kernel, SE)."""
    largest = max(layer, key=lambda a: (a.expansion, a.kernel, a.se))
    if not all(a.expansion <= largest.expansion and a.kernel <= largest.kernel for a in layer) or not largest.se:
        raise ValueError(f"the choices of a supernet layer must all fit in one of them, got {layer}")
    return largest
