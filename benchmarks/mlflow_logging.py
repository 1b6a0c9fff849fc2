"""CPU per candidate of logging finished candidate runs into a new local MLflow store, in one process:
one transaction per run (``orchestrator.finished_runs``, what hwnas does) against MLflow's client
(``create_run`` + ``log_batch`` + ``set_terminated``, what it did before and still does on a server).

    .venv/bin/python benchmarks/mlflow_logging.py --candidates 200
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.tracking import Tracker  # noqa: E402
from spaces import get_space  # noqa: E402


def cpu_ms_per_candidate(store_dir: Path, n: int, *, one_transaction: bool) -> float:
    space = get_space("moga", **get_space("moga").small_settings())
    tracker = Tracker(tracking_uri=f"sqlite:///{store_dir / 'mlflow.db'}", experiment_name="bench", uid="bench",
                      printer=print, space_name=space.name, space=space, run_tags={"hwnas_space": space.name})
    tracker.start(params={"seed": 0}, tags={})
    tracker.close()
    if not one_transaction:
        tracker._run_writer = None  # the client's three calls
    rng = np.random.default_rng(0)
    records = []
    for i in range(n + 10):
        encoding = space.sample(rng)
        records.append({"candidate_id": f"{space.candidate_id(encoding)}-{i}", "encoding": space.to_string(encoding),
                        "space": space.name, "generation": i // 20, "accuracy": 0.5, "latency_ms": 1.2,
                        "params": 800_000, "madds": 4_000_000, "eval_started": time.time(), "eval_seconds": 0.5})
    for record in records[:10]:  # warm: the experiment, the candidate-run listing, the writer's checks
        tracker._log_candidate(record)
    started = time.process_time()
    for record in records[10:]:
        tracker._log_candidate(record)
    return (time.process_time() - started) / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "one").mkdir()
        (Path(tmp) / "client").mkdir()
        one = cpu_ms_per_candidate(Path(tmp) / "one", args.candidates, one_transaction=True)
        client = cpu_ms_per_candidate(Path(tmp) / "client", args.candidates, one_transaction=False)
    print(f"one transaction: {one:.2f} ms CPU per candidate; MLflow's client: {client:.2f} ms "
          f"(ratio {client / one:.1f})")


if __name__ == "__main__":
    main()
