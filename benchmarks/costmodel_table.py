"""Cost-model fidelity on every space at two input sizes: the issue 18 table.

For each ``SPACE@SIZE`` it fits every applicable kind exactly as ``hwnas costmodel fit --samples auto``
does (50 architectures of the ``holdout`` stream held out; the fit set grows by 50 from the ``fit``
stream until its cross-validated r^2 gains < 0.005, at most ``--max-samples`` measured in all), then
scores each model on ``--eval-samples`` fresh architectures (the ``eval`` stream, as ``hwnas costmodel
eval``). Held-out and eval architectures are measured in ``--score-passes`` passes and scored on their
mean; the rows give how well two single passes agree. All kinds share the measurements (one cache); the
lookup table also measures its blocks.
Noisy measurements (a busy node) are retried, then left out, and counted. One JSON object per line
goes to ``--out``; a markdown table row per kind to stdout.

    .venv/bin/python benchmarks/costmodel_table.py --targets moga@128,moga@224 --cache /tmp/cm.jsonl \
        --out /tmp/cm-table.jsonl
    # loaded by two other processes (busy loops) for the whole run: how many measurements are marked
    # noisy (a fit refuses beyond a quarter), and the fidelity a kernels model fitted on them anyway has:
    .venv/bin/python benchmarks/costmodel_table.py --targets moga@128 --loaded 2 --cache /tmp/cm-busy.jsonl \
        --out /tmp/cm-busy-rows.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster import LatencyClient, MeasureOptions, connect  # noqa: E402
from cluster.calibration import SCORE_PASSES, ServiceMeasurer, evaluate_cost_model, fit_cost_model  # noqa: E402
from spaces import get_space  # noqa: E402

# Settings per space beyond the input size: mobiledet as the CPU-adapted classifier is what a CPU
# search uses; its detection form at 320 is the paper's (SSDLite head).
SPACE_SETTINGS = {"mobiledet": {"target": "cpu", "task": "classification"}}


def _space(target: str):
    name, _, size = target.partition("@")
    settings = dict(SPACE_SETTINGS.get(name, {}))
    if name == "mobiledet" and size == "320":
        settings["task"] = "detection"
    return get_space(name, **settings, input_size=int(size))


def _row(target: str, kind: str, fitted, report: dict, seconds: float) -> dict:
    f = fitted.info["fidelity"]
    return {"target": target, "kind": kind, "fit_samples": fitted.info["fit_samples"],
            "measured": fitted.info["samples"], "noisy_excluded": fitted.info["noisy_excluded"],
            "steps": fitted.info.get("steps"), "holdout": f, "eval": report, "seconds": round(seconds, 1),
            "load_1m": round(os.getloadavg()[0], 2)}


def _markdown(row: dict) -> str:
    h, e = row["holdout"], row["eval"]

    def interval(bounds):
        return f" [{bounds[0]:.3f}, {bounds[1]:.3f}]" if bounds else ""

    def agreement(report):
        a = report.get("repeatability")
        return f"{a['r2']:.3f} / {a['kendall']:.3f}" if a else "-"

    return (f"| {row['target']} | {row['kind']} | {row['fit_samples']} ({row['measured']}) | "
            f"{h['r2']:.3f}{interval(h['r2_interval'])} | {h['kendall']:.3f}{interval(h['kendall_interval'])} | "
            f"{h['rmse_pct']:.1f}% of {h['mean_ms']:.2f} ms | {agreement(h)} | {e['r2']:.3f} | {e['kendall']:.3f} | "
            f"{row['noisy_excluded']} + {e['noisy_excluded']} | {row['seconds']:.0f} s |")


def _loaded(target: str, client, args) -> None:
    """On a loaded node: how many measurements are marked noisy (more than a quarter: a fit refuses), and
    the fidelity a kernels model fitted on those figures anyway would have, paired and plain."""
    from cluster.calibration import NOISY_LIMIT, holdout_size, sample_architectures
    from cluster.costmodels import KernelCostModel

    space, n = _space(target), args.loaded_samples
    encodings = sample_architectures(space, n, seed=args.seed, purpose="fit")
    held = holdout_size(n)
    for paired in (True, False):
        anyway = ServiceMeasurer(client, noisy_retries=0, paired=paired,
                                 progress=lambda line: print(line, file=sys.stderr, flush=True))
        records = anyway.measure_records(space, encodings, what="loaded")
        ms = [r["latency_ms"] for r in records]
        model = KernelCostModel().fit(space, encodings[:-held], ms[:-held])
        f = model.fidelity(encodings[-held:], ms[-held:])
        noisy = sum(r.get("noisy") is not None for r in records)
        row = {"target": target, "loaded": args.loaded, "paired": paired, "noisy": noisy, "n": n, "fidelity": f}
        with open(args.out, "a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")
        verdict = "refuses" if noisy > NOISY_LIMIT * n else "fits"
        print(f"{target}, {args.loaded} busy processes, {'paired' if paired else 'plain medians'}: {noisy} of {n} "
              f"measurements marked noisy (`hwnas costmodel fit` {verdict}); a kernels model fitted on them anyway: "
              f"held-out r2 {f['r2']:.3f}, Kendall {f['kendall']:.3f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", default="moga@128,moga@224", help="SPACE@SIZE,...")
    p.add_argument("--kinds", default="kernels,linear,lut")
    p.add_argument("--max-samples", type=int, default=300)
    p.add_argument("--eval-samples", type=int, default=40)
    p.add_argument("--score-passes", type=int, default=SCORE_PASSES,
                   help=f"passes over the held-out and eval architectures (default {SCORE_PASSES})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default="/tmp/hwnas-costmodel-table.jsonl")
    p.add_argument("--out", default="/tmp/hwnas-costmodel-table-rows.jsonl")
    p.add_argument("--loaded", type=int, default=0, metavar="N",
                   help="run N busy processes alongside and report what load does instead of the table")
    p.add_argument("--min-runs", type=int, default=MeasureOptions.min_runs)
    p.add_argument("--loaded-samples", type=int, default=40, help="with --loaded: architectures measured")
    args = p.parse_args()
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.loaded)]
    try:
        connect(None)
        client = LatencyClient("cpu", args.cache, options=MeasureOptions(min_runs=args.min_runs))
        if args.loaded:
            for target in args.targets.split(","):
                _loaded(target, client, args)
            return
        measurer = ServiceMeasurer(client, progress=lambda line: print(line, file=sys.stderr, flush=True))
        print("| space @ size | kind | fit samples (measured) | held-out r2 [95%] | held-out Kendall [95%] | "
              "held-out RMSE | two single passes agree: r2 / Kendall | eval r2 | eval Kendall | "
              "noisy left out (fit + eval) | time |", flush=True)
        for target in args.targets.split(","):
            space = _space(target)
            for kind in args.kinds.split(","):
                if kind == "lut" and space.layer_parts() is None:
                    continue
                started = time.perf_counter()
                fitted = fit_cost_model(kind, space, samples="auto", seed=args.seed, measurer=measurer, device="cpu",
                                        max_samples=args.max_samples, score_passes=args.score_passes)
                report = evaluate_cost_model(fitted.model, samples=args.eval_samples, seed=args.seed, measurer=measurer,
                                             score_passes=args.score_passes)
                row = _row(target, kind, fitted, report, time.perf_counter() - started)
                with open(args.out, "a", encoding="utf-8") as out:
                    out.write(json.dumps(row) + "\n")
                print(_markdown(row), flush=True)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


if __name__ == "__main__":
    main()
