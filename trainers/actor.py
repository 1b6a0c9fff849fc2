"""The supernet trainer as a Ray actor: the driver asks for steps in chunks and shows progress."""
from __future__ import annotations

from typing import Any

__all__ = ["start_trainer_actor"]


class _TrainerHost:
    """Holds a SupernetTrainer inside a Ray worker; data and model are built there, not shipped."""

    def __init__(self, *, space_name: str, space_settings: dict[str, Any], data_kind: str,
                 data_settings: dict[str, Any], train: Any, seed: int, checkpoint_path: str,
                 task_settings: dict[str, Any] | None = None, compute: dict[str, Any] | None = None) -> None:
        from spaces import get_space

        from .compute import Compute
        from .supernet import build_trainer

        self.trainer = build_trainer(space=get_space(space_name, **space_settings), data_kind=data_kind,
                                     data_settings=data_settings, train=train, seed=seed,
                                     checkpoint_path=checkpoint_path, task_settings=task_settings,
                                     compute=Compute.from_dict(compute or {"device": "cpu"}))

    def step(self) -> int:
        return self.trainer.step

    def train_steps(self, n: int) -> dict[str, Any]:
        return self.trainer.train_steps(n)


def start_trainer_actor(*, num_cpus: int, num_gpus: float = 0, **kwargs: Any) -> Any:
    """Start the trainer actor (on a GPU node when ``num_gpus``); it resumes from the checkpoint if one exists."""
    import ray

    return ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0)(_TrainerHost).remote(**kwargs)
