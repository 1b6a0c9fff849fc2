"""``hwnas status``: what an experiment has done, read from its journal (read-only, no Ray, no MLflow)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .experiment import Experiment
from .pipeline import stages_for
from .results import format_table, front_table, pareto_ids
from .retrain import format_retrain_table, retrain_rows

__all__ = ["experiment_status", "format_status"]


def experiment_status(directory: str | Path) -> dict[str, Any]:
    exp = Experiment.open(directory)
    state = exp.journal.replay()
    records = list(state.candidates.values())
    front = pareto_ids(records, exp.config.search.objectives, exp.config.search.constraints)
    names = stages_for(exp.config)
    stages = {name: state.stage(name) for name in names}
    current = next((s for s in names if stages[s] != "completed"), None)
    return {
        "experiment": exp.config.name,
        "directory": str(exp.directory),
        "state": "completed" if current is None else ("running or interrupted" if state.started else "created"),
        "stage": current or "done",
        "stages": stages,
        "attempts": state.attempts,
        "candidates_evaluated": len(records),
        "candidates_total": exp.config.total_candidates,
        "failed_trials": len(state.failures),
        "pareto": front_table(records, front, exp.config.quality_metric),
        "quality": exp.config.quality_metric,
        "retrains": retrain_rows(exp, state),
        "tracking_uri": exp.tracking_uri,
    }


def format_status(s: dict[str, Any]) -> str:
    lines = [
        f"experiment:  {s['experiment']}  ({s['directory']})",
        f"state:       {s['state']}; stage: {s['stage']}",
        "stages:      " + ", ".join(f"{k}={v}" for k, v in s["stages"].items()),
        f"candidates:  {s['candidates_evaluated']}/{s['candidates_total']} evaluated, {s['failed_trials']} failed",
        f"MLflow:      {s['tracking_uri']}",
        "",
        f"Pareto front ({len(s['pareto'])} candidates):",
        format_table(s["pareto"]),
    ]
    if s["retrains"]:
        lines += ["", f"Retrained from scratch ({len(s['retrains'])}):", format_retrain_table(s["retrains"], s["quality"])]
    return "\n".join(lines)
