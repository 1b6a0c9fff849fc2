"""The SSD loss: finite on empty images, the hard-negative rule, hand values, focal option, and that it trains."""
from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from spaces.ssdlite import ssd_anchors
from trainers.detection.boxes import cxcywh_to_xyxy, encode_boxes, xyxy_to_cxcywh
from trainers.detection.loss import distill_loss, select_hard_negatives, ssd_loss
from trainers.detection.matching import match_anchors

ANCHORS = torch.from_numpy(ssd_anchors((4, 2, 1, 1, 1, 1)))  # 96 anchors
NUM_ANCHORS = ANCHORS.shape[0]
NUM_CLASSES = 4


def _target(boxes: list[list[float]], labels: list[int]) -> dict[str, Any]:
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "image_id": 7,  # extra keys must be ignored
    }


EMPTY = _target([], [])
TWO_OBJECTS = _target([[0.1, 0.1, 0.45, 0.5], [0.5, 0.55, 0.95, 0.9]], [1, 3])
ONE_OBJECT = _target([[0.2, 0.3, 0.7, 0.6]], [2])


def _head(batch: int, seed: int = 0, requires_grad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    offsets = torch.randn(batch, NUM_ANCHORS, 4, generator=g).requires_grad_(requires_grad)
    logits = torch.randn(batch, NUM_ANCHORS, NUM_CLASSES, generator=g).requires_grad_(requires_grad)
    return offsets, logits


def _matched_classes(target: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per anchor: matched box index (-1 background) and class to learn, from the (tested) matcher."""
    matched = match_anchors(cxcywh_to_xyxy(ANCHORS), target["boxes"])
    labels = target["labels"]
    if len(labels) == 0:
        return matched, torch.zeros_like(matched)
    return matched, torch.where(matched >= 0, labels[matched.clamp(min=0)], 0)


def test_empty_images_give_a_finite_loss_that_trains_the_background() -> None:
    offsets, logits = _head(2, requires_grad=True)
    loss, stats = ssd_loss(offsets, logits, ANCHORS, [EMPTY, EMPTY])
    assert torch.isfinite(loss) and loss > 0
    assert stats["positives"] == 0 and stats["box_loss"] == 0.0 and stats["cls_loss"] > 0
    loss.backward()
    assert torch.isfinite(logits.grad).all() and offsets.grad.abs().sum() == 0
    # Each empty image trains neg_pos_ratio * 1 = 3 negatives, towards the background class.
    trained = logits.grad.abs().sum(dim=-1) > 0
    assert trained.sum(dim=1).tolist() == [3, 3]
    assert (logits.grad[..., 0][trained] < 0).all()


def test_select_hard_negatives_counts_and_picks_the_hardest() -> None:
    g = torch.Generator().manual_seed(0)
    loss = torch.rand(3, 20, generator=g)
    positive = torch.zeros(3, 20, dtype=torch.bool)
    positive[0, [3, 9]] = True  # 2 positives -> 6 negatives
    positive[2, :6] = True  # 6 positives -> 18 wanted, only 14 negatives exist
    loss[0, 3] = 10.0  # a positive with the highest loss must not be picked as a negative
    chosen = select_hard_negatives(loss, positive, neg_pos_ratio=3)
    assert chosen.sum(dim=1).tolist() == [6, 3, 14]  # an empty image (row 1) gets 3 * 1
    assert not (chosen & positive).any()
    for i in range(3):
        negatives = [(float(loss[i, a]), a) for a in range(20) if not positive[i, a]]
        hardest = {a for _, a in sorted(negatives, reverse=True)[: int(chosen[i].sum())]}
        assert set(torch.nonzero(chosen[i]).flatten().tolist()) == hardest


def test_select_hard_negatives_breaks_ties_by_lower_anchor() -> None:
    positive = torch.zeros(1, 10, dtype=torch.bool)
    positive[0, 1] = True
    chosen = select_hard_negatives(torch.ones(1, 10), positive, neg_pos_ratio=2)
    assert torch.nonzero(chosen[0]).flatten().tolist() == [0, 2]


def test_cls_loss_is_positives_plus_the_hardest_three_negatives_per_positive() -> None:
    offsets, logits = _head(3, seed=1)
    targets = [TWO_OBJECTS, EMPTY, ONE_OBJECT]
    _, stats = ssd_loss(offsets, logits, ANCHORS, targets)
    total, positives = 0.0, 0
    for i, target in enumerate(targets):
        _, classes = _matched_classes(target)
        ce = F.cross_entropy(logits[i], classes, reduction="none").tolist()
        pos = [a for a in range(NUM_ANCHORS) if classes[a] > 0]
        neg = sorted((a for a in range(NUM_ANCHORS) if classes[a] == 0), key=lambda a: -ce[a])
        total += sum(ce[a] for a in pos) + sum(ce[a] for a in neg[: 3 * max(len(pos), 1)])
        positives += len(pos)
    assert stats["positives"] == positives > 2
    assert stats["cls_loss"] == pytest.approx(total / positives, rel=1e-5)


@pytest.mark.parametrize(("error", "per_positive"), [(0.0, 0.0), (0.5, 4 * 0.5 * 0.25), (2.0, 4 * 1.5)])
def test_box_loss_is_smooth_l1_per_positive(error: float, per_positive: float) -> None:
    matched, classes = _matched_classes(TWO_OBJECTS)
    gt = TWO_OBJECTS["boxes"][matched.clamp(min=0)]
    offsets = (encode_boxes(xyxy_to_cxcywh(gt), ANCHORS) + error)[None]
    # Background anchors get wild offsets: they must not count.
    offsets[0, classes == 0] = 50.0
    _, stats = ssd_loss(offsets, torch.zeros(1, NUM_ANCHORS, NUM_CLASSES), ANCHORS, [TWO_OBJECTS])
    assert stats["box_loss"] == pytest.approx(per_positive, abs=1e-5)


@pytest.mark.parametrize("kind", ["hard_negative", "focal"])
def test_loss_decreases_when_optimising_free_outputs(kind: str) -> None:
    offsets = torch.zeros(2, NUM_ANCHORS, 4, requires_grad=True)
    logits = torch.zeros(2, NUM_ANCHORS, NUM_CLASSES, requires_grad=True)
    # The loss is a mean over few positives, so free outputs take a large step size.
    optimiser = torch.optim.SGD([offsets, logits], lr=3.0)
    targets = [TWO_OBJECTS, ONE_OBJECT]
    history = []
    for _ in range(50):
        optimiser.zero_grad()
        loss, _ = ssd_loss(offsets, logits, ANCHORS, targets, kind=kind)
        loss.backward()
        optimiser.step()
        history.append(float(loss.detach()))
    assert history[-1] < 0.3 * history[0]
    assert all(math.isfinite(value) for value in history)


def _reference_focal(logits: torch.Tensor, classes: torch.Tensor, alpha: float, gamma: float) -> float:
    total = 0.0
    for a in range(logits.shape[0]):
        for c in range(1, logits.shape[1]):
            p = 1.0 / (1.0 + math.exp(-float(logits[a, c])))
            if classes[a] == c:
                total += -alpha * (1 - p) ** gamma * math.log(p)
            else:
                total += -(1 - alpha) * p ** gamma * math.log(1 - p)
    return total


def test_focal_matches_the_formula_ignores_column_zero_and_differs_from_hard_negative() -> None:
    offsets, logits = _head(2, seed=2, requires_grad=True)
    targets = [ONE_OBJECT, EMPTY]
    loss, stats = ssd_loss(offsets, logits, ANCHORS, targets, kind="focal", alpha=0.3, gamma=1.5)
    expected = sum(_reference_focal(logits[i].detach(), _matched_classes(t)[1], 0.3, 1.5) for i, t in enumerate(targets))
    assert stats["cls_loss"] == pytest.approx(expected / stats["positives"], rel=1e-5)
    loss.backward()
    assert logits.grad[..., 0].abs().sum() == 0 and logits.grad[..., 1:].abs().sum() > 0
    _, hard_stats = ssd_loss(offsets, logits, ANCHORS, targets)
    assert hard_stats["box_loss"] == pytest.approx(stats["box_loss"])
    assert hard_stats["cls_loss"] != pytest.approx(stats["cls_loss"], rel=1e-2)


def test_extra_keys_are_ignored_and_results_are_deterministic() -> None:
    offsets, logits = _head(2, seed=3)
    plain = [{"boxes": t["boxes"], "labels": t["labels"]} for t in (TWO_OBJECTS, ONE_OBJECT)]
    first, first_stats = ssd_loss(offsets, logits, ANCHORS, [TWO_OBJECTS, ONE_OBJECT])
    second, second_stats = ssd_loss(offsets, logits, ANCHORS, plain)
    assert torch.equal(first, second) and first_stats == second_stats
    assert set(first_stats) == {"positives", "box_loss", "cls_loss"}


def test_bad_inputs_raise() -> None:
    offsets, logits = _head(1)
    with pytest.raises(ValueError, match="labels"):
        ssd_loss(offsets, logits, ANCHORS, [_target([[0.1, 0.1, 0.4, 0.4]], [0])])  # 0 is background
    with pytest.raises(ValueError, match="labels"):
        ssd_loss(offsets, logits, ANCHORS, [_target([[0.1, 0.1, 0.4, 0.4]], [NUM_CLASSES])])
    with pytest.raises(ValueError, match="targets"):
        ssd_loss(offsets, logits, ANCHORS, [EMPTY, EMPTY])
    with pytest.raises(ValueError, match="kind"):
        ssd_loss(offsets, logits, ANCHORS, [EMPTY], kind="hinge")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- distillation (supernet.distill)
@pytest.mark.parametrize("kind", ["hard_negative", "focal"])
def test_distill_loss_is_smallest_where_the_student_matches_the_teacher(kind: str) -> None:
    gen = torch.Generator().manual_seed(0)
    teacher = (torch.randn(2, 30, 4, generator=gen), 2 * torch.randn(2, 30, 5, generator=gen))
    student = [t.clone().requires_grad_(True) for t in teacher]
    at_teacher = distill_loss(*student, *teacher, kind=kind)
    at_teacher.backward()
    for tensor in student:  # the soft cross-entropy and the smooth L1 are both stationary there
        torch.testing.assert_close(tensor.grad, torch.zeros_like(tensor.grad), atol=1e-6, rtol=0)
    moved = distill_loss(teacher[0] + 0.5, teacher[1] + torch.randn(2, 30, 5, generator=gen), *teacher, kind=kind)
    assert float(moved) > float(at_teacher.detach())


def test_distill_loss_leaves_boxes_free_where_the_teacher_sees_background() -> None:
    logits = torch.zeros(1, 3, 4)
    logits[0, :, 0] = 50.0  # the teacher is sure every anchor is background...
    logits[0, 1, 0], logits[0, 1, 2] = -50.0, 50.0  # ...but anchor 1, which holds class 2
    teacher_boxes = torch.zeros(1, 3, 4)
    student_boxes = torch.zeros(1, 3, 4, requires_grad=True)
    distill_loss(student_boxes + torch.tensor([1.0, 2.0, 3.0])[None, :, None], logits, teacher_boxes, logits).backward()
    grad = student_boxes.grad[0].abs().sum(-1)
    assert float(grad[1]) > 0 and float(grad[0]) < 1e-12 and float(grad[2]) < 1e-12
    # the class part is the cross-entropy against the teacher's softmax, averaged over anchors
    student_logits = torch.randn(1, 3, 4, generator=torch.Generator().manual_seed(1))
    cls = distill_loss(teacher_boxes, student_logits, teacher_boxes, logits)
    expected = F.cross_entropy(student_logits[0], logits[0].softmax(-1))
    torch.testing.assert_close(cls, expected)
