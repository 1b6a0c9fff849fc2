"""Score a candidate with the supernet's inherited weights: BN recalibration, then validation accuracy."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from spaces import SearchSpace
from core.seeding import torch_generator

from .bn import recalibrate_bn
from .data import SyntheticImageData

__all__ = ["inherit_and_calibrate", "accuracy"]


def inherit_and_calibrate(
    *, space: SearchSpace, supernet: nn.Module, encoding: Sequence[int], data: SyntheticImageData,
    bn_batches: int, bn_batch_size: int, seed: int,
) -> nn.Module:
    """A stand-alone model with the supernet's weights for ``encoding``, its BN stats recomputed.

    The calibration batches are the same for every candidate (derived from the seed alone), so
    candidates are compared on equal terms.
    """
    model = space.extract(supernet, encoding)
    n = len(data.train_y)
    perm = torch.randperm(n, generator=torch_generator(seed, "bn-calibration"))
    batches = [data.train_x[perm[i * bn_batch_size : (i + 1) * bn_batch_size]] for i in range(bn_batches)]
    recalibrate_bn(model, batches)
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on (x, y)."""
    model.eval()
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    return correct / len(y)
