"""How repeatable is a latency measurement on this node: plain medians against reference-paired ratios.

Measures the same ``--models`` architectures twice, one pass after the other, both ways: plainly
(:func:`cluster.measure.measure_onnx`, the median of the model's runs) and paired with the space's
default architecture (:func:`cluster.measure.measure_paired`, the median ratio of the model's runs to
the reference's run right after each). Reports, per way, how well the second pass reproduces the
first (r^2, Kendall, median relative difference) and how much the reference's own median moved.
On a quiet dedicated machine both agree; on a shared host (or a laptop changing its clock) the plain
medians follow the node's speed and the ratios do not. The last line is one JSON object.

    .venv/bin/python benchmarks/measurement_drift.py --space moga --input-size 128 --models 30
    .venv/bin/python benchmarks/measurement_drift.py --space mobiledet --setting target=cpu \
        --setting task=classification --input-size 128 --models 40
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster import get_device  # noqa: E402
from cluster.calibration import export_architecture, sample_architectures  # noqa: E402
from cluster.fit_statistics import scores  # noqa: E402
from cluster.measure import MeasureOptions, measure_onnx, measure_paired  # noqa: E402
from spaces import get_space  # noqa: E402


def _agreement(first: np.ndarray, second: np.ndarray) -> dict[str, float]:
    got = scores(second, first)
    return {"r2": round(got["r2"], 4), "kendall": round(got["kendall"], 4),
            "median_rel_diff": round(float(np.median(np.abs(second / first - 1))), 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="moga")
    p.add_argument("--input-size", type=int, default=128)
    p.add_argument("--models", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                   help="a space setting beyond the input size, e.g. --setting target=cpu (repeatable)")
    args = p.parse_args()
    settings = dict(item.split("=", 1) for item in args.setting)
    space = get_space(args.space, **settings, input_size=args.input_size)
    shape = space.input_shape
    options, cpu = MeasureOptions(), get_device("cpu")
    reference = export_architecture(space, space.default_encoding())
    models = [export_architecture(space, e) for e in sample_architectures(space, args.models, seed=args.seed, purpose="drift")]
    plain, paired, reference_ms = [], [], []
    for _ in range(2):
        plain.append(np.array([measure_onnx(m, shape, options=options).median_ms for m in models]))
        pairs = [measure_paired(cpu, m, shape, reference, shape, options=options) for m in models]
        paired.append(np.array([x.relative for x in pairs]))
        reference_ms.append(np.array([x.reference.median_ms for x in pairs]))
    everything = np.concatenate(reference_ms)
    result = {"space": args.space, "input_size": args.input_size, "models": args.models,
              "mean_ms": round(float(plain[0].mean()), 3),
              "spread_cv": round(float(plain[0].std() / plain[0].mean()), 4),
              "plain": _agreement(*plain), "paired": _agreement(*paired),
              "reference_ms_range": [round(float(everything.min()), 3), round(float(everything.max()), 3)]}
    print(f"{args.space}@{args.input_size}, {args.models} models (mean {result['mean_ms']} ms, spread CV "
          f"{result['spread_cv']:.1%}); second pass against the first: plain medians r2 {result['plain']['r2']}, "
          f"Kendall {result['plain']['kendall']}; paired ratios r2 {result['paired']['r2']}, Kendall "
          f"{result['paired']['kendall']}; the reference's median ranged {result['reference_ms_range']} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
