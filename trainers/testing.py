"""Contract suites of the dataset and task plugins, parametrised over their registries.

A test module that imports it runs it for every registered dataset kind and task::

    from trainers.testing import *  # noqa: F401,F403

A dataset is tested at its ``example_settings(directory)`` (a dataset that reads files writes a small
example into ``directory`` there). A task is tested with every registered dataset that serves it, on
a small model of the ``moga`` space sized by the data. Needs pytest.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from core.errors import ConfigError

from .datasets import DATASETS, Dataset
from .tasks import TASKS, Task

__all__ = [
    "test_calibration_images_are_fixed_by_the_seed",
    "test_dataset_settings_are_data",
    "test_every_task_has_a_dataset",
    "test_task_distill_loss_pulls_a_student_to_its_teacher",
    "test_task_evaluate_is_deterministic_and_complete",
    "test_task_loss_trains_the_model",
    "test_train_batches_are_well_formed",
    "test_val_batches_cover_the_split_in_order",
]


def make_dataset_for_test(kind: str, directory: Path, *, seed: int = 0) -> Dataset:
    cls = DATASETS.get(kind)
    return cls(seed=seed, **cls.example_settings(directory))


def _small_space(dataset: Dataset) -> Any:
    """A small ``moga`` space sized by the data: a classifier, or an SSDLite detector for detection data."""
    from spaces import MogaSpace

    small = MogaSpace.small_detection_settings() if dataset.task == "detection" else MogaSpace.small_settings()
    return MogaSpace(**{**small, **type(dataset).space_settings(dataset.settings), "task": dataset.task})


def _small_model(dataset: Dataset) -> torch.nn.Module:
    return _small_space(dataset).build((0,) * 14)


# ------------------------------------------------------------------------------------------ datasets
@pytest.mark.parametrize("kind", DATASETS.names())
def test_dataset_settings_are_data(kind: str, tmp_path: Path) -> None:
    cls = DATASETS.get(kind)
    assert cls.task in TASKS, f"{kind} serves the unknown task {cls.task!r}"
    settings = cls.check_settings(cls.example_settings(tmp_path))
    assert {"input_size", "num_classes"} == set(cls.space_settings(settings))
    assert cls.prepare(settings, printer=lambda line: None)["kind"] == kind  # the data's identity
    with pytest.raises(ConfigError, match=r"config field 'data.bogus': unknown setting for dataset"):
        cls.check_settings({**settings, "bogus": 1}, where=lambda n: f"config field 'data.{n}'")


@pytest.mark.parametrize("kind", DATASETS.names())
def test_train_batches_are_well_formed(kind: str, tmp_path: Path) -> None:
    dataset = make_dataset_for_test(kind, tmp_path)
    indices = torch.arange(min(5, dataset.train_size))
    x, y = dataset.train_batch(indices)
    assert x.dtype == torch.float32 and tuple(x.shape) == (len(indices), 3, dataset.image_size, dataset.image_size)
    assert torch.isfinite(x).all() and len(y) == len(indices)
    again = make_dataset_for_test(kind, tmp_path).train_batch(indices)
    assert torch.equal(x, again[0])  # the same seed and settings give the same data


@pytest.mark.parametrize("kind", DATASETS.names())
def test_val_batches_cover_the_split_in_order(kind: str, tmp_path: Path) -> None:
    dataset = make_dataset_for_test(kind, tmp_path)
    whole = list(dataset.val_batches(10**6))
    assert len(whole) == 1
    pieces = list(dataset.val_batches(3))
    assert all(len(p[0]) == 3 for p in pieces[:-1]) and 1 <= len(pieces[-1][0]) <= 3
    assert torch.equal(torch.cat([p[0] for p in pieces]), whole[0][0])


@pytest.mark.parametrize("kind", DATASETS.names())
def test_calibration_images_are_fixed_by_the_seed(kind: str, tmp_path: Path) -> None:
    dataset = make_dataset_for_test(kind, tmp_path)
    before = torch.random.get_rng_state()
    first = dataset.calibration_images(2, 4)
    assert torch.equal(before, torch.random.get_rng_state())  # never the global RNG
    assert [tuple(b.shape) for b in first] == [(4, 3, dataset.image_size, dataset.image_size)] * 2
    assert all(torch.equal(a, b) for a, b in zip(first, dataset.calibration_images(2, 4)))
    more = dataset.calibration_images(10**6, 7)  # more than the split holds: each image once, no empty batch
    assert sum(len(b) for b in more) == dataset.train_size and all(len(b) for b in more)


# ------------------------------------------------------------------------------------------ tasks
def _task_setup(task_name: str, kind: str, directory: Path) -> tuple[Task, Dataset, torch.nn.Module]:
    torch.set_num_threads(1)
    dataset = make_dataset_for_test(kind, directory)
    task = TASKS.get(task_name)()
    task.bind(_small_space(dataset))
    return task, dataset, _small_model(dataset).train()


def _task_dataset_pairs() -> list[Any]:
    return [pytest.param(task, kind, id=f"{task}-{kind}") for task in TASKS.names() for kind in DATASETS.names()
            if DATASETS.get(kind).task == task]


@pytest.mark.parametrize("task", TASKS.names())
def test_every_task_has_a_dataset(task: str) -> None:
    assert any(DATASETS.get(kind).task == task for kind in DATASETS.names())
    assert TASKS.get(task).METRICS  # at least a headline metric


@pytest.mark.parametrize("task_name, kind", _task_dataset_pairs())
def test_task_loss_trains_the_model(task_name: str, kind: str, tmp_path: Path) -> None:
    task, dataset, model = _task_setup(task_name, kind, tmp_path)
    x, y = dataset.train_batch(torch.arange(min(16, dataset.train_size)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(8):  # one batch, fitted: a correct loss falls
        optimizer.zero_grad()
        outputs = model(x)
        loss = task.loss(outputs, y)
        assert loss.dim() == 0 and torch.isfinite(loss)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    correct, count = task.batch_correct(outputs, y)
    assert count >= 1 and 0 <= correct <= count  # images (classification) or matched anchors (detection)


@pytest.mark.parametrize("task_name, kind", _task_dataset_pairs())
def test_task_distill_loss_pulls_a_student_to_its_teacher(task_name: str, kind: str, tmp_path: Path) -> None:
    """``supernet.distill``: a student (another architecture) learning a fixed teacher's outputs gets closer to
    them. A task without a distillation loss says so (and configs with ``distill: true`` are refused)."""
    task, dataset, teacher = _task_setup(task_name, kind, tmp_path)
    if type(task).distill_loss is Task.distill_loss:
        with pytest.raises(NotImplementedError):
            task.distill_loss(None, None)
        return
    student = _small_space(dataset).build((11,) * 14).train()
    x, _ = dataset.train_batch(torch.arange(min(16, dataset.train_size)))
    with torch.no_grad():  # a confident teacher (logits x 20): an untrained one is near uniform, as is the student
        out = teacher(x)
        target = (out[0], 20 * out[1]) if isinstance(out, tuple) else 20 * out
    optimizer = torch.optim.SGD(student.parameters(), lr=0.05)
    losses = []
    for _ in range(8):
        torch.manual_seed(0)  # the same dropout every step: the loss moves by the training alone
        optimizer.zero_grad()
        loss = task.distill_loss(student(x), target)
        assert loss.dim() == 0 and torch.isfinite(loss)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("task_name, kind", _task_dataset_pairs())
def test_task_evaluate_is_deterministic_and_complete(task_name: str, kind: str, tmp_path: Path) -> None:
    task, dataset, model = _task_setup(task_name, kind, tmp_path)
    scores = task.evaluate(model, dataset, batch_size=7)
    assert not model.training  # evaluated in eval mode
    assert list(scores)[: len(task.METRICS)] == list(task.METRICS)
    assert set(scores) <= set(task.METRICS + task.DETAIL_METRICS) and all(0.0 <= v <= 1.0 for v in scores.values())
    assert scores == task.evaluate(model, dataset, batch_size=7)  # deterministic
    again = task.evaluate(model, dataset, batch_size=100)  # batching changes float sums only in the last bits
    assert again.keys() == scores.keys() and all(abs(again[k] - v) < 1e-3 for k, v in scores.items())
