"""SSD anchor matching: threshold and forced assignments, conflicts between boxes, empty images."""
from __future__ import annotations

import random

import torch

from spaces.ssdlite import ssd_anchors
from trainers.detection.boxes import box_iou, cxcywh_to_xyxy
from trainers.detection.matching import match_anchors

# Four anchors: A0 and A1 overlap strongly (IoU 0.82), A2 and A3 stand apart.
ANCHORS = torch.tensor([
    [0.00, 0.00, 0.20, 0.20],
    [0.02, 0.00, 0.22, 0.20],
    [0.60, 0.60, 0.80, 0.80],
    [0.50, 0.00, 0.70, 0.20],
])


def _match(gt: list[list[float]], anchors: torch.Tensor = ANCHORS, threshold: float = 0.5) -> list[int]:
    result = match_anchors(anchors, torch.tensor(gt).reshape(-1, 4), threshold)
    assert result.dtype == torch.int64 and result.shape == (anchors.shape[0],)
    return result.tolist()


def test_threshold_assigns_every_anchor_above_it() -> None:
    # IoU 0.905 with both A0 and A1, 0 with the others.
    assert _match([[0.01, 0.0, 0.21, 0.2]]) == [0, 0, -1, -1]
    # Above a stricter threshold nothing but the forced anchor (the lower index of the tie) remains.
    assert _match([[0.01, 0.0, 0.21, 0.2]], threshold=0.95) == [0, -1, -1, -1]


def test_best_anchor_is_forced_below_the_threshold() -> None:
    gt = [[0.6, 0.6, 0.7, 0.7]]
    assert box_iou(torch.tensor(gt), ANCHORS)[0, 2] < 0.5
    assert _match(gt) == [-1, -1, 0, -1]


def test_two_boxes_take_their_own_anchors() -> None:
    assert _match([[0.0, 0.0, 0.2, 0.2], [0.5, 0.0, 0.7, 0.2]]) == [0, 0, -1, 1]


def test_boxes_sharing_a_best_anchor_both_keep_one_and_forced_beats_threshold() -> None:
    big = [0.0, 0.0, 0.2, 0.2]  # IoU 1 with A0, 0.82 with A1
    small = [0.0, 0.0, 0.2, 0.1]  # IoU 0.5 with A0 (its best), 0.43 with A1
    iou = box_iou(torch.tensor([big, small]), ANCHORS)
    assert iou[1].argmax() == 0 and iou[1, 1] < 0.5 < iou[0, 1]
    # The big box has the stronger claim on A0; the small one gets A1, overriding A1's threshold
    # assignment to the big box. The result does not depend on the order of the boxes.
    assert _match([big, small]) == [0, 1, -1, -1]
    assert _match([small, big]) == [1, 0, -1, -1]


def test_iou_tie_between_boxes_goes_to_the_lower_index() -> None:
    anchors = torch.cat((ANCHORS, torch.tensor([[0.0, 0.01, 0.2, 0.21]])))
    same = [0.01, 0.0, 0.21, 0.2]
    # Forced: box 0 takes A0 (tied with A1, lower anchor), box 1 takes A1; A4 is a threshold tie.
    assert _match([same, same], anchors) == [0, 1, -1, -1, 0]


def test_no_boxes_means_all_background() -> None:
    assert _match([]) == [-1, -1, -1, -1]


def test_degenerate_box_gets_no_anchor() -> None:
    assert _match([[0.65, 0.65, 0.65, 0.65]]) == [-1, -1, -1, -1]
    assert _match([[0.65, 0.65, 0.65, 0.65], [0.5, 0.0, 0.7, 0.2]]) == [-1, -1, -1, 1]


def _reference_match(anchors: list[list[float]], gts: list[list[float]], threshold: float) -> list[int]:
    """The documented rule, written out loop by loop."""
    iou = box_iou(torch.tensor(gts), torch.tensor(anchors)).tolist()  # (k, A)
    matched = []
    for a in range(len(anchors)):
        column = [iou[g][a] for g in range(len(gts))]
        best = max(column)
        matched.append(column.index(best) if best >= threshold else -1)
    taken: set[int] = set()
    for g in sorted(range(len(gts)), key=lambda g: (-max(iou[g]), g)):
        free = [(iou[g][a], -a) for a in range(len(anchors)) if a not in taken]
        value, negative_anchor = max(free)
        if value > 0:
            taken.add(-negative_anchor)
            matched[-negative_anchor] = g
    return matched


def test_matches_the_reference_rule_on_random_cases() -> None:
    rng = random.Random(0)

    def box() -> list[float]:
        x0, y0 = rng.randrange(12) / 16, rng.randrange(12) / 16
        return [x0, y0, x0 + rng.randrange(1, 5) / 16, y0 + rng.randrange(1, 5) / 16]

    for _ in range(120):
        anchors = [box() for _ in range(rng.randrange(1, 25))]
        gts = [box() for _ in range(rng.randrange(0, 6))]
        threshold = rng.choice([0.3, 0.5, 0.7])
        expected = _reference_match(anchors, gts, threshold) if gts else [-1] * len(anchors)
        assert _match(gts, torch.tensor(anchors), threshold) == expected


def test_every_box_gets_a_distinct_anchor_on_the_ssdlite_anchors() -> None:
    anchors = cxcywh_to_xyxy(torch.from_numpy(ssd_anchors((20, 10, 5, 3, 2, 1))))
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        k = int(torch.randint(1, 12, (1,), generator=g))
        corners = torch.rand(k, 2, generator=g) * 0.8
        gt = torch.cat((corners, corners + 0.03 + 0.17 * torch.rand(k, 2, generator=g)), dim=1)
        matched = match_anchors(anchors, gt)
        assert set(matched[matched >= 0].tolist()) == set(range(k))
        assert torch.equal(matched, match_anchors(anchors, gt))
