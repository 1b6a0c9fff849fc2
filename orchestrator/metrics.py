"""The metrics a candidate carries, named once: the task's scores, then what the candidate costs.

Objectives and constraints may name any of them; the evaluator reports them; the journal, MLflow and
the result tables use these names.
"""
from __future__ import annotations

__all__ = ["COST_METRICS", "LATENCY_DETAIL_KEYS", "candidate_metrics", "metric_names"]

#: What a candidate costs: latency (measured or predicted), trainable parameters, multiply-adds.
COST_METRICS: tuple[str, ...] = ("latency_ms", "params", "madds")
#: The statistics of a measured latency, beside its median ``latency_ms``.
LATENCY_DETAIL_KEYS: tuple[str, ...] = ("latency_min_ms", "latency_p90_ms", "latency_cv", "latency_runs")


def metric_names(task: str) -> tuple[str, ...]:
    """The metric names of a candidate of ``task``: the task's metrics, then :data:`COST_METRICS`."""
    from trainers import TASKS

    return TASKS.get(task).METRICS + COST_METRICS


def candidate_metrics(record: dict) -> dict[str, float]:
    """The numeric metrics in a candidate record (task, cost and latency details), as floats."""
    from trainers import TASKS

    names = {m for cls in (TASKS.get(n) for n in TASKS.names()) for m in cls.METRICS + cls.DETAIL_METRICS}
    names.update(COST_METRICS + LATENCY_DETAIL_KEYS)
    return {k: float(v) for k, v in record.items() if k in names}
