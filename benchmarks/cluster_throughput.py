"""A submitted search on a real cluster of `ray start` processes (issue 15): one node against two.

For each layout, a fresh cluster (:class:`cluster.local_cluster.RayNodes`: separate ``ray start`` processes,
token auth) runs the quickstart submitted with ``hwnas submit`` (``cost.kind=madds``, and two candidates at
a time so that a second node can take one), and the experiment's journal gives:

* **submit to first candidate**: from the ``hwnas submit`` command to the first scored candidate (job
  start, supernet training, the search's start);
* **candidates per second** in the search stage: (candidates - 1) / (last - first candidate's time).

The layouts have the same number of CPUs in all (``--cpus``): one node with all of them, or a head and a
worker node with half each. On one machine the two nodes share its cores, so the ratio measures what
distribution costs (scheduling across raylets, object transfers), not a speed-up::

    .venv/bin/python benchmarks/cluster_throughput.py --rounds 1                      # the quickstart as it is
    .venv/bin/python benchmarks/cluster_throughput.py --rounds 1 --set supernet.steps=60   # search-stage figures sooner
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster.local_cluster import RayNodes, client_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = ("one node", "two nodes")


def run_layout(layout: str, cpus: int, overrides: Sequence[str], work: Path) -> dict[str, float]:
    nodes = RayNodes(logs=work / "ray-logs")
    try:
        if layout == "one node":
            nodes.start_head(num_cpus=cpus, resources={"device:cpu": 1})
        else:
            nodes.start_head(num_cpus=cpus // 2, resources={"device:cpu": 1})
            nodes.add_node("worker", num_cpus=cpus - cpus // 2)
        name = "bench-" + layout.replace(" ", "-")
        args = [sys.executable, "-m", "orchestrator.cli", "submit", str(ROOT / "examples" / "quickstart.yaml"),
                "--address", nodes.dashboard, "--storage", str(work / "runs"),
                "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}", "--set", f"name={name}",
                "--set", "cost.kind=madds", "--set", "search.max_concurrent=2"]
        for item in overrides:
            args += ["--set", item]
        began = time.time()
        proc = subprocess.run(args, env=client_env(nodes.auth_env), capture_output=True, text=True, timeout=600)
        if proc.returncode:
            raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
        job = next(line.split("submitted job ")[1].split()[0] for line in proc.stdout.splitlines()
                   if "submitted job" in line)
        while nodes.job(job)["status"] not in ("SUCCEEDED", "FAILED", "STOPPED"):
            time.sleep(2)
        if nodes.job(job)["status"] != "SUCCEEDED":
            raise RuntimeError(f"job {job}: {nodes.job(job)['message']}")
        times = [e["time"] for e in map(json.loads, (work / "runs" / name / "journal.jsonl").read_text().splitlines())
                 if e["event"] == "candidate"]
        return {"first_s": min(times) - began, "per_s": (len(times) - 1) / (max(times) - min(times)),
                "candidates": len(times)}
    finally:
        nodes.stop_all()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=1, help="each layout once per round, alternating")
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the cluster in all (default: this machine's 2)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    results: dict[str, list[dict[str, float]]] = {layout: [] for layout in LAYOUTS}
    for _ in range(args.rounds):
        for layout in LAYOUTS:
            with tempfile.TemporaryDirectory(prefix="hwnas-bench-") as work:
                r = run_layout(layout, args.cpus, args.overrides, Path(work))
            print(f"{layout}: {r['candidates']} candidates, first after {r['first_s']:.1f} s, "
                  f"{r['per_s']:.2f} candidates/s", flush=True)
            results[layout].append(r)
    med = {layout: {k: statistics.median(r[k] for r in rs) for k in ("first_s", "per_s")}
           for layout, rs in results.items()}
    print("| layout | submit to first candidate | candidates per second |")
    print("| --- | --- | --- |")
    for layout in LAYOUTS:
        print(f"| {layout} | {med[layout]['first_s']:.1f} s | {med[layout]['per_s']:.2f} |")
    print(f"two nodes / one node: candidates per second x{med['two nodes']['per_s'] / med['one node']['per_s']:.2f}")


if __name__ == "__main__":
    main()
