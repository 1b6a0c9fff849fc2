"""The detection task's scoring: detections in COCO results format, real COCOeval, the deployable export."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from spaces import get_space
from spaces.export import export_onnx, onnx_parity
from trainers import make_dataset
from trainers.coco import CocoDataset
from trainers.detect import DetectionTask, coco_metrics
from trainers.detection import DecodedDetector, deployable


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> CocoDataset:
    root = tmp_path_factory.mktemp("coco")
    return make_dataset("coco", seed=0, settings=CocoDataset.example_settings(root))


def _ground_truth_results(dataset: CocoDataset, shift: float = 0.0) -> list[dict]:
    """Every non-crowd ground-truth box as a detection of score 1, moved right by ``shift`` of its width."""
    coco = dataset.val_coco
    out = []
    for ann in coco.dataset["annotations"]:
        if ann.get("iscrowd", 0):
            continue
        x, y, w, h = ann["bbox"]
        out.append({"image_id": ann["image_id"], "category_id": ann["category_id"], "bbox": [x + shift * w, y, w, h],
                    "score": 1.0})
    return out


def test_cocoeval_scores_ground_truth_one_and_shifted_boxes_less(dataset: CocoDataset) -> None:
    perfect = coco_metrics(dataset.val_coco, _ground_truth_results(dataset))
    assert perfect["map"] == pytest.approx(1.0) and perfect["map_50"] == pytest.approx(1.0)
    shifted = coco_metrics(dataset.val_coco, _ground_truth_results(dataset, shift=0.3))
    # IoU of a box moved by 0.3 of its width is 0.7 / 1.3 = 0.54: found at IoU 0.5, missed at 0.75.
    assert shifted["map_50"] == pytest.approx(1.0) and shifted["map_75"] == pytest.approx(0.0)
    assert 0.0 < shifted["map"] < 0.2
    assert coco_metrics(dataset.val_coco, []) == {"map": 0.0, "map_50": 0.0, "map_75": 0.0}


def test_detections_are_in_original_pixels_with_the_datasets_category_ids(dataset: CocoDataset) -> None:
    """A model that predicts each val image's first ground-truth box exactly: its detections are that box."""
    space = get_space("moga", **{**get_space("moga").small_detection_settings(), "input_size": dataset.image_size,
                                 "num_classes": dataset.num_classes})
    task = DetectionTask()
    task.bind(space)
    anchors = task.anchors
    targets = [t for _, batch in dataset.val_batches(100) for t in batch]

    class Oracle(torch.nn.Module):
        """Anchor 0 carries the first ground-truth box of the image with class logit 10; all else background."""

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            from trainers.detection import encode_boxes, xyxy_to_cxcywh

            n = x.shape[0]
            offsets = torch.zeros(n, len(anchors), 4)
            logits = torch.zeros(n, len(anchors), dataset.num_classes)
            logits[..., 0] = 10.0
            for i in range(n):
                target = targets[self.seen + i]
                offsets[i, 0] = encode_boxes(xyxy_to_cxcywh(target["boxes"][:1]), anchors[:1])[0]
                logits[i, 0, 0], logits[i, 0, int(target["labels"][0])] = 0.0, 10.0
            self.seen += n
            return offsets, logits

    oracle = Oracle()
    oracle.seen = 0
    found = task.detections(oracle, dataset, batch_size=3)
    best = {}
    for det in found:
        if det["image_id"] not in best or det["score"] > best[det["image_id"]]["score"]:
            best[det["image_id"]] = det
    assert sorted(best) == dataset.val_image_ids
    for target in targets:
        det = best[target["image_id"]]
        height, width = target["orig_size"]
        x1, y1, x2, y2 = (target["boxes"][0].double() * torch.tensor([width, height, width, height])).tolist()
        assert det["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=2e-3)
        assert det["category_id"] == dataset.category_ids[int(target["labels"][0]) - 1] in (3, 7, 11)
        assert det["score"] > 0.99
    json.dumps(found)  # plain JSON, as `hwnas evaluate --out` writes it


def test_deployable_detector_decodes_to_pixels_and_matches_onnxruntime() -> None:
    space = get_space("mobiledet", **{**get_space("mobiledet").small_detection_settings(), "input_size": 64,
                                      "stem_stride": 2, "num_classes": 4})
    model = space.build(space.default_encoding()).eval()
    deployed = deployable(space, model)
    assert isinstance(deployed, DecodedDetector) and deployable(get_space("moga", **get_space("moga").small_settings()),
                                                                model) is model
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        boxes, scores = deployed(x)
        offsets, logits = model(x)
    anchors = torch.from_numpy(space.detection_anchors())
    assert boxes.shape == (1, len(anchors), 4) and scores.shape == (1, len(anchors), 3)
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2 / 64
    expected = anchors[:, :2] + offsets[0, :, :2] * 0.1 * anchors[:, 2:]
    torch.testing.assert_close(centre[0], expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(scores, torch.softmax(logits, -1)[..., 1:])
    data = export_onnx(deployed, space.input_shape)
    assert onnx_parity(deployed, data, space.input_shape, seed=0) < 1e-4
    focal = deployable(space, copy.deepcopy(model), loss="focal")
    with torch.no_grad():
        torch.testing.assert_close(focal(x)[1], torch.sigmoid(logits[..., 1:]))


def test_task_settings_are_checked() -> None:
    from core.errors import ConfigError

    assert DetectionTask().settings["nms_iou"] == 0.6 and DetectionTask().settings["max_detections"] == 100
    with pytest.raises(ConfigError, match="must be one of hard_negative, focal"):
        DetectionTask.check_settings({"loss": "dice"})
    np.testing.assert_array_equal(DetectionTask.METRICS, ("map", "map_50", "map_75"))
