"""The supernet training time of a setting against the 600 single-path steps it replaces, as a ratio in one run.

Trains the config's supernet (default: the quickstart's) for ``--steps`` steps with each ``--variant``
(``NAME:KEY=VALUE,...``, as in ``ranking_study.py``), round-robin ``--rounds`` times so that a busy machine
slows every variant alike, and reports seconds per step and the whole-training time relative to the first
variant (``steps`` of each variant's full schedule times its seconds per step)::

    .venv/bin/python benchmarks/supernet_step_cost.py --variant 'single:sandwich="off",distill=false,steps=600' \\
        --variant quickstart:
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trainers  # noqa: E402
from orchestrator.config import load_config  # noqa: E402
from ranking_study import parse_variant  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=ROOT / "examples" / "quickstart.yaml")
    p.add_argument("--variant", action="append", default=[])
    p.add_argument("--steps", type=int, default=20, help="timed steps per variant and round")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = load_config(args.config)
    space = cfg.build_space()
    data = trainers.make_dataset(cfg.data.kind, seed=cfg.seed, settings=cfg.data.settings)
    variants = [parse_variant(v) for v in args.variant]
    trainers_by_name, seconds = {}, {name: 0.0 for name, _ in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in variants:
            settings = trainers.SupernetTrainSettings(**{**vars(cfg.supernet), "threads": 1, **overrides})
            task = trainers.make_task(data.task, vars(settings))
            trainer = trainers.SupernetTrainer(space=space, task=task, dataset=data, settings=settings, seed=0,
                                               checkpoint_path=Path(tmp) / f"{name}.pt")
            trainer.settings = trainers.SupernetTrainSettings(  # no checkpoint writes inside the timing
                **{**vars(settings), "checkpoint_every": 10**7})
            trainer.train_steps(2)  # warm-up
            trainers_by_name[name] = (trainer, settings.steps)
        for _ in range(args.rounds):
            for name, _ in variants:
                trainer, _steps = trainers_by_name[name]
                started = time.perf_counter()
                trainer.train_steps(args.steps)
                seconds[name] += time.perf_counter() - started
    first = variants[0][0]
    per_step = {name: seconds[name] / (args.steps * args.rounds) for name in seconds}
    total = {name: per_step[name] * trainers_by_name[name][1] for name in seconds}
    for name in seconds:
        print(f"{name:<14} {per_step[name]:.3f} s/step x {trainers_by_name[name][1]} steps = {total[name]:.0f} s "
              f"({total[name] / total[first]:.2f}x {first})")


if __name__ == "__main__":
    main()
