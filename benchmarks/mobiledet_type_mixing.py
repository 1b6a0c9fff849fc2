"""Why a MobileDet supernet that mixes layer types trains slowly (finding of 2026-11-21).

Trains the `mobiledet` supernet (small settings: CPU variant, width 0.25, 32x32, 10 classes, the
synthetic data of the quickstart) for 150 SGD steps (batch 64, lr 0.1, momentum 0.9) with paths drawn
from different samplers, and prints the mean training loss of the last 30 steps (chance: 2.30).

Usage: python benchmarks/mobiledet_type_mixing.py [--steps 150]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from spaces.mobiledet import MobileDetSpace
from trainers import SyntheticDataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    torch.set_num_threads(1)
    space = MobileDetSpace(**{**MobileDetSpace.small_settings(), "dropout": 0.0})
    data = SyntheticDataset(seed=0, num_classes=10, image_size=32, train_size=4096, val_size=1024, noise=0.45)
    fixed = space.sample(np.random.default_rng(0))
    widths = space.num_width_dims

    def layers_from(prefixes):
        def sample(rng):
            path = list(space.sample(rng))
            path[:widths] = [3] * widths  # every block at multiplier 1.0
            for i in range(widths, len(path)):
                allowed = [c for c, label in enumerate(space.dims[i].choices) if label.startswith(prefixes)]
                path[i] = int(rng.choice(allowed))
            return tuple(path)
        return sample

    def random_widths(rng):
        return tuple(space.sample(rng)[:widths]) + tuple(fixed[widths:])

    samplers = {
        "one fixed path": lambda rng: fixed,
        "uniform over the whole space": space.sample,
        "random widths, fixed layers": random_widths,
        "ibn layers only (shared weights)": layers_from(("ibn",)),
        "fused layers only (shared weights)": layers_from(("fused",)),
        "tucker layers only (shared weights)": layers_from(("tucker",)),
        "ibn or fused per layer (two weight sets)": layers_from(("ibn", "fused")),
    }
    for name, sample in samplers.items():
        model = space.build_supernet(generator=torch.Generator().manual_seed(0))
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=4e-5)
        rng, losses, start = np.random.default_rng(1), [], time.perf_counter()
        model.train()
        for _ in range(args.steps):
            x, y = data.train_batch(torch.from_numpy(rng.choice(data.train_size, 64, replace=False)))
            loss = torch.nn.functional.cross_entropy(model(x, sample(rng)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        print(f"{name:42s} final loss {np.mean(losses[-30:]):.3f}  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
