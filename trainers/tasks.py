"""The task plugin: what a model predicts, how it is trained and how it is scored.

A task fixes how a batch looks (``(images, targets)``: float32 NCHW images, and targets of the task's
own form), the training loss, the progress figure printed during training, and the metrics a
candidate is scored by. Classification is here; detection (SSDLite, COCO mAP) is in :mod:`trainers.detect`.
Datasets name the task they serve (:attr:`trainers.datasets.Dataset.task`), so the data decides it.
"""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

from core.registry import Registry
from core.settings import Setting, number, resolve_settings

if TYPE_CHECKING:  # torch is imported when a task computes: configs validate without it
    import torch
    from torch import nn

    from .datasets import Dataset

__all__ = ["TASKS", "ClassificationTask", "Task", "make_task", "soft_cross_entropy"]


class Task(abc.ABC):
    """Base class of every registered task.

    A subclass sets :attr:`name`, :attr:`METRICS` (what :meth:`evaluate` returns, each the higher the
    better, each usable as an objective; the first is the task's headline score), optionally
    :attr:`DETAIL_METRICS` and :attr:`SETTINGS`, and implements the three abstract members.
    """

    name: ClassVar[str]
    METRICS: ClassVar[tuple[str, ...]]
    #: Further scores :meth:`evaluate` may return (where defined), logged but not searched on.
    DETAIL_METRICS: ClassVar[tuple[str, ...]] = ()
    SETTINGS: ClassVar[tuple[Setting, ...]] = ()

    def __init__(self, **settings: Any) -> None:
        self.settings = self.check_settings(settings)

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], *, where: Callable[[str], str] | None = None) -> dict[str, Any]:
        return resolve_settings(cls.SETTINGS, settings, owner=f"task {cls.name}", where=where)

    def bind(self, space: Any) -> None:
        """Take what the task needs of the search space before it computes (a detector's anchors)."""

    @abc.abstractmethod
    def loss(self, outputs: Any, targets: Any) -> torch.Tensor:
        """The scalar training loss of a batch; called once per training step."""

    def distill_loss(self, outputs: Any, teacher: Any) -> torch.Tensor:
        """The scalar loss of ``outputs`` learning a teacher's (detached) outputs of the same batch: the
        in-place distillation of a supernet's paths from its largest (``supernet.distill``)."""
        raise NotImplementedError(f"task {self.name} has no distillation loss")

    @abc.abstractmethod
    def batch_correct(self, outputs: Any, targets: Any) -> tuple[int, int]:
        """``(correct, count)`` of a training batch, for the progress line (train accuracy)."""

    @abc.abstractmethod
    def evaluate(self, model: nn.Module, dataset: Dataset, *, batch_size: int) -> dict[str, float]:
        """Score ``model`` (put in eval mode here) on the dataset's validation split, ``batch_size`` images
        at a time: one value per :attr:`METRICS` (and those :attr:`DETAIL_METRICS` that are defined).
        Deterministic: the same model and data give the same floats."""


TASKS: Registry[type[Task]] = Registry("task")


@TASKS.register("classification")
class ClassificationTask(Task):
    """Image classification: targets are int64 class indices ``(N,)``, outputs ``(N, classes)`` logits.

    Loss: cross-entropy with ``label_smoothing``; distillation: cross-entropy against the teacher's
    softmax (the soft-label loss of BigNAS's in-place distillation). Metric: top-1 ``accuracy`` on the
    validation split.
    """

    name = "classification"
    METRICS = ("accuracy",)
    SETTINGS = (Setting("label_smoothing", 0.0, number(low=0.0, high=1.0, high_open=True)),)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        return F.cross_entropy(outputs, targets, label_smoothing=self.settings["label_smoothing"])

    def distill_loss(self, outputs: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return soft_cross_entropy(outputs, teacher)

    def batch_correct(self, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[int, int]:
        return int((outputs.argmax(1) == targets).sum()), len(targets)

    def evaluate(self, model: nn.Module, dataset: Dataset, *, batch_size: int) -> dict[str, float]:
        import torch

        from .compute import module_device

        model.eval()
        device = module_device(model)
        correct = seen = 0
        with torch.no_grad():
            for x, y in dataset.val_batches(batch_size):
                hits, count = self.batch_correct(model(x.to(device)), y.to(device))
                correct, seen = correct + hits, seen + count
        return {"accuracy": correct / seen}


def soft_cross_entropy(logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``-sum softmax(teacher) * log_softmax(logits)`` (classes on the last axis)."""
    targets = teacher_logits.detach().softmax(-1)
    return -(targets * logits.log_softmax(-1)).sum(-1).mean()


def make_task(name: str, settings: Mapping[str, Any]) -> Task:
    """The task ``name``, given those of ``settings`` it declares (a trainer hands it all of its own)."""
    cls = TASKS.get(name)
    own = {s.name for s in cls.SETTINGS}
    return cls(**{k: v for k, v in settings.items() if k in own})
