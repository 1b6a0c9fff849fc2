"""Trainers: the task and dataset plugins, single-path supernet training (as a Ray actor), BN
recalibration and candidate scoring.

The registries (``TASKS``, ``DATASETS``) import without torch, so a config is validated in a fraction
of a second; the training and scoring functions import torch on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

from .coco import CocoDataset
from .compute import Compute
from .datasets import DATASETS, Dataset, SyntheticDataset, make_dataset
from .detect import DetectionTask
from .imagefolder import ImageFolderDataset
from .tasks import TASKS, ClassificationTask, Task, make_task

# Names whose modules import torch, loaded when first asked for (PEP 562).
_LAZY = {
    "start_trainer_actor": "actor",
    "recalibrate_bn": "bn",
    "inherit_and_calibrate": "evaluate",
    "score": "evaluate",
    "SupernetTrainSettings": "supernet",
    "SupernetTrainer": "supernet",
    "build_trainer": "supernet",
    "check_checkpoint": "supernet",
    "load_supernet": "supernet",
}

__all__ = [
    "DATASETS",
    "TASKS",
    "ClassificationTask",
    "CocoDataset",
    "Compute",
    "Dataset",
    "DetectionTask",
    "ImageFolderDataset",
    "SyntheticDataset",
    "Task",
    "make_dataset",
    "make_task",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
