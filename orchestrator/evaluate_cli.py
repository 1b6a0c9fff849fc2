"""``hwnas evaluate EXPERIMENT_DIR --candidate ID``: recompute one candidate's scores from the experiment.

The candidate's model is taken from the experiment's trained supernet (checked against the digest
recorded when training finished), its BN statistics recalibrated exactly as the search did, and
scored on the validation split. For a detector, ``--out`` also writes its detections in COCO results
format (original image pixels, the dataset's own category ids), so they can be checked with any COCO
tooling. No Ray, no MLflow: it runs on this machine, read-only except for ``--out``.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

from core.errors import ConfigError, ExperimentError
from core.jsonio import write_json_atomic
from core.validation import check_out_file

__all__ = ["add_evaluate_command", "evaluate_candidate"]


def evaluate_candidate(directory: str, candidate: str, out: str | None = None) -> dict[str, Any]:
    """The recomputed metrics of ``candidate`` (an id from the journal) beside those the search recorded."""
    import torch

    from trainers import score

    from .evaluator import worker_state
    from .experiment import Experiment
    from .pipeline import eval_context

    exp = Experiment.open(directory)
    out_path = check_out_file("--out", out, example="detections.json") if out is not None else None
    if out_path is not None and exp.config.data.task != "detection":
        raise ConfigError(f"--out writes a detector's detections, and experiment {exp.directory} is a "
                          f"{exp.config.data.task} search. HINT: drop --out; --json prints the metrics.")
    state = exp.journal.replay()
    if state.stage("train_supernet") != "completed":
        raise ExperimentError(f"experiment {exp.directory} has no trained supernet yet. HINT: run "
                              f"`hwnas resume {exp.directory}` until training completes.")
    record = state.candidates.get(candidate)
    if record is None:
        known = ", ".join(sorted(state.candidates)[:3])
        raise ConfigError(f"--candidate {candidate!r}: no candidate of experiment {exp.directory} has this id"
                          f"{f' (e.g. {known})' if known else ''}. HINT: `hwnas status {exp.directory}` lists them.")
    torch.set_num_threads(1)  # as the search's trial workers: the same floats
    ctx = eval_context(exp, state.completed["train_supernet"]["digest"])
    worker = worker_state(ctx)
    encoding = ctx.space.parse(record["encoding"])
    began = time.perf_counter()
    model = ctx.inherited_model(worker, encoding)
    if out_path is None:
        metrics = score(worker.task, model, worker.dataset, batch_size=ctx.evaluation["batch_size"])
    else:
        detections = worker.task.detections(model, worker.dataset, batch_size=ctx.evaluation["batch_size"])
        out_path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_path, detections)
        metrics = worker.task.score_detections(detections, worker.dataset)
    names = [m for m in (*worker.task.METRICS, *worker.task.DETAIL_METRICS) if m in metrics]
    return {
        "candidate_id": candidate, "encoding": record["encoding"], "metrics": {m: metrics[m] for m in names},
        "recorded": {m: record[m] for m in names if m in record}, "seconds": round(time.perf_counter() - began, 3),
        **({"detections": str(out_path), "detections_count": len(detections)} if out_path is not None else {}),
    }


def _cmd_evaluate(args: argparse.Namespace) -> int:
    result = evaluate_candidate(args.experiment_dir, args.candidate, args.out)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"candidate {result['candidate_id']}  {result['encoding']}  ({result['seconds']:.1f} s)")
    for name, value in result["metrics"].items():
        recorded = result["recorded"].get(name)
        note = "" if recorded is None else f"   (search recorded {recorded:.4f})"
        print(f"  {name:<11} {value:.4f}{note}")
    if "detections" in result:
        print(f"{result['detections_count']} detections in COCO results format: {result['detections']}")
    return 0


def add_evaluate_command(sub: Any) -> dict[str, Any]:
    """Register ``hwnas evaluate`` on the main parser; returns {command: handler}."""
    p = sub.add_parser("evaluate", help="recompute a candidate's metrics from the experiment's supernet",
                       description="Read-only except --out: recalibrates BN and scores one candidate as the search "
                                   "did; for a detector, --out writes its detections in COCO results format.")
    p.add_argument("experiment_dir", metavar="EXPERIMENT_DIR")
    p.add_argument("--candidate", required=True, metavar="ID", help="a candidate id (see `hwnas status`)")
    p.add_argument("--out", metavar="FILE.json", help="detectors: write the validation detections (COCO results)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return {"evaluate": _cmd_evaluate}
