"""Greedy NMS against a brute-force reference, per-class NMS, and the SSD post-processing."""
from __future__ import annotations

import importlib
import math
import random
import time

import pytest
import torch

from trainers.detection.boxes import box_iou, cxcywh_to_xyxy, decode_boxes
from trainers.detection.nms import batched_nms, nms, postprocess

# `trainers.detection.nms` as an attribute is the function (the package re-exports it), so the module
# itself comes from the import system.
NMS_MODULE = importlib.import_module("trainers.detection.nms")


def _reference_iou(a: list[float], b: list[float]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1]) + max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _reference_nms(boxes: list[list[float]], scores: list[float], threshold: float) -> list[int]:
    """The classic algorithm, one box at a time."""
    kept: list[int] = []
    for i in sorted(range(len(scores)), key=lambda i: (-scores[i], i)):
        if all(_reference_iou(boxes[i], boxes[j]) <= threshold for j in kept):
            kept.append(i)
    return kept


def _reference_batched(boxes: list[list[float]], scores: list[float], labels: list[int], threshold: float) -> list[int]:
    kept: list[int] = []
    for label in set(labels):
        members = [i for i in range(len(labels)) if labels[i] == label]
        chosen = _reference_nms([boxes[i] for i in members], [scores[i] for i in members], threshold)
        kept += [members[i] for i in chosen]
    return sorted(kept, key=lambda i: (-scores[i], i))


def _random_case(rng: random.Random, n: int) -> tuple[list[list[float]], list[float]]:
    """Boxes on a 1/16 grid (so float32 and the reference agree exactly, ties and degenerate boxes
    included), a third of them copies of earlier ones, scores on a coarse grid (many ties)."""
    boxes: list[list[float]] = []
    for _ in range(n):
        if boxes and rng.random() < 0.3:
            boxes.append(list(rng.choice(boxes)))
            continue
        x0, y0 = rng.randrange(14) / 16, rng.randrange(14) / 16
        boxes.append([x0, y0, x0 + rng.randrange(0, 8) / 16, y0 + rng.randrange(0, 8) / 16])
    scores = [rng.randrange(8) / 8 for _ in range(n)]
    return boxes, scores


def _run_nms(boxes: list[list[float]], scores: list[float], threshold: float) -> list[int]:
    kept = nms(torch.tensor(boxes).reshape(-1, 4), torch.tensor(scores), threshold)
    assert kept.dtype == torch.int64
    return kept.tolist()


@pytest.mark.parametrize("block", [1, 3, 128])
def test_nms_matches_the_reference_on_random_sets(monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    monkeypatch.setattr(NMS_MODULE, "_BLOCK", block)  # small blocks exercise the block bookkeeping
    rng = random.Random(block)
    for _ in range(150):
        boxes, scores = _random_case(rng, rng.randrange(0, 40))
        threshold = rng.choice([0.0, 0.3, 0.5, 0.7])
        assert _run_nms(boxes, scores, threshold) == _reference_nms(boxes, scores, threshold)


def test_nms_matches_the_reference_across_several_blocks() -> None:
    rng = random.Random(7)
    for n, threshold in ((300, 0.3), (400, 0.6), (260, 0.9)):
        boxes, scores = _random_case(rng, n)
        assert _run_nms(boxes, scores, threshold) == _reference_nms(boxes, scores, threshold)


@pytest.mark.parametrize("block", [2, 128])
def test_batched_nms_matches_the_reference_per_class(monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    monkeypatch.setattr(NMS_MODULE, "_BLOCK", block)
    rng = random.Random(100 + block)
    for _ in range(100):
        boxes, scores = _random_case(rng, rng.randrange(0, 50))
        labels = [rng.randrange(4) for _ in boxes]
        threshold = rng.choice([0.3, 0.5])
        kept = batched_nms(torch.tensor(boxes).reshape(-1, 4), torch.tensor(scores), torch.tensor(labels), threshold)
        assert kept.tolist() == _reference_batched(boxes, scores, labels, threshold)


def test_boxes_of_different_labels_never_suppress_each_other() -> None:
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5]] * 3)
    kept = batched_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([1, 2, 1]), 0.5)
    assert kept.tolist() == [0, 1]


def test_equal_iou_is_not_suppressed_and_ties_keep_the_lower_index() -> None:
    boxes = [[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.25]]  # IoU exactly 0.5
    assert _run_nms(boxes, [0.9, 0.8], 0.5) == [0, 1]
    assert _run_nms(boxes, [0.9, 0.8], 0.49) == [0]
    assert _run_nms([[0.1, 0.1, 0.3, 0.3]] * 4, [0.5, 0.7, 0.7, 0.2], 0.5) == [1]


def test_empty_input_gives_empty_int64() -> None:
    kept = nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert kept.shape == (0,) and kept.dtype == torch.int64


def test_a_few_thousand_boxes_take_milliseconds() -> None:
    g = torch.Generator().manual_seed(0)
    corners = torch.rand(3000, 2, generator=g)
    boxes = torch.cat((corners, corners + 0.3 * torch.rand(3000, 2, generator=g)), dim=1)
    scores = torch.rand(3000, generator=g)
    nms(boxes[:100], scores[:100], 0.5)  # warm-up
    start = time.perf_counter()
    kept = nms(boxes, scores, 0.5)
    assert time.perf_counter() - start < 1.0  # about 0.03 s here; generous for a loaded machine
    assert torch.all(scores[kept][:-1] >= scores[kept][1:])


# --- postprocess ---------------------------------------------------------------------------------

def _log_probs(rows: list[list[float]]) -> torch.Tensor:
    """Logits whose softmax is (about) the given probabilities."""
    return torch.tensor(rows).clamp(min=1e-9).log()[None]


# Three anchors: 0 and 1 overlap heavily (IoU 0.82), 2 stands apart.
HAND_ANCHORS = torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.32, 0.3, 0.2, 0.2], [0.8, 0.8, 0.2, 0.2]])


def _hand_detections(probs: list[list[float]], **settings: float) -> dict[str, torch.Tensor]:
    (result,) = postprocess(torch.zeros(1, 3, 4), _log_probs(probs), HAND_ANCHORS, **settings)
    return result


def test_overlapping_boxes_of_one_class_keep_one_of_two_classes_keep_both() -> None:
    same = _hand_detections([[0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [1.0, 0.0, 0.0]])
    assert same["labels"].tolist() == [1]
    assert same["scores"].tolist() == pytest.approx([0.9], abs=1e-5)
    assert torch.allclose(same["boxes"], cxcywh_to_xyxy(HAND_ANCHORS[:1]))

    different = _hand_detections([[0.1, 0.9, 0.0], [0.2, 0.0, 0.8], [1.0, 0.0, 0.0]])
    assert different["labels"].tolist() == [1, 2]
    assert torch.allclose(different["boxes"], cxcywh_to_xyxy(HAND_ANCHORS[:2]))


def test_one_anchor_can_give_detections_of_several_classes() -> None:
    result = _hand_detections([[0.1, 0.45, 0.45], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    assert sorted(result["labels"].tolist()) == [1, 2]


def test_score_threshold_and_max_detections() -> None:
    probs = [[0.3, 0.7, 0.0], [0.6, 0.0, 0.4], [0.45, 0.55, 0.0]]
    assert _hand_detections(probs)["scores"].tolist() == pytest.approx([0.7, 0.55, 0.4], abs=1e-5)
    assert _hand_detections(probs, score_threshold=0.5)["scores"].tolist() == pytest.approx([0.7, 0.55], abs=1e-5)
    assert _hand_detections(probs, max_detections=1)["scores"].tolist() == pytest.approx([0.7], abs=1e-5)


def test_output_is_clipped_typed_and_sorted() -> None:
    g = torch.Generator().manual_seed(0)
    anchors = torch.tensor([[0.05, 0.95, 0.3, 0.3], [0.5, 0.5, 0.4, 0.4]])
    offsets = 3.0 * torch.randn(2, 2, 4, generator=g)
    for result in postprocess(offsets, torch.randn(2, 2, 5, generator=g), anchors, score_threshold=0.0):
        assert result["boxes"].dtype == torch.float32 and result["labels"].dtype == torch.int64
        assert result["boxes"].min() >= 0 and result["boxes"].max() <= 1
        assert result["labels"].min() >= 1 and result["labels"].max() <= 4
        assert torch.all(result["scores"][:-1] >= result["scores"][1:])
    unclipped = cxcywh_to_xyxy(decode_boxes(offsets[0], anchors))
    assert (unclipped < 0).any() or (unclipped > 1).any()  # the case does need clipping


def test_pre_nms_top_k_caps_candidates_per_class_with_ties_to_lower_anchors() -> None:
    anchors = torch.tensor([[0.1 + 0.2 * i, 0.5, 0.1, 0.1] for i in range(5)])  # disjoint
    logits = torch.zeros(1, 5, 3)  # every score equal
    (result,) = postprocess(torch.zeros(1, 5, 4), logits, anchors, pre_nms_top_k=2, score_threshold=0.0)
    assert result["labels"].tolist() == [1, 2, 1, 2]  # anchor 0 (classes 1, 2), then anchor 1
    assert torch.allclose(result["boxes"], cxcywh_to_xyxy(anchors[[0, 0, 1, 1]]))


def test_sigmoid_scores_ignore_the_background_column() -> None:
    logits = torch.tensor([[[5.0, 1.0, -1.0], [5.0, -3.0, 2.0], [5.0, -9.0, -9.0]]])
    (result,) = postprocess(torch.zeros(1, 3, 4), logits, HAND_ANCHORS, score_fn="sigmoid", score_threshold=0.1)
    # Anchor 0's class 2 (sigmoid(-1) = 0.27) is suppressed by anchor 1's (0.88); its class 1 stays.
    assert result["scores"].tolist() == pytest.approx([1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(-1.0))], abs=1e-6)
    assert result["labels"].tolist() == [2, 1]
    (softmax,) = postprocess(torch.zeros(1, 3, 4), logits, HAND_ANCHORS, score_threshold=0.1)
    assert len(softmax["scores"]) == 0  # the background column dominates a softmax


def _reference_postprocess(offsets: torch.Tensor, logits: torch.Tensor, anchors: torch.Tensor, score_threshold: float,
                           iou_threshold: float, max_detections: int, top_k: int) -> list[tuple[int, int]]:
    """(anchor, class) of the detections of one image, class by class and box by box."""
    boxes = cxcywh_to_xyxy(decode_boxes(offsets, anchors)).clamp(0, 1)
    iou = box_iou(boxes, boxes).tolist()
    probs = torch.softmax(logits, dim=-1).tolist()
    found: list[tuple[float, int, int]] = []
    for c in range(1, logits.shape[-1]):
        ranked = sorted(range(len(probs)), key=lambda a: (-probs[a][c], a))[:top_k]
        kept: list[int] = []
        for a in ranked:
            if probs[a][c] > score_threshold and all(iou[a][b] <= iou_threshold for b in kept):
                kept.append(a)
        found += [(-probs[a][c], a, c) for a in kept]
    return [(a, c) for _, a, c in sorted(found)[:max_detections]]


def test_postprocess_matches_a_reference_on_random_heads() -> None:
    g = torch.Generator().manual_seed(1)
    anchors = torch.cat((0.1 + 0.8 * torch.rand(40, 2, generator=g), 0.1 + 0.3 * torch.rand(40, 2, generator=g)), 1)
    offsets = 0.5 * torch.randn(6, 40, 4, generator=g)
    logits = 2.0 * torch.randn(6, 40, 5, generator=g)
    settings = {"score_threshold": 0.05, "iou_threshold": 0.45, "max_detections": 45, "pre_nms_top_k": 12}
    results = postprocess(offsets, logits, anchors, **settings)
    for i, result in enumerate(results):
        expected = _reference_postprocess(offsets[i], logits[i], anchors, *settings.values())
        anchor_of = [int(a) for a, _ in expected]
        assert result["labels"].tolist() == [c for _, c in expected]
        boxes = cxcywh_to_xyxy(decode_boxes(offsets[i], anchors)).clamp(0, 1)
        assert torch.equal(result["boxes"], boxes[anchor_of])
        probs = torch.softmax(logits[i], dim=-1)
        assert torch.allclose(result["scores"], probs[anchor_of, [c for _, c in expected]])
    # The case exercises both images cut at max_detections and images below it.
    assert any(len(r["scores"]) == 45 for r in results) and not all(len(r["scores"]) == 45 for r in results)
