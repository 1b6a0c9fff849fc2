"""TuNAS's joint search: the REINFORCE controller learns while the supernet trains (``search.mode: joint``).

Every step the controller samples a path (a function of (seed, step) and the controller's state, so a
resumed search draws the same), that path takes one SGD step of the shared weights (with the sandwich
and distillation, if set), then its reward is computed on a validation minibatch with the weights just
updated: quality (accuracy; for detection the negative detection loss, MobileDets estimate mAP on a
small batch) and cost (the experiment's cost model), combined as TuNAS's absolute reward or MnasNet's.
The controller takes one REINFORCE + Adam step on it against a moving-average baseline. For the first
``warmup`` fraction of the steps the controller's learning rate is zero (TuNAS): its logits stay at
zero, so the shared weights warm up on uniformly sampled paths; only the reward baseline moves then.

The controller's logits, Adam moments and baseline are checkpointed with the weights: a killed trainer
resumes bit for bit (with a deterministic cost model, ``madds``, ``linear`` or ``lut``). The trainer itself
is :class:`orchestrator.joint_trainer.JointTrainer`; this module (settings, the Ray actor, MLflow
metrics, the controller's files) loads without torch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Sequence

from core.errors import ConfigError
from core.settings import REQUIRED, Setting, choice, integer, number, resolve_settings
from searchers import ReinforceController
from searchers._controller import absolute_reward, mnas_reward

__all__ = ["JOINT_SETTINGS", "JointSettings", "check_joint_settings", "controller_from_checkpoint", "start_joint_actor"]

#: The settings of ``search.settings`` in joint mode (TuNAS's defaults).
JOINT_SETTINGS: tuple[Setting, ...] = (
    Setting("cost_target", REQUIRED, number(low=0.0, low_open=True), "the cost budget c0 in ms, e.g. 0.6"),
    Setting("reward", "absolute", choice("absolute", "mnas"), "'absolute' is TuNAS's reward, 'mnas' MnasNet's"),
    Setting("tau", -0.5, number(high=0.0, high_open=True), "TuNAS's tau is negative, e.g. -0.5"),
    Setting("w", -0.07, number(high=0.0), "MnasNet uses w=-0.07"),
    #: The fraction of the supernet steps with the controller's learning rate at zero.
    Setting("warmup", 0.25, number(low=0.0, high=1.0, high_open=True), "a fraction in [0, 1); TuNAS uses 0.25"),
    *ReinforceController.SETTINGS,
    #: Validation images per reward, and how many such minibatches (drawn from the seed) are held in memory.
    Setting("reward_batch_size", 64, integer(minimum=1, maximum=65_536)),
    Setting("reward_batches", 8, integer(minimum=1, maximum=10_000)),
    #: Architectures scored after training: the controller's argmax and the next most probable ones.
    Setting("candidates", 5, integer(minimum=1, maximum=1000)),
)


def check_joint_settings(raw: Mapping[str, Any], *, where: Callable[[str], str] | None = None) -> dict[str, Any]:
    """The joint settings complete, defaults filled in; unknown or bad ones are one :class:`ConfigError`."""
    return resolve_settings(JOINT_SETTINGS, raw, owner="joint search", where=where)


@dataclass(frozen=True)
class JointSettings:
    """Checked joint settings (see :data:`JOINT_SETTINGS`)."""

    cost_target: float
    reward: str = "absolute"
    tau: float = -0.5
    w: float = -0.07
    warmup: float = 0.25
    lr: float = 5e-3
    baseline_momentum: float = 0.95
    entropy_weight: float = 0.0
    reward_batch_size: int = 64
    reward_batches: int = 8
    candidates: int = 5

    def __post_init__(self) -> None:
        checked = check_joint_settings(asdict(self))
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def reward_of(self, quality: float, cost: float) -> float:
        if self.reward == "mnas":
            return mnas_reward(quality, cost, cost_target=self.cost_target, w=self.w)
        return absolute_reward(quality, cost, cost_target=self.cost_target, tau=self.tau)


def require_joint_searcher(searcher: str) -> None:
    if searcher != "reinforce":
        raise ConfigError(f"config field 'search.mode': joint trains the REINFORCE controller with the supernet, "
                          f"so search.searcher must be reinforce, not {searcher!r}. HINT: set search.searcher: "
                          f"reinforce, or search.mode: trials.")


# ---------------------------------------------------------------------------------------- the actor
def make_cost_fn(cost: Mapping[str, Any], space: Any, experiment_dir: str) -> Callable[[Sequence[int]], float]:
    """The experiment's latency (ms) of a path, as its candidates get it: ``madds`` (1 M MAdds = 1 ms),
    ``kernels`` / ``linear`` / ``lut`` (the experiment's cost model), or ``measured`` (the device's latency service: a
    path measured before is a cache hit; a new one is exported and measured: slow, a cost model is better)."""
    from pathlib import Path

    kind = cost["kind"]
    if kind == "madds":
        return lambda path: space.count(path)["madds"] / 1e6
    if kind in ("kernels", "linear", "lut"):
        from cluster.calibration import load_cost_model

        path = Path(experiment_dir) / "cost_model.json"
        return load_cost_model(path, kind=kind, space=space, what="cost model").model.predict
    from cluster import LatencyClient
    from cluster.calibration import ServiceMeasurer

    from .evaluator import measure_options

    measurer = ServiceMeasurer(LatencyClient(cost["device"], str(Path(experiment_dir) / "latency_cache.jsonl"),
                                             options=measure_options(cost),
                                             device_wait_s=cost.get("device_wait_s", 0.0)),
                                paired=False, noisy_retries=0)  # a search's figures: plain medians, not re-taken
    return lambda path: float(measurer.measure(space, path)["median_ms"])


class _JointHost:
    """Holds a joint trainer inside a Ray worker: data, model and cost model are built there."""

    def __init__(self, *, space_name: str, space_settings: dict[str, Any], data_kind: str,
                 data_settings: dict[str, Any], train: Any, seed: int, checkpoint_path: str,
                 joint: dict[str, Any], cost: dict[str, Any], experiment_dir: str,
                 task_settings: dict[str, Any] | None = None, compute: dict[str, Any] | None = None) -> None:
        from spaces import get_space
        from trainers import Compute, make_dataset, make_task

        from .joint_trainer import JointTrainer

        space = get_space(space_name, **space_settings)
        dataset = make_dataset(data_kind, seed=seed, settings=data_settings)
        task = make_task(dataset.task, {**vars(train), **(task_settings or {})})
        self.trainer = JointTrainer(joint=JointSettings(**joint), cost_fn=make_cost_fn(cost, space, experiment_dir),
                                    space=space, task=task, dataset=dataset, settings=train, seed=seed,
                                    checkpoint_path=checkpoint_path,
                                    compute=Compute.from_dict(compute or {"device": "cpu"}))

    def step(self) -> int:
        return self.trainer.step

    def train_steps(self, n: int) -> dict[str, Any]:
        return self.trainer.train_steps(n)

    def report(self) -> dict[str, Any]:
        """The controller now, and the architectures the search stage is to score."""
        from .joint_trainer import candidates_of

        return {**self.trainer.controller_report(), "candidates": [list(c) for c in candidates_of(self.trainer)]}


def start_joint_actor(*, num_cpus: int, num_gpus: float = 0, **kwargs: Any) -> Any:
    """Start the joint trainer's actor; it resumes from the checkpoint (controller included) if one exists."""
    import ray

    return ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0)(_JointHost).remote(**kwargs)


def controller_metrics(space: Any, info: Mapping[str, Any]) -> dict[str, float]:
    """MLflow metrics of one progress report: the chunk's reward, quality, cost and the policy's entropy,
    and every choice's probability (``controller/p/<dimension>/<choice>``), a history over steps."""
    out = {f"joint/{k}": float(info[k]) for k in ("reward", "quality", "cost", "entropy") if k in info}
    for dim, probs in zip(space.dims, info["probabilities"]):
        for index, p in enumerate(probs):
            out[f"controller/p/{dim.name}/{index}"] = float(p)
    return out


def write_controller_files(directory: Any, space: Any, report: Mapping[str, Any]) -> list[Any]:
    """``controller.json`` (final probabilities, argmax, candidates) and ``controller.png``, the heat map of
    the final distribution (decisions down, choices across); returns their paths."""
    from pathlib import Path

    import numpy as np

    from core.jsonio import write_json_atomic

    directory = Path(directory)
    write_json_atomic(directory / "controller.json", {
        "dimensions": [d.name for d in space.dims], "probabilities": report["probabilities"],
        "argmax": report["argmax"], "candidates": report["candidates"], "entropy": report["entropy"]})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = max(len(p) for p in report["probabilities"])
    grid = np.full((len(space.dims), width), np.nan)
    for i, probs in enumerate(report["probabilities"]):
        grid[i, :len(probs)] = probs
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * width, 1.0 + 0.3 * len(space.dims)))
    image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_yticks(range(len(space.dims)), [d.name for d in space.dims], fontsize=7)
    ax.set_xlabel("choice")
    ax.set_title("controller: final choice probabilities")
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(directory / "controller.png", dpi=110)
    plt.close(fig)
    return [directory / "controller.json", directory / "controller.png"]


def controller_from_checkpoint(path: Any, space: Any, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The controller a joint search's checkpoint holds: its probabilities, argmax, entropy and the
    architectures to score (``candidates`` of them, argmax first)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    joint = JointSettings(**settings)
    controller = ReinforceController(sizes=[d.size for d in space.dims], lr=joint.lr,
                                     baseline_momentum=joint.baseline_momentum, entropy_weight=joint.entropy_weight)
    controller.load_state(state["controller"])
    return {"probabilities": [p.tolist() for p in controller.probabilities()], "argmax": list(controller.argmax()),
            "entropy": controller.entropy(),
            "candidates": [list(c) for c in controller.most_probable(joint.candidates)]}
