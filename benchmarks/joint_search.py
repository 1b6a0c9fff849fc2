"""The joint search (TuNAS, issue 14): the controller's overhead per step, and cost targeting.

``overhead``: the quickstart's supernet trained alone and with the controller (``search.mode: joint``,
MAdds as the cost), round-robin, as a ratio of seconds per step in one run. ``targets``: joint searches
of the quickstart's space for cost targets spread over its range (MAdds, 1 M = 1 ms, deterministic), and
where the controller's argmax lands against each target (TuNAS's defining property: within 10%)::

    .venv/bin/python benchmarks/joint_search.py overhead --steps 20 --rounds 3
    .venv/bin/python benchmarks/joint_search.py targets --steps 600 --lr 0.05 --fractions 0.25,0.5,0.75

Runs in this process, without Ray (the trainer the joint search's actor holds).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from orchestrator.config import load_config  # noqa: E402
from orchestrator.joint import JointSettings  # noqa: E402
from orchestrator.joint_trainer import JointTrainer  # noqa: E402
from trainers import SupernetTrainSettings  # noqa: E402
from trainers.supernet import build_trainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def trainer(cfg: Any, directory: Path, name: str, *, steps: int, joint: JointSettings | None,
            seed: int | None = None) -> Any:
    seed = cfg.seed if seed is None else seed
    train = SupernetTrainSettings(**{**vars(cfg.supernet), "steps": steps, "checkpoint_every": 10**9})
    if joint is None and seed == cfg.seed:
        return build_trainer(space=cfg.build_space(), data_kind=cfg.data.kind, data_settings=cfg.data.settings,
                             train=train, seed=seed, checkpoint_path=directory / name)
    from trainers import SupernetTrainer, make_dataset, make_task

    space = cfg.build_space()
    # Another seed changes the initialisation and the paths, never the data: those stay the config's.
    dataset = make_dataset(cfg.data.kind, seed=cfg.seed, settings=cfg.data.settings)
    if joint is None:
        return SupernetTrainer(space=space, task=make_task(dataset.task, vars(train)), dataset=dataset,
                               settings=train, seed=seed, checkpoint_path=directory / name)
    return JointTrainer(joint=joint, cost_fn=lambda path: space.count(path)["madds"] / 1e6, space=space,
                        task=make_task(dataset.task, vars(train)), dataset=dataset, settings=train, seed=seed,
                        checkpoint_path=directory / name)


def overhead(cfg: Any, steps: int, rounds: int) -> None:
    space = cfg.build_space()
    target = space.count(space.default_encoding())["madds"] / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        alone = trainer(cfg, Path(tmp), "alone.pt", steps=10**6, joint=None)
        joint = trainer(cfg, Path(tmp), "joint.pt", steps=10**6, joint=JointSettings(cost_target=target, warmup=0.0))
        times: dict[str, list[float]] = {"alone": [], "joint": []}
        for _ in range(rounds):
            for name, t in (("alone", alone), ("joint", joint)):
                began = time.perf_counter()
                t.train_steps(steps)
                times[name].append((time.perf_counter() - began) / steps)
    best = {k: min(v) for k, v in times.items()}
    print(f"seconds per step (best of {rounds} rounds of {steps}): supernet alone {best['alone']:.3f}, "
          f"joint {best['joint']:.3f}; ratio {best['joint'] / best['alone']:.2f}")


def targets(cfg: Any, steps: int, lr: float, fractions: Sequence[float]) -> None:
    space = cfg.build_space()
    low = space.count(space.smallest_encoding())["madds"] / 1e6
    high = space.count(space.largest_encoding())["madds"] / 1e6
    print(f"space range: {low:.3f} .. {high:.3f} M MAdds (as ms)")
    print("| target | argmax cost | error | entropy | seconds |")
    print("| --- | --- | --- | --- | --- |")
    for fraction in fractions:
        target = low + fraction * (high - low)
        with tempfile.TemporaryDirectory() as tmp:
            began = time.perf_counter()
            t = trainer(cfg, Path(tmp), "joint.pt", steps=steps, joint=JointSettings(cost_target=target, lr=lr))
            t.train_steps(steps)
            cost = space.count(t.controller.argmax())["madds"] / 1e6
            print(f"| {target:.3f} | {cost:.3f} | {100 * (cost / target - 1):+.1f}% | {t.controller.entropy():.2f} | "
                  f"{time.perf_counter() - began:.0f} |", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("overhead", "targets"))
    p.add_argument("--config", type=Path, default=ROOT / "examples" / "quickstart.yaml")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--lr", type=float, default=5e-3, help="the controller's Adam learning rate (TuNAS: 5e-3)")
    p.add_argument("--fractions", default="0.25,0.5,0.75", help="targets as fractions of the space's cost range")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = load_config(args.config)
    if args.what == "overhead":
        overhead(cfg, args.steps, args.rounds)
    else:
        targets(cfg, args.steps, args.lr, [float(f) for f in args.fractions.split(",")])


if __name__ == "__main__":
    main()
