"""Stand-alone retraining of one architecture from scratch: the recipe, its schedules and the loop.

:class:`RetrainLoop` is the training of one model on one worker of ``world`` data-parallel workers; it
runs unchanged in a plain process (``world == 1``, the benchmark's reference) and inside a Ray Train
worker (:mod:`trainers.retrain_worker`). Everything random derives from (seed, candidate, epoch):
the same job gives the same batches after any restart.

The recipes of the papers are presets of the settings (:data:`RECIPES`); a config names one and
overrides what it likes.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from core.errors import ConfigError
from core.settings import Setting, boolean, choice, integer, number, optional, resolve_settings

__all__ = ["RETRAIN_SETTINGS", "RECIPES", "RetrainJob", "RetrainLoop", "check_retrain_settings", "lr_at",
           "weight_decay_at"]

OPTIMIZERS = ("sgd", "rmsprop", "adam")
SCHEDULES = ("cosine", "step")
#: "auto": as the experiment's ``compute.device``; "gpu" (or "cuda") and "cpu" override it for retraining.
DEVICES = ("auto", "cpu", "gpu", "cuda")

#: The settings of a ``retrain`` config section (and of ``hwnas retrain --set retrain.KEY=VALUE``).
RETRAIN_SETTINGS: tuple[Setting, ...] = (
    Setting("recipe", "", choice("", "moga", "mobileone", "mobiledet"),
            hint="one of moga, mobileone, mobiledet (their papers' recipes), or leave it out"),
    # Which architectures: the top_k spanning the Pareto front, or these candidate ids.
    Setting("top_k", 3, integer(minimum=1, maximum=1000)),
    Setting("candidates", [], lambda where, value, hint: _id_list(where, value)),
    Setting("epochs", 10, integer(minimum=1, maximum=100_000), hint="a whole number of epochs >= 1, e.g. 10"),
    Setting("batch_size", 64, integer(minimum=1, maximum=65_536), hint="the global batch, e.g. 64"),
    Setting("workers", 1, integer(minimum=1, maximum=4096), hint="data-parallel Ray Train workers >= 1, e.g. 2"),
    Setting("cpus_per_worker", 1, integer(minimum=1, maximum=1024)),
    Setting("device", "auto", choice(*DEVICES)),
    #: Retrains run at once; 0: as many as the cluster has room for.
    Setting("max_concurrent", 0, integer(minimum=0, maximum=1024)),
    Setting("optimizer", "sgd", choice(*OPTIMIZERS)),
    Setting("lr", 0.1, number(low=0.0, high=100.0, low_open=True)),
    Setting("momentum", 0.9, number(low=0.0, high=1.0, high_open=True)),
    Setting("rmsprop_eps", 0.002, number(low=0.0, high=1.0, low_open=True)),
    Setting("weight_decay", 4e-5, number(low=0.0, high=1.0)),
    #: MobileOne's annealed weight decay: cosine from weight_decay to this; None: constant.
    Setting("weight_decay_end", None, optional(number(low=0.0, high=1.0))),
    Setting("schedule", "cosine", choice(*SCHEDULES)),
    Setting("warmup_epochs", 0.0, number(low=0.0, high=100_000.0)),
    #: The step schedule: the LR is multiplied by step_gamma every step_epochs epochs (MnasNet's 0.97 / 2.4).
    Setting("step_epochs", 2.4, number(low=0.0, high=100_000.0, low_open=True)),
    Setting("step_gamma", 0.97, number(low=0.0, high=1.0, low_open=True)),
    Setting("label_smoothing", 0.1, number(low=0.0, high=1.0, high_open=True)),
    #: Exponential moving average of the weights (0: off); the EMA weights are evaluated and shipped.
    Setting("ema_decay", 0.0, number(low=0.0, high=1.0, high_open=True)),
    Setting("eval_every", 1, integer(minimum=1, maximum=100_000)),
    #: How often Ray Train restarts a failed worker group (from the last checkpoint) before giving up.
    Setting("max_failures", 2, integer(minimum=0, maximum=1000)),
    Setting("register", False, boolean()),
    Setting("model_name", "", lambda where, value, hint: _name(where, value)),
)

#: The published recipes, scaled to a batch of 64 (linear LR scaling); a config overrides any field.
RECIPES: dict[str, dict[str, Any]] = {
    # MoGA (Chu et al.): RMSProp, momentum 0.9, LR 0.1 at batch 4096 with 5 warm-up epochs, L2 1e-5.
    "moga": {"optimizer": "rmsprop", "momentum": 0.9, "lr": 0.1 * 64 / 4096, "warmup_epochs": 5.0,
             "weight_decay": 1e-5, "schedule": "cosine", "label_smoothing": 0.1},
    # MobileOne (Vasu et al.): SGD 0.9, cosine LR from 0.1 at batch 256, weight decay annealed 1e-4 -> 1e-5
    # with the same cosine, label smoothing 0.1, EMA 0.9995.
    "mobileone": {"optimizer": "sgd", "momentum": 0.9, "lr": 0.1 * 64 / 256, "weight_decay": 1e-4,
                  "weight_decay_end": 1e-5, "schedule": "cosine", "label_smoothing": 0.1, "ema_decay": 0.9995},
    # MobileDets (Xiong et al.): SGD 0.9, weight decay 5e-4, warm-up then cosine (LR 0.8 at batch 512).
    "mobiledet": {"optimizer": "sgd", "momentum": 0.9, "lr": 0.8 * 64 / 512, "weight_decay": 5e-4,
                  "warmup_epochs": 1.0, "schedule": "cosine", "label_smoothing": 0.0},
}


def _id_list(where: str, value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: must be a list of candidate ids, got {value!r}. HINT: e.g. "
                          f"[3132934f97309827] (ids are in `hwnas status EXPERIMENT_DIR`).")
    return list(dict.fromkeys(value))


def _name(where: str, value: Any) -> str:
    import re

    if not isinstance(value, str) or (value and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", value)):
        raise ConfigError(f"{where}: must be a registered-model name of letters, digits, '_', '-' or '.', got "
                          f"{value!r}. HINT: e.g. model_name: quickstart-retrained")
    return value


def check_retrain_settings(raw: Mapping[str, Any], *, where: Callable[[str], str] | None = None,
                           ) -> dict[str, Any]:
    """The retrain settings complete: the named recipe's values first, then the given ones on top."""
    values = dict(raw)
    recipe = values.get("recipe", "")
    base = resolve_settings(RETRAIN_SETTINGS, {"recipe": recipe}, owner="retrain", where=where)["recipe"]
    settings = resolve_settings(RETRAIN_SETTINGS, {**RECIPES.get(base, {}), **values}, owner="retrain", where=where)
    name = where or (lambda n: f"retrain setting '{n}'")
    if settings["batch_size"] % settings["workers"]:
        raise ConfigError(f"{name('batch_size')}: the global batch {settings['batch_size']} must be divisible by "
                          f"workers ({settings['workers']}). HINT: e.g. batch_size: "
                          f"{settings['workers'] * max(1, settings['batch_size'] // settings['workers'])}")
    return settings


def lr_at(settings: Mapping[str, Any], step: int, steps_per_epoch: int) -> float:
    """The learning rate of global ``step``: linear warm-up, then cosine to 0 or a step decay."""
    total = settings["epochs"] * steps_per_epoch
    warmup = int(round(settings["warmup_epochs"] * steps_per_epoch))
    if step < warmup:
        return settings["lr"] * (step + 1) / warmup
    if settings["schedule"] == "step":
        return settings["lr"] * settings["step_gamma"] ** math.floor((step / steps_per_epoch) / settings["step_epochs"])
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * settings["lr"] * (1.0 + math.cos(math.pi * progress))


def weight_decay_at(settings: Mapping[str, Any], step: int, steps_per_epoch: int) -> float:
    """The weight decay of global ``step``: constant, or annealed with a cosine to ``weight_decay_end``."""
    start, end = settings["weight_decay"], settings["weight_decay_end"]
    if end is None:
        return start
    progress = step / max(1, settings["epochs"] * steps_per_epoch)
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class RetrainJob:
    """One retrain: the architecture, where its data and task come from, and the recipe (small, picklable)."""

    retrain_id: str
    candidate_id: str
    encoding: tuple[int, ...]
    space_name: str
    space_settings: dict[str, Any]
    data_kind: str
    data_settings: dict[str, Any]
    seed: int
    settings: dict[str, Any]
    task_settings: dict[str, Any] = field(default_factory=dict)

    def space(self) -> Any:
        from spaces import get_space

        return get_space(self.space_name, **self.space_settings)


class RetrainLoop:
    """The training of one stand-alone model by worker ``rank`` of ``world``.

    Each step takes the global batch ``batch_size`` (drawn from (seed, candidate, epoch)) and trains on
    this worker's share, ``rank::world``; the gradients are averaged by DDP when ``world > 1``, so the
    optimisation is the same for any number of workers (BN statistics stay per worker, as in the papers).

    Args:
        job: The retrain.
        rank, world: This worker and the number of workers.
        device: Where the model trains.
        wrap: Turns the model into what is trained (Ray Train's ``prepare_model``: DDP); default as is.
        precision: ``fp32``, or ``bf16`` / ``fp16`` autocast (fp16 with a gradient scaler; see
            :mod:`trainers.compute`).
    """

    def __init__(self, job: RetrainJob, *, rank: int = 0, world: int = 1, device: Any = "cpu",
                 wrap: Callable[[Any], Any] | None = None, precision: str = "fp32") -> None:
        import torch

        from core.seeding import torch_generator

        from .compute import Compute
        from .datasets import make_dataset
        from .tasks import make_task

        self.job, self.rank, self.world = job, rank, world
        self.settings = job.settings
        self.device = torch.device(device)
        self.compute = Compute(device=self.device.type, precision=precision)
        self.space = job.space()
        self.dataset = make_dataset(job.data_kind, seed=job.seed, settings=job.data_settings)
        self.task = make_task(self.dataset.task, {**self.settings, **job.task_settings})
        self.task.bind(self.space)
        self.model = self.space.build(job.encoding, generator=torch_generator(job.seed, "retrain", job.candidate_id))
        self.model.to(self.device)
        self.trained = wrap(self.model) if wrap else self.model
        self.optimizer = self._optimizer()
        self.scaler = self.compute.grad_scaler(self.device)
        self.ema = self._ema() if self.settings["ema_decay"] > 0 else None
        self.epoch = 0
        self._order: tuple[int, Any] = (-1, None)  # (epoch, its permutation of the training set)
        self.history: list[dict[str, Any]] = []
        batch = self.settings["batch_size"]
        if self.dataset.train_size < batch:
            raise ConfigError(f"retrain batch_size {batch} is larger than the {self.dataset.train_size} training "
                              f"images. HINT: lower retrain.batch_size.")
        self.steps_per_epoch = self.dataset.train_size // batch

    def _optimizer(self) -> Any:
        import torch

        s = self.settings
        params = self.trained.parameters()
        if s["optimizer"] == "rmsprop":  # TF-style: decay 0.9, momentum, eps from the recipe
            return torch.optim.RMSprop(params, lr=s["lr"], alpha=0.9, eps=s["rmsprop_eps"], momentum=s["momentum"],
                                       weight_decay=s["weight_decay"])
        if s["optimizer"] == "adam":  # AdamW, as the detection supernet: SGD leaves background-only far later
            return torch.optim.AdamW(params, lr=s["lr"], weight_decay=s["weight_decay"])
        return torch.optim.SGD(params, lr=s["lr"], momentum=s["momentum"], weight_decay=s["weight_decay"],
                               nesterov=s["momentum"] > 0)

    def _ema(self) -> Any:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        # Buffers too: the EMA model's BN statistics follow the EMA weights.
        return AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(self.settings["ema_decay"]),
                             use_buffers=True)

    @property
    def shipped(self) -> Any:
        """The model that is evaluated and shipped: the EMA weights when there are any."""
        return self.ema.module if self.ema is not None else self.model

    # ------------------------------------------------------------------ training
    def batch_indices(self, epoch: int, step: int) -> Any:
        """This worker's share of the global batch ``step`` of ``epoch``."""
        import torch

        from core.seeding import torch_generator

        n, batch = self.dataset.train_size, self.settings["batch_size"]
        if self._order[0] != epoch:  # one permutation per epoch, not one per step: O(n) each time
            self._order = (epoch, torch.randperm(n, generator=torch_generator(self.job.seed, "retrain",
                                                                            self.job.candidate_id, epoch)))
        return self._order[1][step * batch:(step + 1) * batch][self.rank::self.world]

    def train_epoch(self, *, steps: int | None = None) -> dict[str, Any]:
        """Train epoch :attr:`epoch` (or its first ``steps`` steps, for benchmarks); advance the epoch."""
        import torch

        from core.seeding import derive_seed

        from .compute import batch_to

        self.trained.train()
        # Dropout draws from torch's global RNG: seeded per (epoch, worker), a resumed epoch draws the same.
        torch.manual_seed(derive_seed(self.job.seed, "retrain", self.job.candidate_id, self.epoch, self.rank))
        losses: list[Any] = []  # kept on the device: a float() per step would wait for the GPU every step
        started = time.perf_counter()
        steps = self.steps_per_epoch if steps is None else min(steps, self.steps_per_epoch)
        for k in range(steps):
            global_step = self.epoch * self.steps_per_epoch + k
            lr = lr_at(self.settings, global_step, self.steps_per_epoch)
            wd = weight_decay_at(self.settings, global_step, self.steps_per_epoch)
            for group in self.optimizer.param_groups:
                group["lr"], group["weight_decay"] = lr, wd
            x, y = self.dataset.train_batch(self.batch_indices(self.epoch, k))
            x, y = batch_to(x, self.device), batch_to(y, self.device)
            self.optimizer.zero_grad(set_to_none=True)
            with self.compute.autocast(self.device):
                loss = self.task.loss(self.trained(x), y)
            self.scaler.scale(loss).backward()  # a pass-through unless fp16
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            losses.append(loss.detach())
        self.epoch += 1
        # Each loss read as a Python float and summed in order: the same number as reading them step by step.
        values = torch.stack(losses).tolist() if losses else []
        return {"epoch": self.epoch, "train_loss": sum(values) / max(1, len(values)), "lr": lr if steps else 0.0,
                "weight_decay": wd if steps else 0.0, "epoch_seconds": time.perf_counter() - started,
                "steps": steps}

    def evaluate(self, batch_size: int = 256) -> dict[str, float]:
        """The task's metrics of the shipped model on the validation split (the model is put back in training
        mode by the next epoch)."""
        with self.compute.autocast(self.device):
            return self.task.evaluate(self.shipped, self.dataset, batch_size=batch_size)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None, "history": list(self.history),
                "retrain_id": self.job.retrain_id,
                **({"scaler": self.scaler.state_dict()} if self.scaler.is_enabled() else {})}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("retrain_id") != self.job.retrain_id:
            raise ValueError(f"the checkpoint belongs to retrain {state.get('retrain_id')!r}, not "
                             f"{self.job.retrain_id!r}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler.is_enabled() and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])


def shipped_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The weights that ship from a :meth:`RetrainLoop.state_dict`: the EMA's when it was kept."""
    ema = state.get("ema")
    if ema is None:
        return dict(state["model"])
    # AveragedModel keeps the model under "module." plus its own n_averaged counter.
    return {k[len("module."):]: v for k, v in ema.items() if k.startswith("module.")}


def build_shipped(job: RetrainJob, weights: Mapping[str, Any]) -> Any:
    """The stand-alone model of ``job`` with ``weights``, in eval mode (branch form for MobileOne)."""
    model = job.space().build(job.encoding)
    model.load_state_dict(weights)
    return model.eval()
