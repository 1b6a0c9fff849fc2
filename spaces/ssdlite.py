"""The SSDLite detection head: its arguments, its anchors and its analytic cost (torch-free).

As in ``reference/architectures.md`` (seed 000 and the authors' released configs): the head reads two
backbone endpoints, C4 (stride 16) and C5 (stride 32), and makes four extra feature maps from the
previous map, each as 1x1 conv -> depth/2, depthwise 3x3 stride 2, 1x1 conv -> depth (every conv with
BN + ReLU6), depths 512, 256, 256, 128. Every one of the six maps gets a box predictor and a class
predictor, each a depthwise 3x3 (BN, ReLU6) followed by a 1x1 conv with bias, to ``anchors x 4`` box
offsets and ``anchors x num_classes`` class logits; 3 anchors per location on the first map and 6 on
the others. At 320x320 the maps are 20, 10, 5, 3, 2, 1 and there are 2034 anchors.

The network itself is in :mod:`spaces._ssdlite_nets`; this module stays free of torch so that decoding
and counting a detector stay cheap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .counting import Cost, conv2d_cost

__all__ = ["ANCHORS_PER_MAP", "EXTRA_DEPTHS", "SSDLiteArgs", "feature_map_sizes", "ssd_anchors", "ssdlite_cost"]

#: Depths of the four extra feature maps made after C5.
EXTRA_DEPTHS: tuple[int, ...] = (512, 256, 256, 128)
#: Anchors per location of the six maps (C4, C5, extras): the lowest map has 3 (reduced boxes).
ANCHORS_PER_MAP: tuple[int, ...] = (3, 6, 6, 6, 6, 6)
#: The anchor generator's settings (TF Object Detection API's ``ssd_anchor_generator`` of the configs).
MIN_SCALE, MAX_SCALE = 0.2, 0.95
ASPECT_RATIOS: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)


@dataclass(frozen=True)
class SSDLiteArgs:
    """The arguments of one SSDLite head.

    Attributes:
        c4_ch: Channels of the C4 endpoint (stride 16).
        c5_ch: Channels of the C5 endpoint (stride 32).
        extra_depths: Output depths of the extra maps made after C5.
        num_classes: Class logits per anchor, background included (91 for COCO).
    """

    c4_ch: int
    c5_ch: int
    extra_depths: tuple[int, ...] = EXTRA_DEPTHS
    num_classes: int = 91

    @property
    def map_channels(self) -> tuple[int, ...]:
        """Channels of every map the predictors read, lowest first."""
        return (self.c4_ch, self.c5_ch, *self.extra_depths)

    @property
    def anchors_per_map(self) -> tuple[int, ...]:
        return (ANCHORS_PER_MAP[0],) + (ANCHORS_PER_MAP[1],) * (1 + len(self.extra_depths))


def feature_map_sizes(c4_size: int, c5_size: int, extras: int) -> tuple[int, ...]:
    """Sides of the six maps: C4, C5, then each extra map (3x3 stride 2, padding 1) from the one before."""
    sizes = [c4_size, c5_size]
    for _ in range(extras):
        sizes.append((sizes[-1] + 2 - 3) // 2 + 1)
    return tuple(sizes)


def _anchor_shapes(num_maps: int) -> list[list[tuple[float, float]]]:
    """Per map, the (scale, aspect ratio) of each anchor of one location, in predictor order."""
    scales = [MIN_SCALE + (MAX_SCALE - MIN_SCALE) * i / (num_maps - 1) for i in range(num_maps)] + [1.0]
    shapes = [[(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]]  # the lowest map's reduced boxes
    for i in range(1, num_maps):
        per_map = [(scales[i], ratio) for ratio in ASPECT_RATIOS]
        per_map.append((math.sqrt(scales[i] * scales[i + 1]), 1.0))  # the interpolated scale
        shapes.append(per_map)
    return shapes


def ssd_anchors(map_sizes: tuple[int, ...]) -> np.ndarray:
    """Anchor boxes as ``(A, 4)`` float32 ``(cx, cy, w, h)`` normalised to the image, in head order.

    The order is the order of the head's outputs: map by map, row-major over locations, then anchor by
    anchor of one location. Centres sit at ``(j + 0.5) / size``; a box of scale ``s`` and ratio ``r``
    is ``s * sqrt(r)`` wide and ``s / sqrt(r)`` high.
    """
    shapes = _anchor_shapes(len(map_sizes))
    rows = []
    for size, per_map in zip(map_sizes, shapes):
        centres = (np.arange(size, dtype=np.float64) + 0.5) / size
        cy, cx = np.meshgrid(centres, centres, indexing="ij")
        wh = np.array([(s * math.sqrt(r), s / math.sqrt(r)) for s, r in per_map])  # (anchors, 2)
        grid = np.stack([cx.ravel(), cy.ravel()], axis=1)  # (locations, 2)
        boxes = np.concatenate(
            [np.repeat(grid, len(per_map), axis=0), np.tile(wh, (len(grid), 1))], axis=1
        )
        rows.append(boxes)
    return np.concatenate(rows).astype(np.float32)


def ssdlite_cost(args: SSDLiteArgs, c4_size: int, c5_size: int) -> Cost:
    """Params and MAdds of the head on C4 and C5 maps of the given sides (the counting convention)."""
    cost = Cost(size=c5_size)
    size, in_ch = c5_size, args.c5_ch
    for depth in args.extra_depths:
        step = conv2d_cost(in_ch, depth // 2, kernel=1, size=size, bn=True)
        step = step + conv2d_cost(depth // 2, depth // 2, kernel=3, stride=2, groups=depth // 2, size=step.size, bn=True)
        step = step + conv2d_cost(depth // 2, depth, kernel=1, size=step.size, bn=True)
        cost = cost + step
        size, in_ch = step.size, depth
    sizes = feature_map_sizes(c4_size, c5_size, len(args.extra_depths))
    for channels, side, anchors in zip(args.map_channels, sizes, args.anchors_per_map):
        for outputs in (anchors * 4, anchors * args.num_classes):
            branch = conv2d_cost(channels, channels, kernel=3, groups=channels, size=side, bn=True)
            branch = branch + conv2d_cost(channels, outputs, kernel=1, size=side, bias=True)
            cost = cost.with_branch(branch)
    return cost
