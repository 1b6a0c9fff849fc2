"""Single-path supernet training, resumable bit for bit from its last checkpoint.

Every step's path and batch are derived from (seed, step), never from a running RNG, so a trainer that
restarts from the checkpoint of step ``s`` continues exactly as if it had never stopped.
"""
from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from core.digest import file_digest
from core.errors import ConfigError, ExperimentError
from core.seeding import make_rng, torch_generator
from core.settings import Setting, choice, resolve_settings
from spaces import SearchSpace

from .compute import Compute, batch_to
from .datasets import Dataset, make_dataset
from .tasks import Task, make_task

__all__ = ["SupernetTrainSettings", "SupernetTrainer", "build_trainer", "check_checkpoint", "load_supernet"]

CHECKPOINT_VERSION = 2  # 2: weight-sharing (elastic) MoGA supernet
SAMPLINGS = ("uniform", "fair")
OPTIMIZERS = ("sgd", "adam")
#: The sandwich rule (BigNAS): besides the sampled path, every step also trains the largest path
#: ("max") or the largest and the smallest ("max-min"); "off": the sampled path alone.
SANDWICHES = ("off", "max", "max-min")
DISTILL_NEEDS_SANDWICH = (
    "supernet distill: true needs the sandwich rule (sandwich: max or max-min): the other paths learn from the "
    "largest, and only the sandwich trains the largest on the labels. HINT: set supernet.sandwich: max."
)


@dataclass(frozen=True)
class SupernetTrainSettings:
    steps: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    label_smoothing: float
    checkpoint_every: int
    threads: int
    #: "uniform": every step's path is drawn uniformly at random (SPOS). "fair": FairNAS strict fairness,
    #: every block of ``group`` consecutive steps (``group`` = the choices per layer, 12 for MoGA) walks
    #: each layer through a random permutation of its choices, so all choices get equally many updates.
    sampling: str = "uniform"
    #: "sgd": SGD with Nesterov momentum (``momentum``), as the classification recipes. "adam": AdamW
    #: (decoupled ``weight_decay``; ``momentum`` unused), which on the detection quickstart left the
    #: background-only start (every anchor predicted background) where SGD did not, in the same steps.
    optimizer: str = "sgd"
    #: See :data:`SANDWICHES`. The paths of one step add their gradients before the optimiser step.
    sandwich: str = "off"
    #: In-place distillation (BigNAS): every path but the largest learns the largest path's predictions
    #: (:meth:`Task.distill_loss`) instead of the labels; the largest learns the labels. Needs the sandwich
    #: rule: without the largest path trained on the labels, no path would ever see them.
    distill: bool = False
    #: The first steps train the largest path alone (Once-for-All trains the full network before its
    #: sub-networks); the LR warm-up (the first 5% of the steps) is separate.
    largest_warmup_steps: int = 0
    #: How smaller depthwise kernels hold their weights: "shared" (the centre of the largest) or
    #: "per_kernel" (their own); a supernet option of the spaces that have it (``SUPERNET_OPTIONS``).
    kernel_weights: str = "shared"

    @property
    def supernet_options(self) -> dict[str, str]:
        """What :meth:`SearchSpace.build_supernet` is asked for (the defaults are left out by the space)."""
        return {"kernel_weights": self.kernel_weights}

    def __post_init__(self) -> None:
        checks = (Setting("sampling", "uniform", choice(*SAMPLINGS)), Setting("optimizer", "sgd", choice(*OPTIMIZERS)),
                  Setting("sandwich", "off", choice(*SANDWICHES)))
        resolve_settings(checks, {"sampling": self.sampling, "optimizer": self.optimizer, "sandwich": self.sandwich},
                         owner="supernet training")
        if self.distill and self.sandwich == "off":
            raise ConfigError(DISTILL_NEEDS_SANDWICH)


class SupernetTrainer:
    """Trains a space's supernet with single paths, uniform or strictly fair (plain SGD + cosine LR), on a
    dataset's training split with its task's loss."""

    def __init__(
        self, *, space: SearchSpace, task: Task, dataset: Dataset, settings: SupernetTrainSettings,
        seed: int, checkpoint_path: str | os.PathLike[str], compute: Compute | None = None,
    ) -> None:
        torch.set_num_threads(settings.threads)  # fixed threads: bitwise-reproducible float sums
        self.space = space
        self.task = task
        task.bind(space)
        self.dataset = dataset
        self.settings = settings
        self.seed = seed
        self.checkpoint_path = Path(checkpoint_path)
        self.compute = compute or Compute(device="cpu")  # library callers keep the CPU unless they ask
        self.device = self.compute.torch_device()
        # Built on the CPU from the seeded generator, then moved: the same initial weights on any device.
        self.model = space.build_supernet(generator=torch_generator(seed, "supernet", "init"),
                                          options=settings.supernet_options).to(self.device)
        self.optimizer = make_optimizer(self.model, settings)
        self.scaler = self.compute.grad_scaler(self.device)
        self.step = 0
        if self.checkpoint_path.exists():
            self._load()

    # ------------------------------------------------------------------ training
    def train_steps(self, n: int) -> dict[str, Any]:
        """Run up to ``n`` steps (not past ``settings.steps``); checkpoint on schedule. Returns progress."""
        self.model.train()
        end = min(self.step + n, self.settings.steps)
        losses: list[float] = []
        history: list[dict[str, float]] = []  # each step's numbers, for the tracking's per-step curves
        correct = seen = 0
        started = time.perf_counter()
        while self.step < end:
            lr = self._lr(self.step)
            loss, hits, count = self._one_step(self.step)
            losses.append(loss)
            correct, seen = correct + hits, seen + count
            self.step += 1
            history.append({"step": self.step, "loss": float(loss), "train_accuracy": hits / max(1, count), "lr": lr})
            if self.step % self.settings.checkpoint_every == 0 or self.step == self.settings.steps:
                self.save()
        return {
            "step": self.step, "steps": self.settings.steps,
            "loss": sum(losses) / max(1, len(losses)), "train_accuracy": correct / max(1, seen),
            "seconds": time.perf_counter() - started, "history": history,
        }

    def path(self, step: int) -> tuple[int, ...]:
        """The single path trained at ``step``: a function of (seed, step) alone, so resuming is exact."""
        if self.settings.sampling == "uniform":
            return self.space.sample(make_rng(self.seed, "supernet", "path", step))
        # Strict fairness: the group of steps [g*L, (g+1)*L) uses, per layer, a permutation of its choices
        # (repeated L/size times for a layer with fewer choices); L = lcm of the choice counts.
        # Each permutation has its own seed, so a step draws only the one it needs: the group can be long
        # (lcm(7, 16, 17, 18) = 17136 steps for mobiledet) and a step must not generate all of it.
        sizes = [d.size for d in self.space.dims]
        g, k = divmod(step, math.lcm(*sizes))
        return tuple(
            int(make_rng(self.seed, "supernet", "fair", g, layer, k // size).permutation(size)[k % size])
            for layer, size in enumerate(sizes)
        )

    def paths(self, step: int) -> list[tuple[tuple[int, ...], str]]:
        """The paths trained at ``step`` with what each learns from: ``"labels"`` or ``"teacher"`` (the
        largest path's predictions). The sampled path (:meth:`path`) comes last."""
        s = self.settings
        largest = self.space.largest_encoding()
        if step < s.largest_warmup_steps:
            return [(largest, "labels")]
        student = "teacher" if s.distill else "labels"
        extra = {"off": [], "max": [largest], "max-min": [largest, self.space.smallest_encoding()]}[s.sandwich]
        return [(p, "labels" if p == largest else student) for p in (*extra, self.path(step))]

    def _one_step(self, step: int) -> tuple[float, int, int]:
        x, y = self.dataset.train_batch(self._batch_indices(step))
        x, y = batch_to(x, self.device), batch_to(y, self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr(step)
        self.optimizer.zero_grad(set_to_none=True)
        teacher = None  # the largest path's predictions: it comes first in a sandwich
        for path, target in self.paths(step):
            with self.compute.autocast(self.device):
                outputs = self.model(x, path)
                loss = self.task.loss(outputs, y) if target == "labels" else self.task.distill_loss(outputs, teacher)
            # Each path's graph is freed at once: memory stays that of one path. The scaler is a
            # pass-through unless the precision is fp16.
            self.scaler.scale(loss).backward()
            if path == self.space.largest_encoding():
                teacher = _detached(outputs)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        # Progress is the sampled path's (the last): its loss (against the teacher when distilling) and hits.
        return (float(loss.detach()), *self.task.batch_correct(outputs, y))

    def _batch_indices(self, step: int) -> torch.Tensor:
        n = self.dataset.train_size
        bs = self.settings.batch_size
        per_epoch = max(1, n // bs)
        epoch, k = divmod(step, per_epoch)
        perm = torch.randperm(n, generator=torch_generator(self.seed, "supernet", "epoch", epoch))
        return perm[k * bs : (k + 1) * bs]

    def _lr(self, step: int) -> float:
        warmup = max(1, self.settings.steps // 20)
        if step < warmup:
            return self.settings.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, self.settings.steps - warmup)
        return 0.5 * self.settings.lr * (1 + math.cos(math.pi * progress))

    # ------------------------------------------------------------------ checkpoints
    def save(self) -> None:
        """Write model + optimizer + step atomically (temp file, fsync, rename)."""
        state = {
            "version": CHECKPOINT_VERSION, "step": self.step,
            "space": self.space.identity, "supernet_options": self.model.supernet_options,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            **({"scaler": self.scaler.state_dict()} if self.scaler.is_enabled() else {}),
            **self.extra_state(),
        }
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.checkpoint_path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(state, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.checkpoint_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def extra_state(self) -> dict[str, Any]:
        """What a subclass checkpoints beside the weights (a joint search's controller); plain data."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_state` from a checkpoint's ``state``."""

    def _load(self) -> None:
        state = _read_checkpoint(self.checkpoint_path, self.space)
        if state.get("supernet_options", {}) != self.model.supernet_options:
            raise ExperimentError(
                f"supernet checkpoint {self.checkpoint_path} was trained with supernet options "
                f"{state.get('supernet_options', {})}, not {self.model.supernet_options}. {_RETRAIN_HINT}"
            )
        with _corrupt_if_raises(self.checkpoint_path):
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scaler.is_enabled() and "scaler" in state:
                self.scaler.load_state_dict(state["scaler"])
            self.load_extra_state(state)
            self.step = int(state["step"])


def _detached(outputs: Any) -> Any:
    """A model's outputs (a tensor or a tuple of them) without their graph."""
    return tuple(o.detach() for o in outputs) if isinstance(outputs, tuple) else outputs.detach()


def make_optimizer(model: nn.Module, settings: SupernetTrainSettings) -> torch.optim.Optimizer:
    """The training settings' optimizer over ``model``'s parameters (its LR is set every step)."""
    if settings.optimizer == "adam":
        return torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                           weight_decay=settings.weight_decay, nesterov=settings.momentum > 0)


_RETRAIN_HINT = "HINT: delete it and resume the experiment: the supernet is trained again from step 0."


@contextlib.contextmanager
def _corrupt_if_raises(path: Path) -> Iterator[None]:
    """Any error reading a checkpoint's content means the file is damaged: say so in one line."""
    try:
        yield
    except ExperimentError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch.load and load_state_dict raise anything on garbage
        # Only the error's type: torch's own text about garbage is long and beside the point.
        raise ExperimentError(
            f"supernet checkpoint {path} is corrupt: it cannot be read ({type(exc).__name__}). {_RETRAIN_HINT}"
        ) from None


def _read_checkpoint(path: Path, space: SearchSpace, digest: str | None = None) -> dict[str, Any]:
    """The checkpoint's content; with ``digest``, the file must be the one that digest was taken of."""
    if digest is not None:
        actual = file_digest(path) if path.is_file() else None
        if actual != digest:
            found = "is missing" if actual is None else f"has sha256 {actual[:12]}..."
            raise ExperimentError(
                f"supernet checkpoint {path} {found}, not the {digest[:12]}... recorded when its training "
                f"finished: it is corrupt or was replaced. HINT: put the original file back, or delete it and "
                f"resume the experiment to train it again (checked against the same digest)."
            )
    with _corrupt_if_raises(path):
        # weights_only: a checkpoint is data, never code, even one hwnas wrote itself.
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or "model" not in state:
            raise ValueError("not an hwnas supernet checkpoint")
    if state.get("version") != CHECKPOINT_VERSION or state.get("space") != space.identity:
        raise ExperimentError(
            f"supernet checkpoint {path} does not belong to space {space.identity}. "
            f"HINT: use a fresh experiment directory or remove the stale checkpoint."
        )
    return state


def check_checkpoint(path: str | os.PathLike[str], space: SearchSpace, *, digest: str | None = None) -> int:
    """Raise :class:`ExperimentError` unless ``path`` is a readable checkpoint of ``space`` (and, with
    ``digest``, that very file); return its step. Cheap enough for a driver to call before it starts
    the actor or the trials that would otherwise each fail on the file."""
    return int(_read_checkpoint(Path(path), space, digest)["step"])


def load_supernet(path: str | os.PathLike[str], space: SearchSpace, *, digest: str | None = None) -> nn.Module:
    """The trained supernet of a checkpoint, in eval mode.

    Args:
        digest: The sha256 recorded when training finished; a file that differs is refused, so that no
            candidate is ever scored with other weights than the experiment's.
    """
    state = _read_checkpoint(Path(path), space, digest)
    model = space.build_supernet(options=state.get("supernet_options", {}))  # as it was trained
    with _corrupt_if_raises(Path(path)):
        model.load_state_dict(state["model"])
    return model.eval()


def build_trainer(
    *, space: SearchSpace, data_kind: str, data_settings: dict[str, Any], train: SupernetTrainSettings, seed: int,
    checkpoint_path: str | os.PathLike[str], task_settings: dict[str, Any] | None = None,
    compute: Compute | None = None,
) -> SupernetTrainer:
    """Load the dataset where the trainer runs (a Ray actor), take its task (with the training settings it
    declares, e.g. label smoothing, and ``task_settings``, e.g. the detection loss), then build the trainer."""
    dataset = make_dataset(data_kind, seed=seed, settings=data_settings)
    task = make_task(dataset.task, {**vars(train), **(task_settings or {})})
    return SupernetTrainer(space=space, task=task, dataset=dataset, settings=train, seed=seed,
                           checkpoint_path=checkpoint_path, compute=compute)
