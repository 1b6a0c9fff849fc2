"""How well do the cost models predict measured latency? (issue 4 targets)

For each ``--samples`` value, fits a ``--kind`` cost model exactly as ``hwnas costmodel fit`` does
(architectures drawn from the seed, measured whole through the latency service on the local CPU,
25% held out), then measures ``--eval-samples`` fresh architectures (the ``eval`` stream, as
``hwnas costmodel eval``) and reports r^2, RMSE (ms and % of the mean measured latency), Spearman
and Kendall on them. Measurements are cached in ``--cache``, so a second run (or another kind on the
same space and settings) measures only what is new. The last line is one JSON object.

    # LUT on moga at a realistic input size (target: RMSE <= 5% of the mean latency)
    .venv/bin/python benchmarks/costmodel_fidelity.py --space moga --kind lut --input-size 224 --samples 20
    # linear: how few samples reach r^2 >= 0.98 (point --space at mobiledet once it exists)
    .venv/bin/python benchmarks/costmodel_fidelity.py --space moga --kind linear --input-size 128 \
        --samples 20,40,80,160
    # a minute-long smoke run
    .venv/bin/python benchmarks/costmodel_fidelity.py --quick
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster import LatencyClient, MeasureOptions, connect  # noqa: E402
from cluster.calibration import ServiceMeasurer, evaluate_cost_model, fit_cost_model  # noqa: E402
from spaces import get_space  # noqa: E402
from orchestrator.cost_cli import _settings_overrides  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="moga")
    p.add_argument("--kind", choices=("linear", "lut"), default="lut")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="space settings, e.g. --set width_mult=0.5")
    p.add_argument("--samples", default="20", help="comma-separated fit sample counts, e.g. 20,40,80")
    p.add_argument("--eval-samples", type=int, default=30)
    p.add_argument("--no-op-features", action="store_true",
                   help="linear: seed 000's per-layer indicators only (no per-op-kind MAdds / traffic / count)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default="/tmp/hwnas-bench-latency.jsonl")
    p.add_argument("--quick", action="store_true", help="input 64, width 0.5, 8 fit and 8 eval samples, light effort")
    args = p.parse_args()
    settings = _settings_overrides(args.overrides, args.space)
    options = MeasureOptions()
    if args.quick:
        args.input_size, args.samples, args.eval_samples = 64, "8", 8
        settings.setdefault("width_mult", 0.5)
        options = MeasureOptions(warmup=3, min_runs=10, min_time_s=0.05)
    space = get_space(args.space, **{**settings, "input_size": args.input_size})

    connect(None)
    client = LatencyClient("cpu", args.cache, options=options)
    measurer = ServiceMeasurer(client, progress=lambda line: print(line, file=sys.stderr, flush=True))
    rows = []
    for samples in (int(s) for s in args.samples.split(",")):
        load = os.getloadavg()[0]
        started = time.perf_counter()
        fitted = fit_cost_model(args.kind, space, samples=samples, seed=args.seed, measurer=measurer, device="cpu",
                                options={"op_features": False} if args.no_op_features else None)
        fit_s = time.perf_counter() - started
        report = evaluate_cost_model(fitted.model, samples=args.eval_samples, seed=args.seed, measurer=measurer)
        row = {"samples": samples, "holdout": fitted.info["fidelity"], "eval": report, "fit_seconds": round(fit_s, 1),
               "load_avg_1m_before": round(load, 2), "load_avg_1m_after": round(os.getloadavg()[0], 2)}
        rows.append(row)
        print(f"{args.kind} {args.space} @{args.input_size} samples {samples}: eval n {report['n']} r2 "
              f"{report['r2']:.4f}  RMSE {report['rmse_ms']:.3f} ms ({report['rmse_pct']:.2f}% of mean "
              f"{report['mean_ms']:.2f} ms)  Spearman {report['spearman']:.3f}  Kendall {report['kendall']:.3f}  "
              f"(held-out r2 {fitted.info['fidelity']['r2']}, fit {fit_s:.0f} s, load {load:.2f})", flush=True)
    print(json.dumps({"space": space.identity, "kind": args.kind, "rows": rows}))


if __name__ == "__main__":
    main()
