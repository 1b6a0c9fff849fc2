"""What the CLI prints when it runs an experiment: progress lines as they come, then the results."""
from __future__ import annotations

from typing import Any

__all__ = ["out", "run_and_report"]


def out(line: str) -> None:
    print(line, flush=True)


def run_and_report(exp: Any, address: str | None, retrain_requests: list[dict[str, Any]] | None = None) -> int:
    """Run ``exp``'s pending stages (and ``retrain_requests``), then print the front, the retrains and
    where the results are."""
    from ._ray_env import quiet_ray
    from .pipeline import run_experiment
    from .results import format_table
    from .retrain import RETRAIN_DIR, format_retrain_table
    from .tracking import ui_command

    quiet_ray()
    summary = run_experiment(exp, address=address, printer=out, retrain_requests=retrain_requests)
    out("")
    out(f"Pareto front ({len(summary['pareto'])} of {summary['candidates']} candidates):")
    out(format_table(summary["pareto"]))
    out("")
    if summary.get("retrains"):
        out(f"Retrained from scratch ({len(summary['retrains'])}; models in {exp.directory / RETRAIN_DIR}/<retrain_id>/"
            f"model.onnx, logged to MLflow):")
        out(format_retrain_table(summary["retrains"], exp.config.quality_metric))
        out("")
    out(f"experiment directory: {exp.directory}")
    out(f"MLflow UI:            {ui_command(exp.tracking_uri, summary.get('mlflow_experiment_id'))}")
    if not summary["mlflow_synced"]:
        out(f"MLflow was unreachable: run `hwnas resume {exp.directory}` to log what is missing.")
    return 0
