"""Score a candidate with the supernet's inherited weights: BN recalibration, then the task's metrics."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from spaces import SearchSpace

from .bn import recalibrate_bn
from .datasets import Dataset
from .tasks import Task

__all__ = ["inherit_and_calibrate", "score"]


def inherit_and_calibrate(
    *, space: SearchSpace, supernet: nn.Module, encoding: Sequence[int], dataset: Dataset, bn_batches: int,
    bn_batch_size: int,
) -> nn.Module:
    """A stand-alone model with the supernet's weights for ``encoding``, its BN statistics recomputed on
    the dataset's calibration images (the same for every candidate), in eval mode."""
    model = space.extract(supernet, encoding)
    recalibrate_bn(model, dataset.calibration_images(bn_batches, bn_batch_size))
    return model.eval()


def score(task: Task, model: nn.Module, dataset: Dataset, *, batch_size: int) -> dict[str, float]:
    """The task's metrics of ``model`` on the dataset's validation split."""
    return task.evaluate(model, dataset, batch_size=batch_size)
