"""SSD detection math in plain torch: box formats and coder, anchor matching, the training loss, NMS and
post-processing. Anchors come from :func:`spaces.ssdlite.ssd_anchors` as ``(A, 4)`` cxcywh."""
from __future__ import annotations

from .deploy import DecodedDetector, deployable
from .boxes import VARIANCES, box_area, box_iou, cxcywh_to_xyxy, decode_boxes, encode_boxes, xyxy_to_cxcywh
from .loss import select_hard_negatives, ssd_loss
from .matching import match_anchors
from .nms import batched_nms, class_scores, nms, postprocess

__all__ = [
    "DecodedDetector",
    "VARIANCES",
    "batched_nms",
    "box_area",
    "box_iou",
    "class_scores",
    "cxcywh_to_xyxy",
    "decode_boxes",
    "deployable",
    "encode_boxes",
    "match_anchors",
    "nms",
    "postprocess",
    "select_hard_negatives",
    "ssd_loss",
    "xyxy_to_cxcywh",
]
