"""The SSDLite head as an ``nn.Module`` (see :mod:`spaces.ssdlite` for its layout and anchors)."""
from __future__ import annotations

import torch
from torch import nn

from ._blocks import ConvBNAct
from .ssdlite import SSDLiteArgs

__all__ = ["SSDLiteHead"]


def _predictor(channels: int, outputs: int) -> nn.Sequential:
    """Depthwise 3x3 (BN, ReLU6) -> 1x1 conv with bias: one box or class predictor of one map."""
    return nn.Sequential(
        ConvBNAct(channels, channels, kernel=3, groups=channels, act="relu6"),
        nn.Conv2d(channels, outputs, 1, bias=True),
    )


def _extra(in_ch: int, depth: int) -> nn.Sequential:
    """One extra map: 1x1 -> depth/2, depthwise 3x3 stride 2, 1x1 -> depth (each BN + ReLU6)."""
    half = depth // 2
    return nn.Sequential(
        ConvBNAct(in_ch, half, kernel=1, act="relu6"),
        ConvBNAct(half, half, kernel=3, stride=2, groups=half, act="relu6"),
        ConvBNAct(half, depth, kernel=1, act="relu6"),
    )


class SSDLiteHead(nn.Module):
    """Extra maps after C5 and the per-map box and class predictors.

    ``forward(c4, c5)`` returns ``(boxes, logits)``: ``(N, A, 4)`` box offsets and ``(N, A, num_classes)``
    class logits, anchors in the order of :func:`spaces.ssdlite.ssd_anchors`.
    """

    def __init__(self, args: SSDLiteArgs) -> None:
        super().__init__()
        self.args = args
        ins = (args.c5_ch, *args.extra_depths[:-1])
        self.extras = nn.ModuleList(_extra(i, d) for i, d in zip(ins, args.extra_depths))
        pairs = list(zip(args.map_channels, args.anchors_per_map))
        self.box = nn.ModuleList(_predictor(ch, anchors * 4) for ch, anchors in pairs)
        self.cls = nn.ModuleList(_predictor(ch, anchors * args.num_classes) for ch, anchors in pairs)

    def forward(self, c4: torch.Tensor, c5: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps, x = [c4, c5], c5
        for extra in self.extras:
            x = extra(x)
            maps.append(x)
        n = c4.shape[0]
        # (N, anchors*K, H, W) -> (N, H*W*anchors, K): location-major, then anchor, as ssd_anchors orders them.
        boxes = [head(m).permute(0, 2, 3, 1).reshape(n, -1, 4) for head, m in zip(self.box, maps)]
        logits = [head(m).permute(0, 2, 3, 1).reshape(n, -1, self.args.num_classes) for head, m in zip(self.cls, maps)]
        return torch.cat(boxes, dim=1), torch.cat(logits, dim=1)
