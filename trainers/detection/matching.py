"""SSD anchor matching: which ground-truth box, if any, each anchor learns to predict.

The rule of the SSD paper (and the TF Object Detection API's argmax matcher with
``force_match_for_each_row``):

1. **Threshold**: an anchor whose best IoU with any ground-truth box is ``>= iou_threshold`` is assigned
   that box. On an IoU tie between boxes the lower box index wins.
2. **Forced**: every ground-truth box also gets one anchor of its own, its best-IoU anchor, even below
   the threshold, so that no object goes unlearned. A forced assignment overrides the threshold
   assignment of that anchor.

Conflicts in step 2 (two boxes whose best anchor is the same) are resolved so that each box keeps an
anchor whenever one is left: boxes choose greedily, the box with the highest best IoU first (ties: lower
box index first), each taking its best anchor not already forced to another box (ties: lower anchor
index). A box that overlaps no free anchor at all (IoU 0 everywhere, such as a degenerate zero-area
box) gets no forced anchor: it has nothing to regress from.
"""
from __future__ import annotations

import torch

from .boxes import box_iou

__all__ = ["match_anchors"]


def match_anchors(anchors_xyxy: torch.Tensor, gt_xyxy: torch.Tensor, iou_threshold: float = 0.5) -> torch.Tensor:
    """Index of the ground-truth box assigned to each anchor, ``(A,)`` int64, ``-1`` for background.

    Args:
        anchors_xyxy: ``(A, 4)`` anchors as corners.
        gt_xyxy: ``(k, 4)`` ground-truth boxes as corners; ``k`` may be 0 (every anchor is background).
        iou_threshold: Smallest IoU for the threshold assignment.
    """
    num_anchors = anchors_xyxy.shape[0]
    matched = torch.full((num_anchors,), -1, dtype=torch.int64, device=anchors_xyxy.device)
    if gt_xyxy.shape[0] == 0:
        return matched

    iou = box_iou(gt_xyxy.to(anchors_xyxy), anchors_xyxy)  # (k, A)
    best_iou, best_gt = iou.max(dim=0)  # torch.max returns the first maximal index: lower box wins ties
    matched = torch.where(best_iou >= iou_threshold, best_gt, matched)

    forced_anchor, forced_gt = _forced_pairs(iou)
    matched[forced_anchor] = forced_gt
    return matched


def _forced_pairs(iou: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct (anchor, box) pairs giving each box its best free anchor, greedily in the documented order.

    ``iou`` is ``(k, A)``. The loop is over boxes only (a handful per image), each step vectorised over anchors.
    """
    num_gt = iou.shape[0]
    # Stable sort on the negated best IoU: highest first, lower box index first on ties.
    order = torch.sort(-iou.max(dim=1).values, stable=True).indices
    taken = torch.zeros(iou.shape[1], dtype=torch.bool, device=iou.device)
    anchors: list[int] = []
    boxes: list[int] = []
    for gt in order.tolist():
        row = iou[gt].masked_fill(taken, -1.0)
        anchor = int(torch.argmax(row))  # first maximal index: lower anchor wins ties
        if row[anchor] <= 0:
            continue  # no free anchor overlaps this box
        taken[anchor] = True
        anchors.append(anchor)
        boxes.append(gt)
    device = iou.device
    return (
        torch.tensor(anchors, dtype=torch.int64, device=device),
        torch.tensor(boxes, dtype=torch.int64, device=device),
    )
