"""Batch-norm recalibration: a sampled path of a supernet needs its own BN statistics."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

__all__ = ["recalibrate_bn"]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Replace every BN layer's running statistics by their exact average over ``batches``.

    Momentum ``None`` makes PyTorch keep a cumulative average, so the result does not depend on the
    order of the batches, only on their content.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    from .compute import module_device

    device = module_device(model)  # the calibration images come from the CPU
    was_training = model.training
    model.train()
    try:
        for x in batches:
            model(x.to(device))
    finally:
        for m, momentum in zip(bns, saved):
            m.momentum = momentum
        model.train(was_training)
