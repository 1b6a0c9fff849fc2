"""Trainers: synthetic data, single-path supernet training (as a Ray actor), BN recalibration, scoring."""
from __future__ import annotations

from .actor import start_trainer_actor
from .bn import recalibrate_bn
from .data import SyntheticImageData, make_synthetic_data
from .evaluate import accuracy, inherit_and_calibrate
from .supernet import SupernetTrainer, SupernetTrainSettings, build_trainer, file_digest, load_supernet

__all__ = [
    "SupernetTrainSettings",
    "SupernetTrainer",
    "SyntheticImageData",
    "accuracy",
    "build_trainer",
    "file_digest",
    "inherit_and_calibrate",
    "load_supernet",
    "make_synthetic_data",
    "recalibrate_bn",
    "start_trainer_actor",
]
