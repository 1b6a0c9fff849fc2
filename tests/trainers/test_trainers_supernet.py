"""Supernet training resumes bit for bit from its checkpoint; BN recalibration is order-free."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spaces import get_space
from core.errors import ConfigError
from trainers import ClassificationTask, SupernetTrainer, SupernetTrainSettings, SyntheticDataset, recalibrate_bn
from trainers.supernet import load_supernet

SETTINGS = SupernetTrainSettings(steps=8, batch_size=16, lr=0.1, momentum=0.9, weight_decay=4e-5,
                                 label_smoothing=0.1, checkpoint_every=4, threads=1)


@pytest.fixture(scope="module")
def space_and_data():
    space = get_space("moga", width_mult=0.25, input_size=32, num_classes=4, stem_stride=2, dropout=0.0)
    data = SyntheticDataset(seed=3, num_classes=4, image_size=32, train_size=64, val_size=32, noise=0.5)
    return space, data


def _trainer(space, data, path: Path) -> SupernetTrainer:
    return SupernetTrainer(space=space, task=ClassificationTask(label_smoothing=0.1), dataset=data, settings=SETTINGS,
                           seed=11, checkpoint_path=path)


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
    batches = data.calibration_images(4, 16)
    recalibrate_bn(model, batches)
    first = [m.running_mean.clone() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    recalibrate_bn(model, list(reversed(batches)))
    second = [m.running_mean.clone() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _fair_trainer(space, data, path: Path, seed: int = 11) -> SupernetTrainer:
    settings = SupernetTrainSettings(**{**vars(SETTINGS), "sampling": "fair"})
    return SupernetTrainer(space=space, task=ClassificationTask(label_smoothing=0.1), dataset=data, settings=settings,
                           seed=seed, checkpoint_path=path)


def test_fair_sampling_trains_every_choice_equally_often(tmp_path: Path, space_and_data) -> None:
    space, data = space_and_data
    trainer = _fair_trainer(space, data, tmp_path / "f.pt")
    sizes = [d.size for d in space.dims]
    group = sizes[0]
    assert all(s == group for s in sizes)  # MoGA: 12 choices in every layer
    for g in range(3):
        paths = [trainer.path(g * group + k) for k in range(group)]
        for layer, size in enumerate(sizes):
            assert sorted(p[layer] for p in paths) == list(range(size))
    # a function of (seed, step) alone, different per group and per seed
    assert [trainer.path(s) for s in range(24)] == [trainer.path(s) for s in range(24)]
    assert [trainer.path(s) for s in range(12)] != [trainer.path(s) for s in range(12, 24)]
    other = _fair_trainer(space, data, tmp_path / "g.pt", seed=12)
    assert [trainer.path(s) for s in range(12)] != [other.path(s) for s in range(12)]


def test_uniform_sampling_is_the_default_and_unchanged(tmp_path: Path, space_and_data) -> None:
    from core.seeding import make_rng

    space, data = space_and_data
    assert SETTINGS.sampling == "uniform"
    trainer = _trainer(space, data, tmp_path / "u.pt")
    assert trainer.path(5) == space.sample(make_rng(11, "supernet", "path", 5))


def test_unknown_sampling_is_refused() -> None:
    with pytest.raises(ConfigError, match="sampling"):
        SupernetTrainSettings(**{**vars(SETTINGS), "sampling": "greedy"})


def test_fair_resumed_training_equals_uninterrupted(tmp_path: Path, space_and_data) -> None:
    space, data = space_and_data
    straight = _fair_trainer(space, data, tmp_path / "a.pt")
    straight.train_steps(8)
    first = _fair_trainer(space, data, tmp_path / "b.pt")
    first.train_steps(6)
    resumed = _fair_trainer(space, data, tmp_path / "b.pt")
    assert resumed.step == 4
    resumed.train_steps(8)
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_adam_trains_and_resumes_bit_for_bit(tmp_path: Path, space_and_data) -> None:
    space, data = space_and_data
    settings = SupernetTrainSettings(**{**vars(SETTINGS), "optimizer": "adam", "lr": 0.003})

    def trainer(name: str) -> SupernetTrainer:
        return SupernetTrainer(space=space, task=ClassificationTask(), dataset=data, settings=settings, seed=11,
                               checkpoint_path=tmp_path / name)

    straight = trainer("a.pt")
    assert isinstance(straight.optimizer, torch.optim.AdamW)
    straight.train_steps(8)
    trainer("b.pt").train_steps(6)
    resumed = trainer("b.pt")  # from the checkpoint of step 4, Adam's moments included
    resumed.train_steps(8)
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    with pytest.raises(ConfigError, match="optimizer"):
        SupernetTrainSettings(**{**vars(SETTINGS), "optimizer": "lbfgs"})


# ---------------------------------------------------------------------- sandwich rule, distillation, warm-up
def _remedy_trainer(space, data, path: Path, **overrides) -> SupernetTrainer:
    settings = SupernetTrainSettings(**{**vars(SETTINGS), "sampling": "fair", **overrides})
    return SupernetTrainer(space=space, task=ClassificationTask(label_smoothing=0.1), dataset=data, settings=settings,
                           seed=11, checkpoint_path=path)


def test_paths_of_a_step_follow_the_settings(tmp_path: Path, space_and_data) -> None:
    space, data = space_and_data
    largest, smallest = space.largest_encoding(), space.smallest_encoding()
    assert largest == (11,) * 14 and smallest == (0,) * 14  # MoGA: t6k7SE and t3k3 in every layer
    plain = _remedy_trainer(space, data, tmp_path / "p.pt")
    assert plain.paths(3) == [(plain.path(3), "labels")]
    sandwich = _remedy_trainer(space, data, tmp_path / "s.pt", sandwich="max-min", distill=True)
    assert sandwich.paths(3) == [(largest, "labels"), (smallest, "teacher"), (sandwich.path(3), "teacher")]
    warm = _remedy_trainer(space, data, tmp_path / "w.pt", sandwich="max", largest_warmup_steps=2)
    assert warm.paths(0) == warm.paths(1) == [(largest, "labels")]
    assert warm.paths(2) == [(largest, "labels"), (warm.path(2), "labels")]


def _manual_gradients(trainer: SupernetTrainer, step: int, loss_of) -> dict[str, torch.Tensor]:
    """The gradients the step's paths should give, computed by hand on a copy of the model."""
    import copy

    model = copy.deepcopy(trainer.model)
    x, y = trainer.dataset.train_batch(trainer._batch_indices(step))
    loss_of(model, x, y).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_distillation_loss_is_the_sampled_path_learning_the_largest(tmp_path: Path, space_and_data) -> None:
    import torch.nn.functional as F

    space, data = space_and_data
    trainer = _remedy_trainer(space, data, tmp_path / "d.pt", sandwich="max", distill=True)
    largest, sampled = space.largest_encoding(), trainer.path(0)
    assert sampled != largest

    def loss_of(model, x, y):  # BigNAS: the largest learns the labels, the sampled path its soft predictions
        teacher = model(x, largest)
        labels = F.cross_entropy(teacher, y, label_smoothing=0.1)
        soft = F.cross_entropy(model(x, sampled), teacher.detach().softmax(-1))  # CE with probability targets
        return labels + soft

    expected = _manual_gradients(trainer, 0, loss_of)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train_steps(1)
    got = {n: p.grad for n, p in trainer.model.named_parameters() if p.grad is not None}
    assert got.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-6, msg=name)
    moved = [n for n, p in trainer.model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert set(moved) == {n for n in expected if expected[n].abs().sum() > 0}  # the optimiser stepped them


def test_distillation_without_the_sandwich_is_refused() -> None:
    # Measured: with no path trained on the labels the supernet stays at chance (BENCHMARKS.md).
    with pytest.raises(ConfigError, match="needs the sandwich rule"):
        SupernetTrainSettings(**{**vars(SETTINGS), "distill": True})


def test_sandwich_without_distillation_adds_the_label_losses(tmp_path: Path, space_and_data) -> None:
    import torch.nn.functional as F

    space, data = space_and_data
    trainer = _remedy_trainer(space, data, tmp_path / "m.pt", sandwich="max-min")
    paths = [space.largest_encoding(), space.smallest_encoding(), trainer.path(0)]

    def loss_of(model, x, y):
        return sum(F.cross_entropy(model(x, p), y, label_smoothing=0.1) for p in paths)

    expected = _manual_gradients(trainer, 0, loss_of)
    trainer.train_steps(1)
    for name, p in trainer.model.named_parameters():
        if name in expected:
            torch.testing.assert_close(p.grad, expected[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("overrides", [
    {"sandwich": "max-min", "distill": True},
    {"sandwich": "max", "distill": True, "largest_warmup_steps": 3},
], ids=["sandwich-distill", "distill-warmup"])
def test_remedies_resume_bit_for_bit(tmp_path: Path, space_and_data, overrides: dict) -> None:
    space, data = space_and_data
    straight = _remedy_trainer(space, data, tmp_path / "a.pt", **overrides)
    straight.train_steps(8)
    _remedy_trainer(space, data, tmp_path / "b.pt", **overrides).train_steps(6)
    resumed = _remedy_trainer(space, data, tmp_path / "b.pt", **overrides)
    assert resumed.step == 4
    resumed.train_steps(8)
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_unknown_sandwich_is_refused() -> None:
    with pytest.raises(ConfigError, match="sandwich"):
        SupernetTrainSettings(**{**vars(SETTINGS), "sandwich": "max-max"})


def test_per_kernel_supernet_resumes_and_loads_with_its_options(tmp_path: Path, space_and_data) -> None:
    from spaces import ExperimentError

    space, data = space_and_data
    straight = _remedy_trainer(space, data, tmp_path / "a.pt", kernel_weights="per_kernel")
    assert straight.model.supernet_options == {"kernel_weights": "per_kernel"}
    straight.train_steps(8)
    _remedy_trainer(space, data, tmp_path / "b.pt", kernel_weights="per_kernel").train_steps(6)
    resumed = _remedy_trainer(space, data, tmp_path / "b.pt", kernel_weights="per_kernel")
    resumed.train_steps(8)
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    loaded = load_supernet(tmp_path / "a.pt", space)  # the options come from the checkpoint
    assert loaded.supernet_options == {"kernel_weights": "per_kernel"}
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    with pytest.raises(ExperimentError, match="trained with supernet options"):
        _remedy_trainer(space, data, tmp_path / "a.pt")  # resumed with shared kernels: refused
