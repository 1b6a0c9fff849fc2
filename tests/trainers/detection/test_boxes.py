"""Box formats, areas, IoU and the SSD box coder: hand values, edge cases and round trips."""
from __future__ import annotations

import math

import pytest
import torch

from trainers.detection.boxes import (
    MAX_LOG_SCALE,
    VARIANCES,
    box_area,
    box_iou,
    cxcywh_to_xyxy,
    decode_boxes,
    encode_boxes,
    xyxy_to_cxcywh,
)


def _random_cxcywh(n: int, generator: torch.Generator) -> torch.Tensor:
    centre = torch.rand(n, 2, generator=generator)
    size = 0.02 + 0.9 * torch.rand(n, 2, generator=generator)
    return torch.cat((centre, size), dim=1)


def test_format_conversion_hand_value_and_round_trip() -> None:
    box = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    assert torch.allclose(cxcywh_to_xyxy(box), torch.tensor([[0.4, 0.3, 0.6, 0.7]]))
    boxes = _random_cxcywh(50, torch.Generator().manual_seed(0))
    assert torch.allclose(xyxy_to_cxcywh(cxcywh_to_xyxy(boxes)), boxes, atol=1e-6)


def test_box_area_and_inverted_boxes() -> None:
    boxes = torch.tensor([[0.1, 0.2, 0.4, 0.6], [0.5, 0.5, 0.5, 0.9], [0.6, 0.6, 0.4, 0.9]])
    assert torch.allclose(box_area(boxes), torch.tensor([0.3 * 0.4, 0.0, 0.0]))


def test_box_iou_hand_cases() -> None:
    a = torch.tensor([[0.0, 0.0, 0.4, 0.2]])
    cases = {
        (0.0, 0.0, 0.4, 0.2): 1.0,  # identical
        (0.5, 0.5, 0.9, 0.9): 0.0,  # disjoint
        (0.4, 0.0, 0.8, 0.2): 0.0,  # touching edges only
        (0.2, 0.0, 0.6, 0.2): 1.0 / 3.0,  # half of each overlaps: 0.04 / (0.08 + 0.08 - 0.04)
        (0.0, 0.0, 0.2, 0.2): 0.5,  # the left half of a, inside it
    }
    b = torch.tensor(list(cases))
    iou = box_iou(a, b)
    assert iou.shape == (1, len(cases))
    assert torch.allclose(iou[0], torch.tensor(list(cases.values())), atol=1e-6)


def test_box_iou_zero_area_boxes_give_zero_not_nan() -> None:
    point = torch.tensor([[0.3, 0.3, 0.3, 0.3]])
    line = torch.tensor([[0.1, 0.5, 0.9, 0.5]])
    box = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    everything = torch.cat((point, line, box))
    iou = box_iou(everything, everything)
    assert not torch.isnan(iou).any()
    expected = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert torch.equal(iou, expected)


def test_box_iou_gradient_is_finite_on_degenerate_pairs() -> None:
    a = torch.tensor([[0.3, 0.3, 0.3, 0.3], [0.1, 0.1, 0.5, 0.5]], requires_grad=True)
    b = torch.tensor([[0.3, 0.3, 0.3, 0.3], [0.2, 0.2, 0.6, 0.6]])
    box_iou(a, b).sum().backward()
    assert torch.isfinite(a.grad).all()
    assert a.grad[1].abs().sum() > 0


def test_box_iou_broadcasts_over_a_batch_dimension() -> None:
    g = torch.Generator().manual_seed(1)
    a = cxcywh_to_xyxy(_random_cxcywh(6, g)).view(2, 3, 4)
    b = cxcywh_to_xyxy(_random_cxcywh(10, g)).view(2, 5, 4)
    batched = box_iou(a, b)
    assert batched.shape == (2, 3, 5)
    for i in range(2):
        assert torch.equal(batched[i], box_iou(a[i], b[i]))


def test_encode_hand_value() -> None:
    anchor = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    gt = torch.tensor([[0.52, 0.46, 0.4, 0.1]])
    expected = torch.tensor([[1.0, -2.0, math.log(2.0) / 0.2, math.log(0.5) / 0.2]])
    assert torch.allclose(encode_boxes(gt, anchor), expected, atol=1e-5)
    assert VARIANCES == (0.1, 0.1, 0.2, 0.2)


def test_encode_decode_round_trip_random() -> None:
    g = torch.Generator().manual_seed(2)
    anchors = _random_cxcywh(300, g)
    gt = _random_cxcywh(300, g)
    offsets = encode_boxes(gt, anchors)
    assert torch.allclose(decode_boxes(offsets, anchors), gt, atol=1e-5)
    variances = (0.2, 0.3, 0.5, 0.4)
    assert torch.allclose(decode_boxes(encode_boxes(gt, anchors, variances), anchors, variances), gt, atol=1e-5)


def test_decode_broadcasts_over_the_batch() -> None:
    g = torch.Generator().manual_seed(3)
    anchors = _random_cxcywh(20, g)
    offsets = torch.randn(3, 20, 4, generator=g)
    decoded = decode_boxes(offsets, anchors)
    assert decoded.shape == (3, 20, 4)
    for i in range(3):
        assert torch.allclose(decoded[i], decode_boxes(offsets[i], anchors))


def test_decode_clamps_huge_size_offsets() -> None:
    anchors = torch.tensor([[0.5, 0.5, 0.1, 0.2]])
    decoded = decode_boxes(torch.tensor([[0.0, 0.0, 1e4, 1e4]]), anchors)
    assert torch.isfinite(decoded).all()
    scale = math.exp(MAX_LOG_SCALE)
    assert decoded[0, 2:].tolist() == pytest.approx([0.1 * scale, 0.2 * scale], rel=1e-5)


def test_encode_of_a_degenerate_box_is_finite() -> None:
    anchors = torch.tensor([[0.5, 0.5, 0.1, 0.1]])
    assert torch.isfinite(encode_boxes(torch.tensor([[0.5, 0.5, 0.0, 0.1]]), anchors)).all()
