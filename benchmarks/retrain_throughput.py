"""Retrain throughput: a plain PyTorch loop against the same loop inside Ray Train with one and two workers.

    .venv/bin/python benchmarks/retrain_throughput.py [--steps 40] [--warmup 5] [--repeats 3] [--batch 64] \
        [--settle 3] [--json benchmarks/results/retrain_throughput.json]

Times the training steps of one stand-alone retrain (:class:`trainers.retrain.RetrainLoop`) of the
quickstart's model and data (space ``moga`` with ``examples/quickstart.yaml``'s settings, its default
encoding, the synthetic 10-class 32x32 task, seed 0) in three ways, all in one process on one local Ray
(``connect(None, num_cpus=2)``), with one torch thread per measuring process:

* ``plain``: the loop in this process (``RetrainLoop(job)``), no Ray involved;
* ``ray_1w``: the loop in the ``train_loop_per_worker`` of a ``ray.train.torch.TorchTrainer`` (Ray Train
  V2) with one worker of one CPU, built as :func:`trainers.retrain_worker.train_loop_per_worker` builds it;
* ``ray_2w``: the same with two workers (DDP through ``prepare_model``, gloo); the global batch stays
  ``--batch``, each worker trains on half of it.

Each measurement builds a fresh loop, runs ``--warmup`` steps, then times ``--steps`` steps (with two
workers: the slower worker's time). The variants are measured interleaved (plain, 1 worker, 2 workers,
plain, ...) ``--repeats`` times and the median is reported, so the machine's noise hits all alike. Only
the steps are timed; the Ray Train start-up (worker processes, process group) is shown separately
(``fit_s``: the whole ``TorchTrainer.fit``); ``cpu/wall`` is the measuring process's CPU time over the
timed steps' wall time (a worker's mean with two): well under 1 means it waited, for a core the machine
did not give it or for the other worker's gradients; ``cpu ms/step`` (CPU time per step, a worker's mean)
is the least sensitive to other load on the machine. Prints a table and the ratios ray_1w/plain (the
overhead of Ray Train itself; target >= 0.9) and ray_2w/ray_1w (data-parallel scaling at a fixed global
batch), and writes ``benchmarks/results/retrain_throughput.json`` (or ``--json``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainers.retrain import RetrainJob, RetrainLoop, check_retrain_settings  # noqa: E402

CONFIG = ROOT / "examples" / "quickstart.yaml"
SEED = 0
VARIANTS = ("plain", "ray_1w", "ray_2w")


def make_job(batch: int, workers: int) -> dict[str, Any]:
    """The quickstart's default architecture as a :class:`RetrainJob`'s fields (a TorchTrainer's config)."""
    from orchestrator.config import load_config

    cfg = load_config(str(CONFIG))
    space = cfg.build_space()
    encoding = space.default_encoding()
    cid = space.candidate_id(encoding)
    return {"retrain_id": f"bench-{cid}-w{workers}", "candidate_id": cid, "encoding": list(encoding),
            "space_name": cfg.space.name, "space_settings": cfg.space_settings(), "data_kind": cfg.data.kind,
            "data_settings": dict(cfg.data.settings), "seed": SEED,
            "settings": check_retrain_settings({"batch_size": batch, "workers": workers}),
            "task_settings": dict(cfg.detection)}


def run_steps(loop: RetrainLoop, steps: int) -> None:
    """``steps`` training steps (``train_epoch`` runs at most one epoch's worth per call)."""
    while steps > 0:
        done = loop.train_epoch(steps=steps)["steps"]
        steps -= done


def timed_steps(loop: RetrainLoop, warmup: int, steps: int) -> tuple[float, float]:
    """Wall and CPU seconds of this process for ``steps`` steps after ``warmup`` untimed ones."""
    run_steps(loop, warmup)
    began, cpu = time.perf_counter(), time.process_time()
    run_steps(loop, steps)
    return time.perf_counter() - began, time.process_time() - cpu


def process_info() -> dict[str, Any]:
    """What decides a process's CPU speed: its torch threads, the thread env vars, its CPU affinity."""
    return {"pid": os.getpid(), "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS"),
            "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None}


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: built as :func:`trainers.retrain_worker.train_loop_per_worker` builds it, then timed."""
    import ray.train
    import ray.train.torch
    import torch

    from trainers.retrain import RetrainJob, RetrainLoop

    torch.set_num_threads(1)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    loop = RetrainLoop(RetrainJob(**config["job"]), rank=rank, world=world, device=ray.train.torch.get_device(),
                       wrap=ray.train.torch.prepare_model if world > 1 else None)
    run_steps(loop, config["warmup"])
    if world > 1:
        torch.distributed.barrier()  # all workers start the clock together
    began, cpu = time.perf_counter(), time.process_time()
    run_steps(loop, config["steps"])
    seconds, cpu_s = time.perf_counter() - began, time.process_time() - cpu
    if world > 1:  # the step rate of the group is that of its slowest worker; the CPU time is the workers' mean
        slowest = torch.tensor([seconds], dtype=torch.float64)
        torch.distributed.all_reduce(slowest, op=torch.distributed.ReduceOp.MAX)
        mean_cpu = torch.tensor([cpu_s], dtype=torch.float64)
        torch.distributed.all_reduce(mean_cpu)
        seconds, cpu_s = float(slowest), float(mean_cpu) / world
    metrics = {"seconds": seconds, "cpu_s": cpu_s, **process_info()}
    # Train V2 keeps only the metrics that come with a checkpoint (Result.metrics): rank 0 attaches a tiny one.
    with tempfile.TemporaryDirectory() as directory:
        checkpoint = None
        if rank == 0:
            Path(directory, "metrics.json").write_text(json.dumps(metrics))
            checkpoint = ray.train.Checkpoint.from_directory(directory)
        ray.train.report(metrics, checkpoint=checkpoint)


def measure_plain(args: argparse.Namespace, job: dict[str, Any]) -> dict[str, Any]:
    loop = RetrainLoop(RetrainJob(**job))
    seconds, cpu_s = timed_steps(loop, args.warmup, args.steps)
    return {"seconds": seconds, "cpu_s": cpu_s, **process_info()}


def measure_ray(args: argparse.Namespace, job: dict[str, Any], workers: int, storage: Path, name: str,
                ) -> dict[str, Any]:
    import ray.train
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"job": job, "warmup": args.warmup, "steps": args.steps},
        scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=False, resources_per_worker={"CPU": 1}),
        run_config=ray.train.RunConfig(name=name, storage_path=str(storage)),
    )
    began = time.perf_counter()
    result = trainer.fit()
    fit_s = time.perf_counter() - began
    return {**result.metrics, "fit_s": fit_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before them")
    parser.add_argument("--repeats", type=int, default=3,
                        help="measurements per variant (interleaved); the median counts")
    parser.add_argument("--batch", type=int, default=64, help="the global batch (even: two workers split it)")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds to wait before each measurement (Ray starts and stops worker processes)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "retrain_throughput.json")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.repeats < 1 or args.batch < 2 or args.batch % 2:
        parser.error("--steps >= 1, --warmup >= 0, --repeats >= 1 and an even --batch >= 2")
    torch.set_num_threads(1)  # as each Ray Train worker (cpus_per_worker 1)

    from orchestrator._ray_env import quiet_ray

    quiet_ray()  # as hwnas commands start Ray (Train V2 on, Tune's tables off)
    import ray

    from cluster import connect

    jobs = {"plain": make_job(args.batch, 1), "ray_1w": make_job(args.batch, 1), "ray_2w": make_job(args.batch, 2)}
    connect(None, num_cpus=2)
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    try:
        with tempfile.TemporaryDirectory(prefix="retrain-throughput-") as tmp:
            for repeat in range(args.repeats):
                for variant in VARIANTS:
                    time.sleep(args.settle)
                    load = os.getloadavg()[0]
                    if variant == "plain":
                        run = measure_plain(args, jobs[variant])
                    else:
                        workers = int(variant[len("ray_"):-1])
                        run = measure_ray(args, jobs[variant], workers, Path(tmp), f"{variant}-{repeat}")
                    run["steps_per_s"] = args.steps / run["seconds"]
                    run["cpu_per_wall"] = run["cpu_s"] / run["seconds"]
                    run["cpu_ms_per_step"] = 1000.0 * run["cpu_s"] / args.steps
                    run["loadavg_1min_before"] = load
                    runs[variant].append(run)
                    fit = f"  (fit {run['fit_s']:.1f} s)" if "fit_s" in run else ""
                    print(f"repeat {repeat + 1}/{args.repeats}  {variant:<7} {run['steps_per_s']:6.2f} steps/s  "
                          f"cpu/wall {run['cpu_per_wall']:.2f}  cpu ms/step {run['cpu_ms_per_step']:6.1f}  "
                          f"load {load:.1f}{fit}", flush=True)
    finally:
        ray.shutdown()

    summary = {}
    for variant in VARIANTS:
        rates = [r["steps_per_s"] for r in runs[variant]]
        median = statistics.median(rates)
        summary[variant] = {"workers": 0 if variant == "plain" else int(variant[len("ray_"):-1]),
                            "steps_per_s": median, "images_per_s": median * args.batch,
                            "ms_per_step": 1000.0 / median, "min_steps_per_s": min(rates),
                            "max_steps_per_s": max(rates),
                            "cpu_per_wall": statistics.median(r["cpu_per_wall"] for r in runs[variant]),
                            "cpu_ms_per_step": statistics.median(r["cpu_ms_per_step"] for r in runs[variant])}
    ratios = {"ray_1w/plain": summary["ray_1w"]["steps_per_s"] / summary["plain"]["steps_per_s"],
              "ray_2w/ray_1w": summary["ray_2w"]["steps_per_s"] / summary["ray_1w"]["steps_per_s"],
              # The same on CPU time (less sensitive to other load): plain's CPU ms per step over ray_1w's.
              "cpu_ray_1w/plain": summary["plain"]["cpu_ms_per_step"] / summary["ray_1w"]["cpu_ms_per_step"]}

    print(f"\nretrain throughput: moga (quickstart) default encoding, global batch {args.batch}, "
          f"{args.warmup} warm-up + {args.steps} timed steps, median of {args.repeats}")
    print(f"{'variant':<8} {'workers':>7} {'steps/s':>8} {'images/s':>9} {'ms/step':>8} {'min-max steps/s':>16} "
          f"{'cpu/wall':>8} {'cpu ms/step':>11} {'fit_s':>6}")
    for variant in VARIANTS:
        s = summary[variant]
        fits = [r["fit_s"] for r in runs[variant] if "fit_s" in r]
        fit = f"{statistics.median(fits):6.1f}" if fits else f"{'-':>6}"
        print(f"{variant:<8} {s['workers'] or '-':>7} {s['steps_per_s']:8.2f} {s['images_per_s']:9.1f} "
              f"{s['ms_per_step']:8.1f} {s['min_steps_per_s']:7.2f}-{s['max_steps_per_s']:<8.2f} "
              f"{s['cpu_per_wall']:8.2f} {s['cpu_ms_per_step']:11.1f} {fit}")
    print(f"ray_1w/plain  = {ratios['ray_1w/plain']:.3f}  (target >= 0.9)")
    print(f"ray_2w/ray_1w = {ratios['ray_2w/ray_1w']:.3f}")
    print(f"on CPU time per step: ray_1w/plain = {ratios['cpu_ray_1w/plain']:.3f}")
    for variant in VARIANTS:
        r = runs[variant][0]
        print(f"{variant:<8} threads: torch {r['torch_threads']} (interop {r['torch_interop_threads']}), "
              f"OMP_NUM_THREADS={r['OMP_NUM_THREADS']}, affinity {r['affinity_cpus']} CPUs")

    out = {
        "benchmark": "retrain_throughput", "config": str(CONFIG.relative_to(ROOT)),
        "space": jobs["plain"]["space_name"],
        "space_settings": jobs["plain"]["space_settings"], "candidate_id": jobs["plain"]["candidate_id"],
        "seed": SEED, "batch": args.batch, "warmup": args.warmup, "steps": args.steps, "repeats": args.repeats,
        "settle_s": args.settle,
        "summary": summary, "ratios": ratios, "runs": runs,
        "env": {"torch": torch.__version__, "ray": ray.__version__, "python": platform.python_version(),
                "cpu_count": os.cpu_count(), "ray_num_cpus": 2},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
