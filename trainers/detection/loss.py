"""The SSD training loss: anchor matching, smooth-L1 box regression and a classification loss.

Two classification losses are offered:

* ``"hard_negative"`` (SSD): softmax cross-entropy over all C classes on every positive anchor and on
  the hardest negatives of each image (highest background loss), ``neg_pos_ratio`` of them per positive.
  An image with no positive anchor still contributes ``neg_pos_ratio`` negatives (as if it had one
  positive): otherwise empty images would teach the background class nothing.
* ``"focal"`` (RetinaNet): sigmoid focal loss on the object classes 1..C-1 of every anchor; a
  background anchor is all zeros there. Logit column 0 is not used (it gets no gradient), so such a
  model is scored with ``postprocess(..., score_fn="sigmoid")``.

Both are summed with the box loss and divided by the number of positive anchors in the batch (at least 1).
"""
from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F

from .boxes import cxcywh_to_xyxy, encode_boxes, xyxy_to_cxcywh
from .matching import match_anchors

__all__ = ["distill_loss", "select_hard_negatives", "ssd_loss"]

LossKind = Literal["hard_negative", "focal"]


def ssd_loss(
    box_offsets: torch.Tensor,
    logits: torch.Tensor,
    anchors_cxcywh: torch.Tensor,
    targets: Sequence[dict[str, Any]],
    *,
    kind: LossKind = "hard_negative",
    iou_threshold: float = 0.5,
    neg_pos_ratio: int = 3,
    alpha: float = 0.25,
    gamma: float = 2.0,
) -> tuple[torch.Tensor, dict[str, float | int]]:
    """The loss of a batch (a differentiable scalar) and its parts for logging.

    Args:
        box_offsets: ``(N, A, 4)`` predicted offsets.
        logits: ``(N, A, C)`` class logits, column 0 the background.
        anchors_cxcywh: ``(A, 4)`` anchors.
        targets: One dict per image with ``"boxes"`` ``(k, 4)`` xyxy normalised and ``"labels"`` ``(k,)``
            in 1..C-1; ``k`` may be 0; other keys are ignored.
        kind: ``"hard_negative"`` or ``"focal"`` (see the module docstring).
        iou_threshold: IoU for an anchor to be positive (see :func:`trainers.detection.matching.match_anchors`).
        neg_pos_ratio: Hard negatives per positive (``"hard_negative"`` only).
        alpha, gamma: Focal loss weight of the positive targets and focusing exponent (``"focal"`` only).

    Returns:
        ``(loss, stats)`` with stats ``{"positives": int, "box_loss": float, "cls_loss": float}``, the two
        losses normalised as in the total.
    """
    if len(targets) != box_offsets.shape[0]:
        raise ValueError(f"{len(targets)} targets for a batch of {box_offsets.shape[0]}")
    anchors = anchors_cxcywh.to(box_offsets)
    cls_targets, box_targets = _assign_targets(anchors, targets, logits.shape[-1], iou_threshold)
    positive = cls_targets > 0
    num_pos = int(positive.sum())
    normaliser = float(max(num_pos, 1))

    box_loss = F.smooth_l1_loss(box_offsets[positive], box_targets[positive], beta=1.0, reduction="sum")
    if kind == "hard_negative":
        cls_loss = _hard_negative_ce(logits, cls_targets, positive, neg_pos_ratio)
    elif kind == "focal":
        cls_loss = _focal(logits, cls_targets, alpha, gamma)
    else:
        raise ValueError(f"unknown loss kind {kind!r}; expected 'hard_negative' or 'focal'")

    box_loss, cls_loss = box_loss / normaliser, cls_loss / normaliser
    stats: dict[str, float | int] = {
        "positives": num_pos, "box_loss": float(box_loss.detach()), "cls_loss": float(cls_loss.detach()),
    }
    return box_loss + cls_loss, stats


def distill_loss(
    box_offsets: torch.Tensor, logits: torch.Tensor, teacher_offsets: torch.Tensor, teacher_logits: torch.Tensor,
    *, kind: LossKind = "hard_negative",
) -> torch.Tensor:
    """A student detector learning a teacher's outputs on the same anchors (in-place distillation).

    Classes: per anchor, cross-entropy against the teacher's softmax (``"hard_negative"``) or binary
    cross-entropy against its sigmoids on the object classes (``"focal"``), averaged over the anchors.
    Boxes: smooth L1 to the teacher's offsets, weighted by the teacher's belief that the anchor holds an
    object (1 - background probability, or its top object sigmoid) and normalised by those weights, so
    that the background anchors, where the teacher's offsets mean nothing, do not steer the boxes.
    """
    teacher_logits, teacher_offsets = teacher_logits.detach(), teacher_offsets.detach()
    if kind == "focal":
        target = torch.sigmoid(teacher_logits[..., 1:])
        cls = F.binary_cross_entropy_with_logits(logits[..., 1:], target, reduction="none").sum(-1).mean()
        foreground = target.max(-1).values
    else:
        probs = teacher_logits.softmax(-1)
        cls = -(probs * logits.log_softmax(-1)).sum(-1).mean()
        foreground = 1.0 - probs[..., 0]
    box = F.smooth_l1_loss(box_offsets, teacher_offsets, beta=1.0, reduction="none").sum(-1)
    return cls + (foreground * box).sum() / foreground.sum().clamp(min=1e-6)


def select_hard_negatives(background_loss: torch.Tensor, positive: torch.Tensor, neg_pos_ratio: int) -> torch.Tensor:
    """The negatives each image trains on, ``(N, A)`` bool: its ``neg_pos_ratio * max(positives, 1)``
    negative anchors with the highest ``background_loss`` (fewer if it has fewer negatives).

    Equal losses are ranked by lower anchor index, so the choice is deterministic. ``background_loss``
    is only ranked, never differentiated.
    """
    num_pos = positive.sum(dim=1)
    num_neg = torch.minimum(neg_pos_ratio * num_pos.clamp(min=1), positive.shape[1] - num_pos)
    ranked = background_loss.detach().masked_fill(positive, float("-inf"))
    order = torch.sort(ranked, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    # Positives rank last (-inf) and num_neg never exceeds the negatives, so no positive is selected.
    return rank < num_neg[:, None]


def _assign_targets(
    anchors_cxcywh: torch.Tensor, targets: Sequence[dict[str, Any]], num_classes: int, iou_threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per anchor of every image: the class to learn ``(N, A)`` int64 (0 = background) and the encoded
    offsets of its matched box ``(N, A, 4)`` (zeros for background; never used there)."""
    anchors_xyxy = cxcywh_to_xyxy(anchors_cxcywh)
    device = anchors_cxcywh.device
    classes, offsets = [], []
    with torch.no_grad():
        for target in targets:
            gt_boxes = target["boxes"].to(anchors_cxcywh).reshape(-1, 4)
            gt_labels = target["labels"].to(device=device, dtype=torch.int64).reshape(-1)
            _check_labels(gt_labels, num_classes)
            matched = match_anchors(anchors_xyxy, gt_boxes, iou_threshold)
            if gt_boxes.shape[0] == 0:
                classes.append(torch.zeros_like(matched))
                offsets.append(torch.zeros_like(anchors_cxcywh))
                continue
            index = matched.clamp(min=0)
            classes.append(torch.where(matched >= 0, gt_labels[index], torch.zeros_like(matched)))
            offsets.append(encode_boxes(xyxy_to_cxcywh(gt_boxes[index]), anchors_cxcywh))
    return torch.stack(classes), torch.stack(offsets)


def _check_labels(labels: torch.Tensor, num_classes: int) -> None:
    """Labels must be object classes: 0 is background and would silently turn an object into one."""
    if labels.numel() and (int(labels.min()) < 1 or int(labels.max()) >= num_classes):
        raise ValueError(f"target labels must lie in 1..{num_classes - 1}, got {labels.tolist()}")


def _hard_negative_ce(
    logits: torch.Tensor, cls_targets: torch.Tensor, positive: torch.Tensor, neg_pos_ratio: int
) -> torch.Tensor:
    """Summed cross-entropy over the positives and the selected hard negatives of every image."""
    ce = F.cross_entropy(logits.flatten(0, 1), cls_targets.flatten(), reduction="none").view_as(cls_targets)
    # A negative's target is 0, so its cross-entropy is its background loss: the mining criterion.
    chosen = positive | select_hard_negatives(ce, positive, neg_pos_ratio)
    return ce[chosen].sum()


def _focal(logits: torch.Tensor, cls_targets: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Summed sigmoid focal loss over the object classes (columns 1..C-1) of every anchor."""
    object_logits = logits[..., 1:]
    one_hot = F.one_hot(cls_targets, logits.shape[-1])[..., 1:].to(object_logits)  # background: all zeros
    ce = F.binary_cross_entropy_with_logits(object_logits, one_hot, reduction="none")
    prob = torch.sigmoid(object_logits)
    prob_true = prob * one_hot + (1 - prob) * (1 - one_hot)
    weight = alpha * one_hot + (1 - alpha) * (1 - one_hot)
    return (weight * (1 - prob_true) ** gamma * ce).sum()
