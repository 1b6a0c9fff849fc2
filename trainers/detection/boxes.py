"""Box formats, areas, IoU and the SSD box coder.

Boxes are normalised to the image. Two layouts are used: ``xyxy`` (corners; what targets, IoU and
detections use) and ``cxcywh`` (centre and size; what anchors and the box coder use). Every function
works on the last dimension, so leading (batch) dimensions pass through.

The coder is the SSD / TF Object Detection API "faster-rcnn box coder": offsets are the centre shift in
units of the anchor size and the log size ratio, divided by :data:`VARIANCES` (the API's scale factors
10, 10, 5, 5 written as their inverses).
"""
from __future__ import annotations

import math

import torch

__all__ = [
    "VARIANCES",
    "box_area",
    "box_iou",
    "cxcywh_to_xyxy",
    "decode_boxes",
    "encode_boxes",
    "xyxy_to_cxcywh",
]

#: Divisors of the encoded ``(tx, ty, tw, th)``: they bring the offsets of matched boxes to about unit scale.
VARIANCES: tuple[float, float, float, float] = (0.1, 0.1, 0.2, 0.2)

#: Largest log size ratio decoded: exp of a wild untrained prediction must not overflow (the clamp of
#: common implementations, log(1000 / 16)).
MAX_LOG_SCALE = math.log(1000.0 / 16.0)

#: Smallest width/height encoded: a degenerate ground-truth box must give a finite (if useless) target.
_MIN_SIZE = 1e-6


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` centre/size boxes to corner boxes."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` corner boxes to centre/size boxes."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack((0.5 * (x0 + x1), 0.5 * (y0 + y1), x1 - x0, y1 - y0), dim=-1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas of ``(..., 4)`` xyxy boxes; an inverted box (x1 < x0 or y1 < y0) has area 0, not a negative one."""
    width = (boxes[..., 2] - boxes[..., 0]).clamp(min=0)
    height = (boxes[..., 3] - boxes[..., 1]).clamp(min=0)
    return width * height


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of xyxy boxes: ``a (..., n, 4)`` and ``b (..., m, 4)`` give ``(..., n, m)``.

    Leading dimensions broadcast (one IoU matrix per batch entry). A pair whose union is empty (two
    zero-area boxes) has IoU 0, never NaN.
    """
    top_left = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    bottom_right = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    overlap = (bottom_right - top_left).clamp(min=0)
    inter = overlap[..., 0] * overlap[..., 1]
    union = box_area(a)[..., :, None] + box_area(b)[..., None, :] - inter
    # Dividing by a clamped union keeps the gradient finite too; where the union is empty so is the
    # intersection, and the IoU is defined as 0.
    iou = inter / union.clamp(min=torch.finfo(union.dtype).tiny)
    return torch.where(union > 0, iou, torch.zeros_like(iou))


def encode_boxes(
    gt_cxcywh: torch.Tensor, anchors_cxcywh: torch.Tensor, variances: tuple[float, ...] = VARIANCES
) -> torch.Tensor:
    """Offsets ``(..., A, 4)`` that turn each anchor into its ground-truth box (both cxcywh, broadcasting)."""
    var = gt_cxcywh.new_tensor(variances)
    # Degenerate boxes are clamped rather than rejected: log(0) would poison the whole loss with inf.
    gt_size = gt_cxcywh[..., 2:].clamp(min=_MIN_SIZE)
    anchor_size = anchors_cxcywh[..., 2:]
    centre = (gt_cxcywh[..., :2] - anchors_cxcywh[..., :2]) / anchor_size / var[:2]
    size = torch.log(gt_size / anchor_size) / var[2:]
    return torch.cat((centre, size), dim=-1)


def decode_boxes(
    offsets: torch.Tensor, anchors_cxcywh: torch.Tensor, variances: tuple[float, ...] = VARIANCES
) -> torch.Tensor:
    """cxcywh boxes ``(..., A, 4)`` from predicted offsets ``(..., A, 4)`` and anchors ``(A, 4)``; the inverse
    of :func:`encode_boxes` (up to the clamp of the log size ratio at :data:`MAX_LOG_SCALE`)."""
    var = offsets.new_tensor(variances)
    anchor_size = anchors_cxcywh[..., 2:]
    centre = offsets[..., :2] * var[:2] * anchor_size + anchors_cxcywh[..., :2]
    size = torch.exp((offsets[..., 2:] * var[2:]).clamp(max=MAX_LOG_SCALE)) * anchor_size
    return torch.cat((centre, size), dim=-1)
