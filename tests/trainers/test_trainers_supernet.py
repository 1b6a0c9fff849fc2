"""Supernet training resumes bit for bit from its checkpoint; BN recalibration is order-free."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spaces import get_space
from trainers import SupernetTrainer, SupernetTrainSettings, make_synthetic_data, recalibrate_bn
from trainers.supernet import load_supernet

SETTINGS = SupernetTrainSettings(steps=8, batch_size=16, lr=0.1, momentum=0.9, weight_decay=4e-5,
                                 label_smoothing=0.1, checkpoint_every=4, threads=1)


@pytest.fixture(scope="module")
def space_and_data():
    space = get_space("moga", width_mult=0.25, input_size=32, num_classes=4, stem_stride=2, dropout=0.0)
    data = make_synthetic_data(seed=3, num_classes=4, image_size=32, train_size=64, val_size=32, noise=0.5)
    return space, data


def _trainer(space, data, path: Path) -> SupernetTrainer:
    return SupernetTrainer(space=space, data=data, settings=SETTINGS, seed=11, checkpoint_path=path)


def test_resumed_training_equals_uninterrupted(tmp_path: Path, space_and_data) -> None:
    space, data = space_and_data
    straight = _trainer(space, data, tmp_path / "a.pt")
    straight.train_steps(8)

    first = _trainer(space, data, tmp_path / "b.pt")
    first.train_steps(5)  # checkpoint written at step 4; step 5 is lost with the "crash"
    resumed = _trainer(space, data, tmp_path / "b.pt")
    assert resumed.step == 4
    resumed.train_steps(8)
    assert resumed.step == 8
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_checkpoint_of_another_space_is_refused(tmp_path: Path, space_and_data) -> None:
    from spaces import ExperimentError

    space, data = space_and_data
    trainer = _trainer(space, data, tmp_path / "c.pt")
    trainer.train_steps(4)
    other = get_space("moga", width_mult=0.5, input_size=32, num_classes=4, stem_stride=2, dropout=0.0)
    with pytest.raises(ExperimentError, match="does not belong"):
        load_supernet(tmp_path / "c.pt", other)


def test_bn_recalibration_is_independent_of_batch_order(space_and_data) -> None:
    space, data = space_and_data
    model = space.build((3,) * 14)
    batches = [data.train_x[i * 16 : (i + 1) * 16] for i in range(4)]
    recalibrate_bn(model, batches)
    first = [m.running_mean.clone() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    recalibrate_bn(model, list(reversed(batches)))
    second = [m.running_mean.clone() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
