"""The detection task: SSD training loss, decoding + per-class NMS, and COCO mAP scored by pycocotools.

A detector returns ``(box_offsets, logits)`` over the space's anchors (:meth:`SearchSpace.detection_anchors`,
bound with :meth:`DetectionTask.bind`). Targets are the detection datasets' (see :mod:`trainers.coco`):
per image ``boxes`` (normalised xyxy) and ``labels`` (1..C, 0 is background); validation targets add
the COCO ``image_id`` and the original ``orig_size``. Scoring writes the detections in COCO results
format, in original image pixels with the dataset's own category ids, and runs pycocotools' ``COCOeval``
against the validation annotation file itself, so ``iscrowd`` regions and areas count as COCO counts
them. This module imports torch and pycocotools only when it computes: configs validate without them.
"""
from __future__ import annotations

import contextlib
import io
import time
from typing import TYPE_CHECKING, Any

from core.settings import Setting, choice, integer, number

from .tasks import TASKS, Task

if TYPE_CHECKING:
    import torch
    from torch import nn

    from spaces import SearchSpace

    from .datasets import Dataset

__all__ = ["DetectionTask", "coco_metrics"]

#: COCOeval's summary, in its order: AP@[.5:.95], AP@.5, AP@.75, then AP@[.5:.95] by object area.
_STATS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large")


@TASKS.register("detection")
class DetectionTask(Task):
    """SSDLite detection (the MobileDets setting): train with the SSD loss, score by COCO mAP.

    Settings (the config's ``detection`` section): ``loss`` (``hard_negative``: cross-entropy on the
    positives and the hardest negatives, ``neg_pos_ratio`` of them per positive; ``focal``: sigmoid focal
    loss with ``focal_alpha`` / ``focal_gamma``), ``match_iou`` (anchor matching threshold, 0.5),
    ``nms_iou`` (0.6), ``score_threshold`` (0.01) and ``max_detections`` (100 per image).
    """

    name = "detection"
    METRICS = ("map", "map_50", "map_75")
    DETAIL_METRICS = ("map_small", "map_medium", "map_large")
    SETTINGS = (
        Setting("loss", "hard_negative", choice("hard_negative", "focal")),
        Setting("neg_pos_ratio", 3, integer(minimum=1, maximum=1000)),
        Setting("focal_alpha", 0.25, number(low=0.0, high=1.0)),
        Setting("focal_gamma", 2.0, number(low=0.0, high=10.0)),
        Setting("match_iou", 0.5, number(low=0.0, high=1.0, low_open=True)),
        Setting("nms_iou", 0.6, number(low=0.0, high=1.0, low_open=True)),
        Setting("score_threshold", 0.01, number(low=0.0, high=1.0, high_open=True)),
        Setting("max_detections", 100, integer(minimum=1, maximum=10_000)),
    )
    #: Seconds of the last :meth:`evaluate`, by phase (inference, nms, cocoeval): for benchmarks.
    #: Seconds spent in the last scoring, by part (``inference``, ``nms``, ``cocoeval``): for benchmarks.
    last_timings: dict[str, float]

    def bind(self, space: SearchSpace) -> None:
        import torch

        self.anchors = torch.from_numpy(space.detection_anchors())

    def _anchors(self) -> torch.Tensor:
        anchors = getattr(self, "anchors", None)
        if anchors is None:
            raise RuntimeError("DetectionTask.bind(space) must be called before the task computes")
        return anchors

    def loss(self, outputs: tuple[torch.Tensor, torch.Tensor], targets: list[dict[str, Any]]) -> torch.Tensor:
        from .detection import ssd_loss

        s = self.settings
        # fp32 whatever the autocast: anchors matched and boxes decoded in bf16 would move by pixels.
        loss, _ = ssd_loss(*(o.float() for o in outputs), self._anchors(), targets, kind=s["loss"], iou_threshold=s["match_iou"],
                           neg_pos_ratio=s["neg_pos_ratio"], alpha=s["focal_alpha"], gamma=s["focal_gamma"])
        return loss

    def distill_loss(self, outputs: tuple[torch.Tensor, torch.Tensor],
                     teacher: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        from .detection.loss import distill_loss

        return distill_loss(*(o.float() for o in outputs), *(t.float() for t in teacher), kind=self.settings["loss"])

    def batch_correct(self, outputs: tuple[torch.Tensor, torch.Tensor], targets: list[dict[str, Any]]) -> tuple[int, int]:
        """Positive anchors (matched to an object) whose top class is the object's: the progress figure."""
        from .detection import cxcywh_to_xyxy, match_anchors

        logits = outputs[1].detach()
        anchors = cxcywh_to_xyxy(self._anchors().to(logits.device))
        correct = count = 0
        for i, target in enumerate(targets):
            matched = match_anchors(anchors, target["boxes"], iou_threshold=self.settings["match_iou"])
            positive = matched >= 0
            if positive.any():
                want = target["labels"][matched[positive]]
                correct += int((logits[i][positive].argmax(-1) == want).sum())
                count += int(positive.sum())
        return correct, count

    def detections(self, model: nn.Module, dataset: Dataset, *, batch_size: int) -> list[dict[str, Any]]:
        """The model's detections on the validation split in COCO results format: ``image_id``,
        ``category_id`` (the dataset's own ids), ``bbox`` ``[x, y, w, h]`` in original image pixels, ``score``."""
        import torch

        from .compute import module_device
        from .detection import postprocess

        s = self.settings
        model.eval()
        device = module_device(model)
        results: list[dict[str, Any]] = []
        inference = nms = 0.0
        with torch.no_grad():
            for x, targets in dataset.val_batches(batch_size):
                began = time.perf_counter()
                boxes, logits = (o.float() for o in model(x.to(device)))
                middle = time.perf_counter()
                found = postprocess(boxes, logits, self._anchors(), score_threshold=s["score_threshold"],
                                    iou_threshold=s["nms_iou"], max_detections=s["max_detections"],
                                    score_fn="sigmoid" if s["loss"] == "focal" else "softmax")
                nms += time.perf_counter() - middle
                inference += middle - began
                for target, det in zip(targets, found):
                    results.extend(_coco_results(det, target, dataset.category_ids))
        self.last_timings = {"inference": inference, "nms": nms}
        return results

    def evaluate(self, model: nn.Module, dataset: Dataset, *, batch_size: int) -> dict[str, float]:
        return self.score_detections(self.detections(model, dataset, batch_size=batch_size), dataset)

    def score_detections(self, results: list[dict[str, Any]], dataset: Dataset) -> dict[str, float]:
        """COCOeval of :meth:`detections`' results on the dataset's validation images."""
        began = time.perf_counter()
        metrics = coco_metrics(dataset.val_coco, results, image_ids=dataset.val_image_ids)
        self.last_timings = {**getattr(self, "last_timings", {}), "cocoeval": time.perf_counter() - began}
        return metrics


def _coco_results(det: dict[str, Any], target: dict[str, Any], category_ids: list[int]) -> list[dict[str, Any]]:
    height, width = target["orig_size"]
    boxes = det["boxes"].cpu().double() * _scale(width, height)
    out = []
    for (x1, y1, x2, y2), score, label in zip(boxes.tolist(), det["scores"].tolist(), det["labels"].tolist()):
        out.append({"image_id": int(target["image_id"]), "category_id": int(category_ids[label - 1]),
                    "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                    "score": round(float(score), 6)})
    return out


def _scale(width: int, height: int) -> torch.Tensor:
    import torch

    return torch.tensor([width, height, width, height], dtype=torch.float64)


def coco_metrics(coco_gt: Any, results: list[dict[str, Any]], image_ids: list[int] | None = None) -> dict[str, float]:
    """``COCOeval`` (bbox) of ``results`` against ``coco_gt`` on ``image_ids`` (default: every image of
    ``coco_gt``; a dataset passes the images it scored, so one skipped as unreadable is not a miss).

    Returns ``map``, ``map_50``, ``map_75`` (0.0 when nothing was detected) and, where the validation
    set has objects of that size, ``map_small`` / ``map_medium`` / ``map_large``. pycocotools' printing
    is kept off the console.
    """
    from pycocotools.cocoeval import COCOeval

    if not results:  # loadRes refuses an empty list; no detection scores 0 everywhere
        return {name: 0.0 for name in _STATS[:3]}
    with contextlib.redirect_stdout(io.StringIO()):
        detections = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, detections, "bbox")
        evaluator.params.imgIds = sorted(image_ids if image_ids is not None else coco_gt.getImgIds())
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [float(v) for v in evaluator.stats[: len(_STATS)]]
    # COCOeval writes -1 where no ground truth falls in a range: undefined, so not reported.
    return {name: max(0.0, v) if i < 3 else v for i, (name, v) in enumerate(zip(_STATS, stats)) if i < 3 or v >= 0}
