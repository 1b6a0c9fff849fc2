"""Orchestrator: experiment config, pipeline stages, journal, MLflow tracking, resume, CLI."""
from __future__ import annotations

from .config import ExperimentConfig, apply_overrides, config_from_dict, load_config
from .experiment import Experiment
from .journal import Journal
from .pipeline import STAGES, run_experiment
from .status import experiment_status

__all__ = [
    "STAGES",
    "Experiment",
    "ExperimentConfig",
    "Journal",
    "apply_overrides",
    "config_from_dict",
    "experiment_status",
    "load_config",
    "run_experiment",
]
