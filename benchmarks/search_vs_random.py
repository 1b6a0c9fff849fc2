"""Is the search worth running? Its Pareto front, retrained, against as many random architectures retrained.

Takes a finished experiment whose front has been retrained (``hwnas search`` with a ``retrain`` section, or
``hwnas retrain EXPERIMENT_DIR --top K``), draws as many random architectures of its space from a fixed
seed, retrains them with the very same command and settings (``hwnas retrain EXPERIMENT_DIR --arch ...``:
Ray Train, the shipped ONNX model measured on the experiment's cost device) and compares the two sets
in the plane users choose in, retrained accuracy against measured latency:

* the hypervolume of each set (accuracy above, latency below a common reference point: the worst
  accuracy and latency of both sets), and its ratio, front / random;
* how many random architectures some front architecture dominates (at least as accurate and as fast,
  better in one), and the reverse;
* mean retrained accuracy and latency of each set.

    .venv/bin/python benchmarks/search_vs_random.py hwnas-runs/quickstart-retrain           # retrain, compare
    .venv/bin/python benchmarks/search_vs_random.py hwnas-runs/quickstart-retrain --no-run  # compare only
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.seeding import make_rng  # noqa: E402
from orchestrator.experiment import Experiment  # noqa: E402

HWNAS = Path(sys.executable).with_name("hwnas")


def random_architectures(exp: Experiment, n: int, seed: int) -> list[str]:
    space = exp.config.build_space()
    rng = make_rng(seed, "benchmark", "search-vs-random")
    return [space.to_string(space.sample(rng)) for _ in range(n)]


def read_retrains(exp: Experiment) -> list[dict[str, Any]]:
    path = exp.directory / "retrain" / "retrains.csv"
    if not path.exists():
        sys.exit(f"{path} does not exist: retrain the front first (hwnas retrain {exp.directory} --top K)")
    with path.open() as fh:
        return [row for row in csv.DictReader(fh) if row["state"] == "done"]


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """(accuracy, latency): ``a`` is at least as accurate and as fast as ``b``, and better in one."""
    return a[0] >= b[0] and a[1] <= b[1] and a != b


def hypervolume(points: Sequence[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by ``points`` (maximise accuracy, minimise latency) and bounded by ``reference``."""
    front = sorted((p for p in points if p[0] > reference[0] and p[1] < reference[1]), key=lambda p: p[1])
    # For each accuracy level the dominated latencies start at the fastest point that reaches it: sweeping
    # by latency, a point adds the band of accuracy it holds above every faster point.
    area, best = 0.0, reference[0]
    for acc, lat in front:
        if acc > best:
            area += (acc - best) * (reference[1] - lat)
            best = acc
    return area


def compare(front: list[tuple[float, float]], rand: list[tuple[float, float]]) -> dict[str, Any]:
    everything = front + rand
    reference = (min(p[0] for p in everything) - 1e-3, max(p[1] for p in everything) * 1.01)
    hv_front, hv_random = hypervolume(front, reference), hypervolume(rand, reference)
    return {
        "n_front": len(front), "n_random": len(rand), "reference": reference,
        "hypervolume_front": hv_front, "hypervolume_random": hv_random,
        "hypervolume_ratio": hv_front / hv_random if hv_random > 0 else None,
        "random_dominated_by_front": sum(any(dominates(f, r) for f in front) for r in rand),
        "front_dominated_by_random": sum(any(dominates(r, f) for r in rand) for f in front),
        "mean_accuracy_front": sum(p[0] for p in front) / len(front),
        "mean_accuracy_random": sum(p[0] for p in rand) / len(rand),
        "mean_latency_front": sum(p[1] for p in front) / len(front),
        "mean_latency_random": sum(p[1] for p in rand) / len(rand),
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("experiment_dir", type=Path)
    p.add_argument("--random", type=int, default=0, help="random architectures (default: as many as the front's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-run", action="store_true", help="compare what is retrained already")
    args = p.parse_args(argv)

    exp = Experiment.open(args.experiment_dir)
    quality = exp.config.quality_metric
    front = [r for r in read_retrains(exp) if r["source"] == "search"]
    archs = random_architectures(exp, args.random or len(front), args.seed)
    if not args.no_run:
        subprocess.run([str(HWNAS), "retrain", str(args.experiment_dir), "--arch", *archs], check=True)
    rows = read_retrains(exp)
    rand = [r for r in rows if r["encoding"] in set(archs)]
    front = [r for r in rows if r["source"] == "search"]
    if not rand or not front:
        sys.exit(f"{len(front)} front and {len(rand)} random architectures retrained: run without --no-run")
    point = lambda r: (float(r[f"retrained_{quality}"]), float(r["latency_ms"]))  # noqa: E731
    result = compare([point(r) for r in front], [point(r) for r in rand])
    for name, group in (("front", front), ("random", rand)):
        for r in sorted(group, key=lambda r: float(r["latency_ms"])):
            print(f"  {name:<6} {r['encoding']:<40} {quality} {float(r[f'retrained_{quality}']):.4f}  "
                  f"latency {float(r['latency_ms']):.3f} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
