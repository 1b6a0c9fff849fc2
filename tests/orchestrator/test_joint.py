"""The joint search (TuNAS): the controller learns while the supernet trains, holds still during its
warm-up, and a killed trainer resumes bit for bit, controller included."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import ConfigError, ExperimentError
from orchestrator.joint import JointSettings, check_joint_settings
from orchestrator.joint_trainer import JointTrainer, candidates_of
from spaces import get_space
from trainers import ClassificationTask, SupernetTrainSettings, SyntheticDataset


@pytest.fixture(scope="module")
def space_and_data():
    space = get_space("moga", width_mult=0.25, input_size=32, num_classes=4, stem_stride=2, dropout=0.0)
    data = SyntheticDataset(seed=3, num_classes=4, image_size=32, train_size=64, val_size=32, noise=0.5)
    return space, data


def _cheap_first_choice(path) -> float:
    """A cost model in which only choice 0 of the first layer meets the 1 ms target."""
    return 1.0 if path[0] == 0 else 3.0


def _trainer(space, data, path: Path, *, steps: int = 8, warmup: float = 0.25, lr: float = 0.05,
             checkpoint_every: int = 4):
    settings = SupernetTrainSettings(steps=steps, batch_size=16, lr=0.05, momentum=0.9, weight_decay=4e-5,
                                     label_smoothing=0.0, checkpoint_every=checkpoint_every, threads=1)
    joint = JointSettings(cost_target=1.0, tau=-0.5, warmup=warmup, lr=lr, reward_batch_size=16, reward_batches=2,
                          candidates=3)
    return JointTrainer(joint=joint, cost_fn=_cheap_first_choice, space=space, task=ClassificationTask(),
                        dataset=data, settings=settings, seed=5, checkpoint_path=path)


def test_the_controller_moves_toward_the_better_choice(tmp_path: Path, space_and_data) -> None:
    space, data = space_and_data
    trainer = _trainer(space, data, tmp_path / "a.pt", steps=60, warmup=0.25, lr=0.1, checkpoint_every=60)
    info = trainer.train_steps(60)
    first = trainer.controller.probabilities()[0]
    assert first[0] == first.max() and first[0] > 3.0 / space.dims[0].size  # from uniform 1/12 to a clear lead
    assert info["controller_steps"] == 60 - 15 and len(info["probabilities"]) == len(space.dims)
    assert {"reward", "quality", "cost", "entropy", "argmax"} <= set(info)
    top = candidates_of(trainer)
    assert top[0] == trainer.controller.argmax() and top[0][0] == 0 and len(set(top)) == 3


def test_the_warmup_holds_the_logits_fixed(tmp_path: Path, space_and_data) -> None:
    space, data = space_and_data
    trainer = _trainer(space, data, tmp_path / "w.pt", steps=8, warmup=0.5)
    assert trainer.warmup_steps == 4
    trainer.train_steps(4)
    assert trainer.controller.steps == 0 and all(not z.any() for z in trainer.controller.logits)
    assert trainer.controller.baseline is not None  # the warm-up's rewards make the first update's baseline
    trainer.train_steps(1)
    assert trainer.controller.steps == 1 and any(z.any() for z in trainer.controller.logits)


def test_a_killed_joint_search_resumes_bit_for_bit(tmp_path: Path, space_and_data) -> None:
    space, data = space_and_data
    straight = _trainer(space, data, tmp_path / "s.pt", warmup=0.25)
    straight.train_steps(8)
    _trainer(space, data, tmp_path / "k.pt", warmup=0.25).train_steps(6)  # checkpoint at 4; steps 5-6 are lost
    resumed = _trainer(space, data, tmp_path / "k.pt", warmup=0.25)
    assert resumed.step == 4 and resumed.controller.steps == 2
    resumed.train_steps(8)
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert straight.controller.state() == resumed.controller.state()
    with pytest.raises(ExperimentError, match="no joint search with these settings"):
        _trainer(space, data, tmp_path / "k.pt", warmup=0.5)


@pytest.mark.parametrize(("raw", "pattern"), [
    ({"cost_target": 0}, "'cost_target': must be a finite number > 0"),
    ({"cost_target": -1.0}, "cost_target"),
    ({"cost_target": 1.0, "warmup": 1.0}, "'warmup': must be a finite number in \\[0, 1\\)"),
    ({"cost_target": 1.0, "warmup": -0.1}, "'warmup'"),
    ({"cost_target": 1.0, "reward": "relative"}, "'reward': must be one of absolute, mnas"),
    ({}, "'cost_target': is required"),
])
def test_bad_joint_settings_are_named(raw: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        check_joint_settings(raw)


def test_most_probable_is_the_top_of_the_product_distribution() -> None:
    from itertools import product

    from searchers import ReinforceController

    controller = ReinforceController(sizes=[3, 2, 4])
    rng = np.random.default_rng(1)
    controller.logits = [rng.normal(size=n) for n in controller.sizes]  # no ties between products
    probs = controller.probabilities()
    ranked = sorted(product(*(range(n) for n in controller.sizes)),
                    key=lambda a: -np.prod([p[i] for p, i in zip(probs, a)]))
    assert controller.most_probable(7) == ranked[:7]
    assert controller.most_probable(100) == ranked  # fewer exist than asked for: all of them
