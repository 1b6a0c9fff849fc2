"""A detector as it is deployed: box decoding inside the model, so the exported graph gives boxes in pixels.

:class:`DecodedDetector` wraps a space's detector (``(offsets, logits)`` over the anchors) and returns
``boxes`` ``(N, A, 4)`` as ``x1, y1, x2, y2`` in input pixels and ``scores`` ``(N, A, C - 1)``, one column
per object class (softmax over all classes for the hard-negative loss, sigmoid for the focal loss).
Non-maximum suppression is left outside the graph, as TFLite's and ONNX Runtime's own NMS are
deployment choices: apply per-class NMS with IoU 0.6, score threshold 0.01 and the top 100 per image
to match hwnas' scoring (:func:`trainers.detection.postprocess` is that step in torch).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .boxes import cxcywh_to_xyxy, decode_boxes
from .nms import class_scores

__all__ = ["DecodedDetector", "deployable"]


class DecodedDetector(nn.Module):
    """``model``'s offsets decoded against ``anchors`` into pixel boxes, and its logits into class scores.

    Args:
        model: A detector returning ``(offsets, logits)``.
        anchors: ``(A, 4)`` cxcywh anchors normalised to the image.
        input_size: Side of the square input, in pixels.
        score_fn: ``softmax`` or ``sigmoid`` (see :func:`trainers.detection.class_scores`).
    """

    onnx_output_names = ("boxes", "scores")

    def __init__(self, model: nn.Module, anchors: torch.Tensor, input_size: int, score_fn: str = "softmax") -> None:
        super().__init__()
        self.model = model
        self.register_buffer("anchors", anchors.clone().float(), persistent=False)
        self.input_size = int(input_size)
        self.score_fn = score_fn

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        offsets, logits = self.model(x)
        boxes = cxcywh_to_xyxy(decode_boxes(offsets, self.anchors)) * float(self.input_size)
        return boxes, class_scores(logits, self.score_fn)

    def inference_form(self) -> DecodedDetector:
        """The same wrapper around the model's inference form (MobileOne folds its branches)."""
        fold = getattr(self.model, "inference_form", None)
        if fold is None:
            return self
        return DecodedDetector(fold(), self.anchors, self.input_size, self.score_fn).eval()


def deployable(space: Any, model: nn.Module, *, loss: str = "hard_negative") -> nn.Module:
    """``model`` as exported and timed: a detector with its box decoding; any other model as it is."""
    if not space.is_detector:
        return model
    score_fn = "sigmoid" if loss == "focal" else "softmax"
    wrapper = DecodedDetector(model, torch.from_numpy(space.detection_anchors()), space.input_shape[-1], score_fn)
    return wrapper.train(model.training)  # in the model's mode: exporting restores the wrapper's
