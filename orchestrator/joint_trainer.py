"""The joint search's trainer (TuNAS): :class:`JointTrainer`, the supernet trainer with a controller.

Kept apart from :mod:`orchestrator.joint` (settings, the actor, MLflow and files), which a config loads
without torch; this module imports the supernet trainer and with it torch.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from core.seeding import make_rng
from searchers import ReinforceController
from trainers.supernet import SupernetTrainer

if TYPE_CHECKING:  # orchestrator.joint builds this module's trainer in its actor: no import back
    from .joint import JointSettings

__all__ = ["JointTrainer", "candidates_of", "frozen_batchnorm"]


@contextlib.contextmanager
def frozen_batchnorm(model: Any) -> Iterator[None]:
    """BN layers normalise with the batch's statistics but leave their running statistics alone: a reward's
    forward pass must not move the supernet's BN buffers (momentum 0 keeps them as they are)."""
    from torch import nn

    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(bns, saved):
            m.momentum = momentum


class JointTrainer(SupernetTrainer):
    """A :class:`trainers.supernet.SupernetTrainer` whose paths come from a REINFORCE controller that it
    trains as it goes (see :mod:`orchestrator.joint`); ``cost_fn(path)`` is the path's cost in ms."""

    def __init__(self, *, joint: JointSettings, cost_fn: Callable[[Sequence[int]], float], **kwargs: Any) -> None:
        space = kwargs["space"]
        self.joint, self.cost_fn = joint, cost_fn
        self.controller = ReinforceController(sizes=[d.size for d in space.dims], lr=joint.lr,
                                              baseline_momentum=joint.baseline_momentum,
                                              entropy_weight=joint.entropy_weight)
        self.records: list[dict[str, float]] = []  # this chunk's per-step reward, quality, cost
        self._reward_data: list[Any] | None = None
        super().__init__(**kwargs)  # loads the checkpoint, controller included

    @property
    def warmup_steps(self) -> int:
        return int(math.ceil(self.joint.warmup * self.settings.steps))

    def path(self, step: int) -> tuple[int, ...]:
        return self.controller.sample(make_rng(self.seed, "joint", "path", step))

    def _one_step(self, step: int) -> tuple[float, int, int]:
        progress = super()._one_step(step)
        path = self.path(step)  # the same draw: the controller has not moved since
        quality, cost = self.reward_inputs(path, step)
        reward = self.joint.reward_of(quality, cost)
        if step >= self.warmup_steps:
            self.controller.update([path], [reward])
        else:  # learning rate zero: only the baseline follows the rewards
            self.controller.observe([reward])
        self.records.append({"reward": reward, "quality": quality, "cost": cost})
        return progress

    def reward_inputs(self, path: tuple[int, ...], step: int) -> tuple[float, float]:
        """The path's quality on a validation minibatch (drawn from (seed, step)) and its cost."""
        import torch

        from trainers.compute import batch_to

        batches = self.reward_data()
        x, y = batches[int(make_rng(self.seed, "joint", "reward", step).integers(len(batches)))]
        x, y = batch_to(x, self.device), batch_to(y, self.device)
        with torch.no_grad(), frozen_batchnorm(self.model), self.compute.autocast(self.device):
            outputs = self.model(x, path)
            if self.task.name == "detection":
                quality = -float(self.task.loss(outputs, y))
            else:
                correct, count = self.task.batch_correct(outputs, y)
                quality = correct / max(1, count)
        return quality, float(self.cost_fn(path))

    def reward_data(self) -> list[Any]:
        """The validation minibatches rewards are computed on, read once."""
        if self._reward_data is None:
            import itertools

            batches = self.dataset.val_batches(self.joint.reward_batch_size)
            self._reward_data = list(itertools.islice(batches, self.joint.reward_batches))
        return self._reward_data

    def train_steps(self, n: int) -> dict[str, Any]:
        self.records = []
        info = super().train_steps(n)
        return {**info, **self.controller_report()}

    def controller_report(self) -> dict[str, Any]:
        """The chunk's mean reward, quality and cost, and the controller as it stands now."""
        means = {k: sum(r[k] for r in self.records) / len(self.records) for k in ("reward", "quality", "cost")} \
            if self.records else {}
        return {**means, "entropy": self.controller.entropy(), "argmax": list(self.controller.argmax()),
                "probabilities": [p.tolist() for p in self.controller.probabilities()],
                "controller_steps": self.controller.steps}

    def extra_state(self) -> dict[str, Any]:
        return {"controller": self.controller.state(), "joint": asdict(self.joint)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        from core.errors import ExperimentError

        if state.get("joint") != asdict(self.joint) or "controller" not in state:
            raise ExperimentError(f"supernet checkpoint {self.checkpoint_path} holds no joint search with these "
                                  f"settings. HINT: delete it and resume the experiment to train it again.")
        self.controller.load_state(state["controller"])


def candidates_of(trainer: Any) -> list[tuple[int, ...]]:
    """What a finished joint search hands on to be scored: the argmax, then the next most probable."""
    return trainer.controller.most_probable(trainer.joint.candidates)
