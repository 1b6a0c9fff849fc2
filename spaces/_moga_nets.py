"""The MoGA network parts: the MobileNetV3-Large trunk, MB blocks, and the elastic block of the supernet.

Kept apart from :mod:`spaces.moga` so that decoding, validating and counting never import torch.

Weight sharing: every searched layer holds one :class:`~spaces._elastic.ElasticMBBlock` at the
layer's largest choice (``t6k7SE``); each of its 12 choices runs on a slice of those weights (first
``in*t`` hidden channels, centre ``k x k`` of the 7x7 depthwise kernel, first ``hidden // 4`` SE
channels), so every training step updates every layer. SE weights get no gradient without SE. With
``supernet.kernel_weights: per_kernel`` the 3x3 and 5x5 choices have depthwise weights of their own.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from core.errors import InvalidEncodingError

from ._block_args import MBBlockArgs
from ._blocks import ConvBNAct, DepthwiseSeparable, MBBlock, make_activation
from ._elastic import ElasticMBBlock
from ._layerwise import LayerwiseParts

if TYPE_CHECKING:
    from .moga import MogaFixedArgs

__all__ = ["MogaParts"]


class MogaParts(LayerwiseParts):
    """Stem, depthwise-separable first block, MB blocks, and MobileNetV3's tail with MoGA's head conv."""

    def trunk(self, fixed: MogaFixedArgs, tail_in: int) -> dict[str, nn.Module]:
        return {
            "stem": ConvBNAct(3, fixed.stem_ch, kernel=3, stride=fixed.stem_stride, act="hswish"),
            "first": DepthwiseSeparable(fixed.stem_ch, fixed.first_ch, kernel=3, act="relu"),
            "last": ConvBNAct(tail_in, fixed.last_ch, kernel=1, act="hswish"),
            # MobileNetV3's head: a 1x1 conv after pooling, with no BN and (in MoGA) no bias.
            "head": nn.Conv2d(fixed.last_ch, fixed.head_ch, 1, bias=False),
            "head_act": make_activation("hswish"),
            "dropout": nn.Dropout(fixed.dropout),
            "classifier": nn.Linear(fixed.head_ch, fixed.num_classes),
        }

    def block(self, args: MBBlockArgs) -> nn.Module:
        return MBBlock(args)

    def elastic(self, choices: tuple[MBBlockArgs, ...], kernel_weights: str = "shared") -> nn.Module:
        kernels = tuple(a.kernel for a in choices) if kernel_weights == "per_kernel" else None
        return ElasticMBBlock(_largest(choices), kernels)

    def forward_tail(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        x = net.last(x).mean((2, 3), keepdim=True)
        x = net.head_act(net.head(x)).flatten(1)
        return net.classifier(net.dropout(x))


def _largest(layer: tuple[MBBlockArgs, ...]) -> MBBlockArgs:
    """The choice whose weights hold every other choice of ``layer`` (largest expansion and kernel, SE)."""
    largest = max(layer, key=lambda a: (a.expansion, a.kernel, a.se))
    if not all(a.expansion <= largest.expansion and a.kernel <= largest.kernel for a in layer) or not largest.se:
        raise InvalidEncodingError(f"the choices of a supernet layer must all fit in one of them, got {layer}")
    return largest
