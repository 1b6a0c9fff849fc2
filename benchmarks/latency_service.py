"""Repeatability and throughput of the latency service (issue 4 targets).

1. Repeatability: one architecture (``--preset``, default MoGA-A at ``--input-size``) measured
   ``--repeats`` times afresh with the service's default effort (warm-up, >= 30 runs and >= 0.2 s per
   round, up to 3 rounds while the CV > 5%). Reported: the within-measurement CV (median over the
   repeats) and the CV of the repeated medians. Target: <= 3% on an idle node.
2. Throughput: ``--models`` distinct architectures (``--throughput-size`` input) measured through one
   latency actor with the cache off, by 1 client and then by 4 concurrent clients (Ray tasks, each
   measuring a quarter). Reported: measurements/s, the median per-measurement CV, and how far the
   4-client medians are from the 1-client ones (concurrency must not corrupt measurements: the actor
   measures one model at a time, so the two should agree within the noise).

The last line is one JSON object; the 1-minute load average is printed with each figure.

    .venv/bin/python benchmarks/latency_service.py              # ~3 minutes
    .venv/bin/python benchmarks/latency_service.py --quick      # ~1 minute
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray  # noqa: E402
import torch  # noqa: E402

from cluster import LatencyClient, MeasureOptions, connect, get_latency_actor, measure_onnx  # noqa: E402
from spaces import export_onnx, get_preset, get_space  # noqa: E402
from core.seeding import make_rng  # noqa: E402


def _export(space: Any, encoding: Any) -> bytes:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = space.build(encoding).eval()
    size = space.settings["input_size"]
    return export_onnx(model, (1, 3, size, size))


def _cv(values: list[float]) -> float:
    return statistics.pstdev(values) / statistics.fmean(values)


def repeatability(preset: str, input_size: int, repeats: int, options: MeasureOptions) -> dict[str, Any]:
    space, encoding = get_preset(preset)
    space = get_space(space.name, **{**space.settings, "input_size": input_size})
    data = _export(space, encoding)
    load = os.getloadavg()[0]
    stats = [measure_onnx(data, (1, 3, input_size, input_size), options=options) for _ in range(repeats)]
    medians = [s.median_ms for s in stats]
    return {"preset": preset, "input_size": input_size, "repeats": repeats, "median_ms": statistics.median(medians),
            "cv_of_medians": _cv(medians), "within_cv_median": statistics.median(s.cv for s in stats),
            "load_avg_1m": round(load, 2), "load_avg_1m_after": round(os.getloadavg()[0], 2)}


@ray.remote(num_cpus=0)
def _client_task(client: LatencyClient, jobs: list[tuple[str, bytes, list[int]]]) -> list[dict[str, Any]]:
    return [client.measure(cid, data, shape) for cid, data, shape in jobs]


def throughput(models: int, size: int, options: MeasureOptions) -> dict[str, Any]:
    space = get_space("moga", width_mult=0.5, input_size=size)
    rng = make_rng(0, "benchmark", "latency-service")
    blobs = [_export(space, space.sample(rng)) for _ in range(models)]
    shape = [1, 3, size, size]
    get_latency_actor("cpu", None, options=options)  # cache off: every request is measured
    client = LatencyClient("cpu", None, options=options)
    out: dict[str, Any] = {"models": models, "input_size": size}
    medians: dict[int, list[float]] = {}
    for clients in (1, 4):
        jobs = [(f"c{clients}-{i}", data, shape) for i, data in enumerate(blobs)]
        load = os.getloadavg()[0]
        started = time.perf_counter()
        if clients == 1:
            records = [client.measure(*job) for job in jobs]
        else:
            parts = ray.get([_client_task.remote(client, jobs[k::clients]) for k in range(clients)])
            records = sorted((r for part in parts for r in part), key=lambda r: int(r["candidate_id"].split("-")[1]))
        wall = time.perf_counter() - started
        medians[clients] = [r["median_ms"] for r in records]
        out[f"clients_{clients}"] = {"measurements_per_s": len(records) / wall, "wall_s": wall,
                                     "cv_median": statistics.median(r["cv"] for r in records),
                                     "load_avg_1m": round(load, 2)}
    diffs = [abs(a - b) / a for a, b in zip(medians[1], medians[4])]
    out["median_rel_diff_4_vs_1"] = statistics.median(diffs)
    out["max_rel_diff_4_vs_1"] = max(diffs)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="moga-a")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--models", type=int, default=24)
    p.add_argument("--throughput-size", type=int, default=96)
    p.add_argument("--quick", action="store_true", help="input 128, 5 repeats, 12 models")
    args = p.parse_args()
    if args.quick:
        args.input_size, args.repeats, args.models = 128, 5, 12
    torch.set_num_threads(1)
    options = MeasureOptions()
    rep = repeatability(args.preset, args.input_size, args.repeats, options)
    print(f"repeatability {rep['preset']} @{rep['input_size']}: median {rep['median_ms']:.2f} ms, CV of "
          f"{rep['repeats']} medians {100 * rep['cv_of_medians']:.2f}%, within-measurement CV "
          f"{100 * rep['within_cv_median']:.2f}% (load {rep['load_avg_1m']})", flush=True)
    connect(None)
    thr = throughput(args.models, args.throughput_size, options)
    for c in (1, 4):
        t = thr[f"clients_{c}"]
        print(f"throughput, {c} client(s): {t['measurements_per_s']:.2f} measurements/s, median CV "
              f"{100 * t['cv_median']:.2f}% (load {t['load_avg_1m']})", flush=True)
    print(f"4 vs 1 clients, same models: median |diff| {100 * thr['median_rel_diff_4_vs_1']:.2f}%, "
          f"max {100 * thr['max_rel_diff_4_vs_1']:.2f}%", flush=True)
    print(json.dumps({"repeatability": rep, "throughput": thr}))


if __name__ == "__main__":
    main()
