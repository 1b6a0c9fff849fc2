"""The metrics a candidate carries, named once: the task's scores, then what the candidate costs.

Objectives and constraints may name any of them; the evaluator reports them; the journal, MLflow and
the result tables use these names.
"""
from __future__ import annotations

__all__ = ["COST_METRICS", "LATENCY_DETAIL_KEYS", "TIMING_KEYS", "candidate_metrics", "metric_names",
           "readable_metrics"]

#: What a candidate costs: latency (measured or predicted), trainable parameters, multiply-adds.
COST_METRICS: tuple[str, ...] = ("latency_ms", "params", "madds")
#: The statistics of a measured latency, beside its median ``latency_ms``.
#: ``latency_foreign_cores``: cores other processes kept busy while it was measured; ``latency_noisy``: 1 when
#: that was more than the node had free (the figure is then suspect; see cluster.host_load), else 0.
LATENCY_DETAIL_KEYS: tuple[str, ...] = ("latency_min_ms", "latency_p90_ms", "latency_cv", "latency_runs",
                                        "latency_foreign_cores", "latency_noisy")
#: When a candidate's evaluation began (Unix seconds) and how long it took: kept in the journal record,
#: not metrics an objective could name.
TIMING_KEYS: tuple[str, ...] = ("eval_started", "eval_seconds")
#: Counts shown in millions in MLflow (``params_m = 0.863``, not ``params = 863252``).
_IN_MILLIONS = ("params", "madds")


def metric_names(task: str) -> tuple[str, ...]:
    """The metric names of a candidate of ``task``: the task's metrics, then :data:`COST_METRICS`."""
    from trainers import TASKS

    return TASKS.get(task).METRICS + COST_METRICS


def candidate_metrics(record: dict) -> dict[str, float]:
    """The numeric metrics in a candidate record (task, cost and latency details), as floats."""
    from trainers import TASKS

    names = {m for cls in (TASKS.get(n) for n in TASKS.names()) for m in cls.METRICS + cls.DETAIL_METRICS}
    names.update(COST_METRICS + LATENCY_DETAIL_KEYS)
    return {k: float(v) for k, v in record.items() if k in names and v is not None}  # None: not measured


def readable_metrics(record: dict) -> dict[str, float]:
    """The record's metrics as a person compares them in MLflow: counts in millions (``params_m``,
    ``madds_m``), and the evaluation's seconds where the record has them."""
    metrics = {f"{k}_m" if k in _IN_MILLIONS else k: v / 1e6 if k in _IN_MILLIONS else v
               for k, v in candidate_metrics(record).items()}
    if record.get("eval_seconds") is not None:
        metrics["eval_seconds"] = float(record["eval_seconds"])
    return metrics
