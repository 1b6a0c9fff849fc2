"""How repeatable and how right is a latency measurement on this node: plain medians against ratios to a
reference model, paired run by run or in blocks.

Measures the same ``--models`` architectures twice, one pass after the other, four ways:

* ``plain``: :func:`cluster.measure.measure_onnx`, the median of the model's runs;
* ``paired_run_by_run``: paired with the space's reference model run by run, the median ratio of
  each model run to the reference's run right after it (how hwnas paired before 2026-12-05);
* ``paired``: :func:`cluster.measure.measure_paired` as shipped, the median ratio of block medians, each
  block past its settling runs;
* ``alone``: the ratio a deployed model has, each model and the reference timed alone in long
  alternating stretches (3 x 150 ms each, the first 40 ms of each left out): slow, the reference.

The reference is the one hwnas pairs with (``--reference typical``,
:func:`cluster.calibration.reference_encoding`); ``--reference default`` pairs with the space's
default architecture, as hwnas did before 2026-12-05 evening.

Reports, per way, how well the second pass reproduces the first (r^2, Kendall, median relative
difference); per paired way, how its ratios agree with ``alone`` (r^2, Kendall, median quotient) and
the reference's median inside its pairs against the reference timed alone; the models' sizes (ONNX
bytes, nearly all weights); and the seconds each way took per model. On a quiet dedicated machine all agree; on a shared host (or a laptop changing
its clock) the plain medians follow the node's speed and the ratios do not; after a model that fills
the caches, the reference's next run is slow, which run-by-run ratios read and block ratios do not.
The last line is one JSON object.

    .venv/bin/python benchmarks/measurement_drift.py --space moga --input-size 128 --models 30
    .venv/bin/python benchmarks/measurement_drift.py --space mobiledet --setting target=cpu \
        --setting task=classification --input-size 128 --models 30
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster import get_device  # noqa: E402
from cluster.calibration import export_architecture, reference_encoding, sample_architectures  # noqa: E402
from cluster.fit_statistics import scores  # noqa: E402
from cluster.measure import MeasureOptions, _make_feed, _open_session, measure_onnx, measure_paired  # noqa: E402
from spaces import get_space  # noqa: E402

STRETCH_S, SETTLE_S, STRETCHES = 0.15, 0.04, 3


def _agreement(first: np.ndarray, second: np.ndarray) -> dict[str, float]:
    got = scores(second, first)
    return {"r2": round(got["r2"], 4), "kendall": round(got["kendall"], 4),
            "median_rel_diff": round(float(np.median(np.abs(second / first - 1))), 4)}


def _stretch_median_ns(session: Any, feed: dict[str, np.ndarray]) -> float:
    start, kept = time.perf_counter_ns(), []
    while time.perf_counter_ns() - start < STRETCH_S * 1e9 or len(kept) < 5:
        t0 = time.perf_counter_ns()
        session.run(None, feed)
        if t0 - start >= SETTLE_S * 1e9:
            kept.append(time.perf_counter_ns() - t0)
    return float(np.median(kept))


def alone_ratio(model: bytes, reference: bytes, shape: tuple[int, ...]) -> float:
    """The model's latency over the reference's, each timed alone in long alternating stretches."""
    sessions = [_open_session(data, threads=1, provider="CPUExecutionProvider") for data in (model, reference)]
    feeds = [_make_feed(session, shape, seed=0) for session in sessions]
    ratios = []
    for _ in range(STRETCHES):
        model_ns, reference_ns = (_stretch_median_ns(s, f) for s, f in zip(sessions, feeds))
        ratios.append(model_ns / reference_ns)
    return float(np.median(ratios))


def _against(ratios: np.ndarray, alone: np.ndarray) -> dict[str, float]:
    """How a paired way's ratios (the two passes' geometric mean) match the alone ratios: r^2 as they are
    (a latency is ratio x the reference's latency, so the scale counts), Kendall, and the median quotient."""
    got = scores(ratios, alone)
    return {"r2": round(got["r2"], 4), "kendall": round(got["kendall"], 4),
            "median_ratio": round(float(np.median(ratios / alone)), 4)}


def _ways(reference: bytes, shape: tuple[int, ...]) -> dict[str, Callable[[bytes], Any]]:
    options, cpu = MeasureOptions(), get_device("cpu")
    return {
        "plain": lambda m: measure_onnx(m, shape, options=options),
        "paired_run_by_run": lambda m: measure_paired(cpu, m, shape, reference, shape, options=options,
                                                      settle_s=0.0, keep_s=0.0),
        "paired": lambda m: measure_paired(cpu, m, shape, reference, shape, options=options),
        "alone": lambda m: alone_ratio(m, reference, shape),
    }


def _value(way: str, got: Any) -> float:
    return float(got if way == "alone" else got.median_ms if way == "plain" else got.relative)


def _reference_ms(way: str, got: Any) -> float | None:
    """The reference's median inside a paired measurement (None for the other ways)."""
    return got.reference.median_ms if way.startswith("paired") else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="moga")
    p.add_argument("--input-size", type=int, default=128)
    p.add_argument("--models", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                   help="a space setting beyond the input size, e.g. --setting target=cpu (repeatable)")
    p.add_argument("--reference", choices=("typical", "default"), default="typical",
                   help="pair with the typical architecture hwnas uses, or the space's default one")
    args = p.parse_args()
    space = get_space(args.space, **dict(item.split("=", 1) for item in args.setting), input_size=args.input_size)
    shape = tuple(space.input_shape)
    reference = export_architecture(space, reference_encoding(space) if args.reference == "typical"
                                    else space.default_encoding())
    models = [export_architecture(space, e) for e in sample_architectures(space, args.models, seed=args.seed, purpose="drift")]
    ways = _ways(reference, shape)
    values = {way: [] for way in ways}
    seconds = {way: 0.0 for way in ways}
    reference_ms: dict[str, list[float]] = {"alone": [], "paired_run_by_run": [], "paired": []}
    for _ in range(2):
        reference_ms["alone"].append(measure_onnx(reference, shape).median_ms)
        for way, measure in ways.items():
            start = time.perf_counter()
            got = [measure(m) for m in models]
            seconds[way] += time.perf_counter() - start
            values[way].append(np.array([_value(way, g) for g in got]))
            reference_ms.get(way, []).extend(x for x in (_reference_ms(way, g) for g in got) if x is not None)
    alone = np.sqrt(values["alone"][0] * values["alone"][1])
    result = {"space": args.space, "input_size": args.input_size, "models": args.models, "reference": args.reference,
              "mean_ms": round(float(values["plain"][0].mean()), 3),
              "spread_cv": round(float(values["plain"][0].std() / values["plain"][0].mean()), 4),
              "repeat": {way: _agreement(*pair) for way, pair in values.items()},
              "against_alone": {way: _against(np.sqrt(values[way][0] * values[way][1]), alone)
                                for way in ("paired_run_by_run", "paired")},
              "model_mb": [round(float(q), 1) for q in np.percentile([len(m) / 2**20 for m in models], [0, 50, 100])],
              "reference_median_ms": {way: round(float(np.median(v)), 3) for way, v in reference_ms.items()},
              "seconds_per_model": {way: round(total / (2 * len(models)), 3) for way, total in seconds.items()}}
    print(f"{args.space}@{args.input_size}, {args.models} models (mean {result['mean_ms']} ms, spread CV "
          f"{result['spread_cv']:.1%}); second pass against the first (r2 / Kendall): "
          + "; ".join(f"{way} {r['r2']} / {r['kendall']}" for way, r in result["repeat"].items())
          + "; against the alone ratios (r2 / Kendall / median quotient): "
          + "; ".join(f"{way} {r['r2']} / {r['kendall']} / {r['median_ratio']}" for way, r in result["against_alone"].items())
          + f"; models of {result['model_mb']} MB (min, median, max); the reference's median ms "
          f"{result['reference_median_ms']}; seconds per model {result['seconds_per_model']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
