"""Per registered space: a supernet training step on a random path against the same architecture's
stand-alone training step (same batch, one run, ratio), the time to decode + build + count a
candidate, and the time to extract a candidate from the supernet (``space.extract``: the stand-alone
model with the supernet's weights, what every search trial does first; median over
``--extract-paths`` random paths). Small settings (each space's ``small_settings()``), one thread, CPU.

Usage: python benchmarks/spaces_speed.py [--batch 32] [--steps 20] [--candidates 20] [--extract-paths 10]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from spaces import SPACES, get_space
from core.seeding import make_rng, torch_generator


def _step_time(model: torch.nn.Module, forward, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    for i in range(steps + 3):
        if i == 3:  # the first steps allocate; not what a training loop pays per step
            start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(forward(x), y).backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def measure_space(name: str, *, batch: int, steps: int, candidates: int, extract_paths: int) -> dict:
    cls = SPACES.get(name)
    space = get_space(name, **cls.small_settings())
    size = space.settings["input_size"]
    classes = space.settings["num_classes"]
    x = torch.randn(batch, 3, size, size, generator=torch_generator(0, "bench", "x"))
    y = torch.randint(classes, (batch,), generator=torch_generator(0, "bench", "y"))
    encoding = space.sample(make_rng(0, "bench", name))
    supernet = space.build_supernet(generator=torch_generator(0, "bench", "supernet"))
    standalone = space.build(encoding, generator=torch_generator(0, "bench", "standalone"))
    t_super = _step_time(supernet, lambda t: supernet(t, encoding), x, y, steps)
    t_alone = _step_time(standalone, standalone, x, y, steps)
    rng = make_rng(1, "bench", name)
    encodings = [space.sample(rng) for _ in range(candidates)]
    start = time.perf_counter()
    for e in encodings:
        space.decode(e)
        space.build(e)
        space.count(e)
    per_candidate = (time.perf_counter() - start) / candidates
    start = time.perf_counter()
    for e in encodings:
        space.count(e)
    count_only = (time.perf_counter() - start) / candidates
    extract_times = []
    for e in (space.sample(rng) for _ in range(extract_paths)):
        start = time.perf_counter()
        space.extract(supernet, e)
        extract_times.append(time.perf_counter() - start)
    return {"space": name, "settings": space.settings, "supernet_step_ms": t_super * 1e3,
            "standalone_step_ms": t_alone * 1e3, "ratio": t_super / t_alone,
            "decode_build_count_ms": per_candidate * 1e3, "count_ms": count_only * 1e3,
            "extract_ms": statistics.median(extract_times) * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--extract-paths", type=int, default=10, help="random paths extracted per space (median)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [measure_space(n, batch=args.batch, steps=args.steps, candidates=args.candidates,
                          extract_paths=args.extract_paths) for n in SPACES.names()]
    print(f"{'space':<10} {'supernet step':>14} {'stand-alone':>12} {'ratio':>6} {'decode+build+count':>19} "
          f"{'count':>9} {'extract':>10}")
    for r in rows:
        print(f"{r['space']:<10} {r['supernet_step_ms']:>11.1f} ms {r['standalone_step_ms']:>9.1f} ms "
              f"{r['ratio']:>6.2f} {r['decode_build_count_ms']:>16.1f} ms {r['count_ms']:>6.2f} ms "
              f"{r['extract_ms']:>7.1f} ms")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
