"""A learnable synthetic image-classification dataset generated from the experiment seed.

Each class owns a prototype built from a few oriented colour gratings and a coloured blob; a sample is
its class prototype, randomly shifted, scaled in contrast, blended with a distractor from another class
and covered in noise. Telling classes apart needs spatial filters of several sizes, so bigger or better
shaped networks learn it better: supernet accuracy separates architectures instead of noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from spaces.seeding import torch_generator

__all__ = ["SyntheticImageData", "make_synthetic_data"]


@dataclass(frozen=True)
class SyntheticImageData:
    """Tensors of one generated dataset: images are float32 NCHW, labels int64."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    num_classes: int

    def train_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.train_x[indices], self.train_y[indices]


def _prototypes(num_classes: int, size: int, gen: torch.Generator) -> torch.Tensor:
    coords = torch.linspace(-1.0, 1.0, size)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    protos = torch.zeros(num_classes, 3, size, size)
    for c in range(num_classes):
        for _ in range(3):  # three gratings of random orientation, frequency and colour per class
            angle = torch.rand(1, generator=gen).item() * math.pi
            freq = 1.5 + torch.rand(1, generator=gen).item() * 4.5
            phase = torch.rand(1, generator=gen).item() * 2 * math.pi
            colour = torch.randn(3, 1, 1, generator=gen)
            wave = torch.sin(freq * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) + phase)
            protos[c] += colour * wave
        centre = torch.rand(2, generator=gen) * 1.2 - 0.6
        width = 0.15 + torch.rand(1, generator=gen).item() * 0.25
        blob = torch.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * width**2))
        protos[c] += 2.0 * torch.randn(3, 1, 1, generator=gen) * blob
    return protos / protos.flatten(1).std(dim=1).view(-1, 1, 1, 1)


def _draw(protos: torch.Tensor, n: int, noise: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    num_classes, _, size, _ = protos.shape
    labels = torch.randint(num_classes, (n,), generator=gen)
    distractors = (labels + torch.randint(1, num_classes, (n,), generator=gen)) % num_classes
    max_shift = max(1, size // 8)
    shifts = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=gen)
    contrast = 0.6 + 0.8 * torch.rand(n, 1, 1, 1, generator=gen)
    blend = 0.3 * torch.rand(n, 1, 1, 1, generator=gen)
    images = contrast * protos[labels] + blend * protos[distractors]
    for i in range(n):  # per-sample translation; cheap at these sizes and done once
        images[i] = torch.roll(images[i], shifts=(int(shifts[i, 0]), int(shifts[i, 1])), dims=(1, 2))
    images += noise * torch.randn(images.shape, generator=gen)
    return images.contiguous(), labels


def make_synthetic_data(
    *, seed: int, num_classes: int, image_size: int, train_size: int, val_size: int, noise: float
) -> SyntheticImageData:
    """Generate the dataset; the same arguments always give the same tensors."""
    protos = _prototypes(num_classes, image_size, torch_generator(seed, "data", "prototypes"))
    train_x, train_y = _draw(protos, train_size, noise, torch_generator(seed, "data", "train"))
    val_x, val_y = _draw(protos, val_size, noise, torch_generator(seed, "data", "val"))
    return SyntheticImageData(train_x, train_y, val_x, val_y, num_classes)
