"""Greedy non-maximum suppression and the SSD post-processing that turns head outputs into detections.

NMS here is exactly the classic greedy algorithm: visit boxes by decreasing score (equal scores: lower
index first), keep a box unless a box kept before it overlaps it with IoU ``> iou_threshold``.

To be fast without a compiled kernel, the greedy pass works in numpy on blocks of ranks: one
vectorised IoU computation per block against the boxes of its label still alive, the block's own
decisions resolved together, then one suppression step (see :func:`_greedy_keep`). A few thousand
boxes take milliseconds.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from .boxes import cxcywh_to_xyxy, decode_boxes

__all__ = ["batched_nms", "class_scores", "nms", "postprocess"]

#: Ranks of a group handled per vectorised step of the greedy pass: an IoU block is at most this many
#: rows by the group's length, so memory stays bounded and suppressed boxes drop out between blocks.
_BLOCK = 128

ScoreFn = Literal["softmax", "sigmoid"]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices (int64) of the boxes greedy NMS keeps, by decreasing score (ties: lower index first).

    Args:
        boxes: ``(n, 4)`` xyxy boxes.
        scores: ``(n,)`` scores.
        iou_threshold: A box is suppressed by a kept higher-ranked box overlapping it with IoU above this.
    """
    labels = torch.zeros(scores.shape[0], dtype=torch.int64, device=scores.device)
    return batched_nms(boxes, scores, labels, iou_threshold)


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Greedy NMS within each label (boxes of different labels never suppress each other).

    Returns indices (int64) into the inputs of the kept boxes, by decreasing score over all labels
    (ties: lower index first), the same order :func:`nms` uses. Labels are compared exactly, not by
    shifting each label's boxes apart, so IoUs are the unshifted ones.
    """
    n = scores.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.int64, device=scores.device)
    order = _rank_by_score(scores)
    # Group by label, keeping score order inside each group (stable sort).
    by_label = order[torch.sort(labels[order], stable=True).indices]
    _, counts = torch.unique_consecutive(labels[by_label], return_counts=True)
    grouped = boxes[by_label].detach().cpu()
    if grouped.dtype != torch.float64:
        grouped = grouped.float()  # numpy has no half types; float32 is what the head outputs anyway
    corners = grouped.numpy().T.copy()  # (4, n): contiguous coordinate rows
    keep = _greedy_keep(corners, counts.tolist(), iou_threshold)
    kept = torch.zeros(n, dtype=torch.bool, device=scores.device)
    kept[by_label[torch.from_numpy(keep).to(scores.device)]] = True
    return order[kept[order]]


def class_scores(logits: torch.Tensor, score_fn: ScoreFn = "softmax") -> torch.Tensor:
    """Scores ``(..., C - 1)`` of the object classes 1..C-1 from logits ``(..., C)`` (class 0 is background).

    ``"softmax"`` normalises over all C classes, background included (models trained with cross-entropy,
    the hard-negative loss). ``"sigmoid"`` scores each object class on its own and ignores column 0
    (models trained with the focal loss, which never trains that column).
    """
    if score_fn == "softmax":
        return torch.softmax(logits, dim=-1)[..., 1:]
    if score_fn == "sigmoid":
        return torch.sigmoid(logits[..., 1:])
    raise ValueError(f"unknown score_fn {score_fn!r}; expected 'softmax' or 'sigmoid'")


@torch.no_grad()
def postprocess(
    box_offsets: torch.Tensor,
    logits: torch.Tensor,
    anchors_cxcywh: torch.Tensor,
    *,
    score_threshold: float = 0.01,
    iou_threshold: float = 0.6,
    max_detections: int = 100,
    pre_nms_top_k: int = 200,
    score_fn: ScoreFn = "softmax",
) -> list[dict[str, torch.Tensor]]:
    """Detections of a batch: one dict per image with ``"boxes"`` ``(d, 4)`` float32 xyxy normalised and
    clipped to [0, 1], ``"scores"`` ``(d,)`` and ``"labels"`` ``(d,)`` int64 in 1..C-1, by decreasing score.

    Multi-class, as the TF Object Detection API post-processing: every (anchor, object class) pair whose
    score is above ``score_threshold`` is a candidate, so one anchor may give detections of several
    classes. Per class only the ``pre_nms_top_k`` best-scoring anchors go on to NMS (it bounds the NMS
    work: an untrained model's near-uniform softmax puts almost every pair above 0.01). Then per-class
    NMS at ``iou_threshold`` and the best ``max_detections`` overall. Boxes are clipped before NMS, as the
    API does. Equal scores are ranked by anchor index, then class, so the output is deterministic.

    Args:
        box_offsets: ``(N, A, 4)`` predicted offsets (see :func:`trainers.detection.boxes.encode_boxes`).
        logits: ``(N, A, C)`` class logits, column 0 the background.
        anchors_cxcywh: ``(A, 4)`` anchors.
        score_fn: How logits become scores, see :func:`class_scores`.
    """
    anchors = anchors_cxcywh.to(box_offsets)
    boxes = cxcywh_to_xyxy(decode_boxes(box_offsets, anchors)).clamp(0.0, 1.0).float()
    scores = class_scores(logits, score_fn).float()
    return [
        _detect_one(boxes[i], scores[i], score_threshold=score_threshold, iou_threshold=iou_threshold,
                    max_detections=max_detections, pre_nms_top_k=pre_nms_top_k)
        for i in range(boxes.shape[0])
    ]


def _detect_one(
    boxes: torch.Tensor, scores: torch.Tensor, *, score_threshold: float, iou_threshold: float,
    max_detections: int, pre_nms_top_k: int,
) -> dict[str, torch.Tensor]:
    """Detections of one image from its clipped xyxy boxes ``(A, 4)`` and object-class scores ``(A, C-1)``."""
    candidate = _top_k_per_class(scores, pre_nms_top_k) & (scores > score_threshold)
    # nonzero walks anchor-major, so a candidate's index orders equal scores by anchor, then class.
    anchor_idx, class_idx = candidate.nonzero(as_tuple=True)
    cand_boxes = boxes[anchor_idx]
    cand_scores = scores[anchor_idx, class_idx]
    cand_labels = class_idx + 1  # column j of the scores is class j + 1
    keep = batched_nms(cand_boxes, cand_scores, cand_labels, iou_threshold)[:max_detections]
    return {"boxes": cand_boxes[keep], "scores": cand_scores[keep], "labels": cand_labels[keep].to(torch.int64)}


def _top_k_per_class(scores: torch.Tensor, k: int) -> torch.Tensor:
    """``(A, C-1)`` bool marking each class's ``k`` best-scoring anchors, equal scores by lower anchor index.

    Only the k-th best value comes from ``topk`` (its values are exact; its order among equal values is
    not specified), then ties at that value are taken by anchor index: deterministic, and much cheaper
    than a full stable sort of every column.
    """
    if k >= scores.shape[0]:
        return torch.ones_like(scores, dtype=torch.bool)
    kth_best = torch.topk(scores, k, dim=0).values[-1]  # (C-1,)
    above = scores > kth_best
    tied = scores == kth_best
    room = k - above.sum(dim=0)  # how many of the tied anchors still fit
    return above | (tied & (tied.cumsum(dim=0) <= room))


def _rank_by_score(scores: torch.Tensor) -> torch.Tensor:
    """Indices that sort ``scores`` by decreasing value, equal values by lower index first."""
    return torch.sort(scores, descending=True, stable=True).indices


def _greedy_keep(corners: np.ndarray, group_sizes: list[int], iou_threshold: float) -> np.ndarray:
    """Which boxes greedy NMS keeps, ``(n,)`` bool, given their coordinates ``(4, n)`` grouped by label
    (consecutive runs of ``group_sizes``) and by decreasing score within a group.

    Each group is walked in blocks of :data:`_BLOCK` ranks. A block compares only its boxes still alive
    with the alive boxes of the rest of its group (a box already suppressed can suppress nothing, and a
    box is never suppressed by a lower-ranked one), so the work shrinks as suppression proceeds. Inside
    the block the greedy decisions are resolved together (:func:`_resolve_block`), then the block's kept
    boxes suppress the rest of the group in one step: no Python loop over single boxes.
    """
    n = corners.shape[1]
    removed = np.zeros(n, dtype=bool)
    keep = np.zeros(n, dtype=bool)
    start = 0
    for size in group_sizes:
        end = start + size
        for block in range(start, end, _BLOCK):
            # The block's alive boxes are the first entries of the group's alive boxes from here on.
            cols = block + np.flatnonzero(~removed[block:end])
            num_rows = int(np.count_nonzero(cols < block + _BLOCK))
            if num_rows == 0:
                continue
            rows = cols[:num_rows]
            suppresses = _iou_above(corners[:, rows], corners[:, cols], iou_threshold)  # (rows, cols)
            # Within the block only a higher-ranked box (earlier row) can suppress: the strict upper triangle.
            kept = _resolve_block(np.triu(suppresses[:, :num_rows], k=1))
            keep[rows[kept]] = True
            # Marks the kept rows themselves too (IoU 1), harmless: they are never visited again.
            removed[cols[suppresses[kept].any(axis=0)]] = True
        start = end
    return keep


def _resolve_block(suppresses: np.ndarray) -> np.ndarray:
    """Greedy NMS decisions ``(R,)`` bool of R alive boxes in rank order, given which higher-ranked box
    suppresses which (``(R, R)`` strictly upper triangular).

    The greedy result is the unique ``kept`` with ``kept[j] = not any(kept[i] and suppresses[i, j])``. Jacobi
    iteration from "all kept" reaches it: after step t the first t decisions are final, so it ends within
    R steps, and in practice within a few, as chains of overlaps are short. Any fixed point is the
    unique solution, so stopping when nothing changes is exact.
    """
    kept = np.ones(suppresses.shape[0], dtype=bool)
    while True:
        updated = ~suppresses[kept].any(axis=0)
        if np.array_equal(updated, kept):
            return kept
        kept = updated


def _iou_above(a: np.ndarray, b: np.ndarray, iou_threshold: float) -> np.ndarray:
    """``(R, C)`` bool: IoU of boxes ``a`` ``(4, R)`` and ``b`` ``(4, C)`` (coordinate rows) above the threshold.

    The same arithmetic as :func:`trainers.detection.boxes.box_iou` (an empty union gives IoU 0), but
    in-place in numpy: NMS needs no gradient, and avoiding a dozen full temporaries makes it several
    times faster on large groups.
    """
    ax0, ay0, ax1, ay1 = (coord[:, None] for coord in a)
    bx0, by0, bx1, by1 = b
    inter = np.minimum(ax1, bx1)
    scratch = np.maximum(ax0, bx0)
    inter -= scratch
    np.maximum(inter, 0, out=inter)  # overlap width
    height = np.minimum(ay1, by1)
    np.maximum(ay0, by0, out=scratch)
    height -= scratch
    np.maximum(height, 0, out=height)
    inter *= height
    union = np.add(_area(a)[:, None], _area(b)[None, :], out=scratch)
    union -= inter
    np.maximum(union, np.finfo(union.dtype).tiny, out=union)
    inter /= union
    return inter > iou_threshold


def _area(corners: np.ndarray) -> np.ndarray:
    """Areas of boxes given as coordinate rows ``(4, n)``, inverted boxes counting as 0."""
    width = np.maximum(corners[2] - corners[0], 0)
    height = np.maximum(corners[3] - corners[1], 0)
    return width * height
