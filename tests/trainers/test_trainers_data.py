"""The synthetic dataset: deterministic for its seed, well-formed, balanced and learnable."""
from __future__ import annotations

import torch
from torch import nn

from trainers._synthetic import SyntheticImageData, make_synthetic_data

SETTINGS = {"num_classes": 10, "image_size": 32, "train_size": 512, "val_size": 256, "noise": 0.6}


def _data(seed: int = 0, **overrides: object) -> SyntheticImageData:
    return make_synthetic_data(seed=seed, **{**SETTINGS, **overrides})


def test_same_seed_gives_identical_tensors() -> None:
    a, b = _data(3), _data(3)
    for name in ("train_x", "train_y", "val_x", "val_y"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_different_seeds_give_different_data() -> None:
    a, b = _data(0), _data(1)
    assert not torch.equal(a.train_x, b.train_x)
    assert not torch.equal(a.val_x, b.val_x)
    assert not torch.equal(a.train_y, b.train_y)


def test_generation_does_not_touch_the_global_rng() -> None:
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    _data(0)
    assert torch.equal(torch.rand(4), expected)


def test_train_and_val_are_different_samples() -> None:
    d = _data(0)
    assert not torch.equal(d.train_x[: len(d.val_x)], d.val_x)


def test_shapes_dtypes_and_labels() -> None:
    d = _data(0, num_classes=7, image_size=24, train_size=300, val_size=100)
    assert d.num_classes == 7
    assert d.train_x.shape == (300, 3, 24, 24) and d.val_x.shape == (100, 3, 24, 24)
    assert d.train_y.shape == (300,) and d.val_y.shape == (100,)
    assert d.train_x.dtype == d.val_x.dtype == torch.float32
    assert d.train_y.dtype == d.val_y.dtype == torch.int64
    for y in (d.train_y, d.val_y):
        assert int(y.min()) >= 0 and int(y.max()) < 7
    assert torch.isfinite(d.train_x).all() and torch.isfinite(d.val_x).all()
    x, y = d.train_batch(torch.tensor([5, 0, 2]))
    assert torch.equal(x, d.train_x[[5, 0, 2]]) and torch.equal(y, d.train_y[[5, 0, 2]])


def test_images_are_roughly_standardised() -> None:
    d = _data(0)
    for x in (d.train_x, d.val_x):
        assert abs(float(x.mean())) < 0.1
        assert 0.8 < float(x.std()) < 1.2


def test_classes_are_balanced() -> None:
    d = _data(0, train_size=1000, val_size=300)
    for y, n in ((d.train_y, 1000), (d.val_y, 300)):
        counts = torch.bincount(y, minlength=10)
        assert int(counts.min()) >= n // 10 - 1 and int(counts.max()) <= n // 10 + 1


def test_many_classes_and_small_settings_work() -> None:
    d = _data(0, num_classes=50, image_size=16, train_size=100, val_size=50, noise=0.0)
    assert d.train_x.shape == (100, 3, 16, 16) and int(d.train_y.max()) < 50
    assert len(torch.unique(d.train_y)) == 50


def test_a_tiny_cnn_learns_it_well_above_chance() -> None:
    torch.set_num_threads(1)
    d = _data(0, train_size=2048, val_size=512)
    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 5, padding=2), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip
    with torch.no_grad():  # deterministic init from our own generator
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / p[0].numel()) ** 0.5)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(120):
        idx = torch.randint(len(d.train_y), (64,), generator=gen)
        x, y = d.train_batch(idx)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(d.val_x).argmax(1) == d.val_y).float().mean())
    assert acc > 0.35, f"val accuracy {acc:.3f}, chance is 0.1"  # 0.73 when written
