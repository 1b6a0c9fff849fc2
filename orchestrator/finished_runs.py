"""A finished candidate run written to MLflow's SQL store in one transaction.

MLflow's client writes a finished run in three transactions (create the run, log its values, end it),
each loading the run again through the ORM: about 7.5 ms of CPU per candidate on SQLite, most of what
hwnas adds to Ray Tune per candidate (``benchmarks/orchestration_overhead.py``). A candidate's run is
written once, complete, and never changed, so :class:`FinishedRunWriter` inserts the rows MLflow's store
would have made for it (the run, its tags, params, metrics and latest metrics) with one insert per table
in one transaction: under 1 ms.

It writes only where it writes exactly what MLflow would: a store that is MLflow's ``SqlAlchemyStore``
(MLflow checks on opening it that the database schema is its own) whose tables have the columns this
module fills. Any other store (a tracking server) or an MLflow whose tables differ gets ``None`` from
:meth:`FinishedRunWriter.for_client` and the caller uses the client. Keys and values pass MLflow's own
validation, and metric values are sanitized by the store, as in ``log_batch``.
"""
from __future__ import annotations

import uuid
from typing import Any

__all__ = ["FinishedRunWriter"]

#: The columns this writer fills, per table; MLflow's models must have exactly these.
COLUMNS = {
    "runs": {"run_uuid", "name", "source_type", "source_name", "entry_point_name", "user_id", "status",
             "start_time", "end_time", "deleted_time", "source_version", "lifecycle_stage", "artifact_uri",
             "experiment_id"},
    "tags": {"key", "value", "run_uuid"},
    "params": {"key", "value", "run_uuid"},
    "metrics": {"key", "value", "timestamp", "step", "is_nan", "run_uuid"},
    "latest_metrics": {"key", "value", "timestamp", "step", "is_nan", "run_uuid"},
}


class FinishedRunWriter:
    """Writes a run that is already finished, as MLflow's ``create_run`` + ``log_batch`` +
    ``set_terminated(FINISHED)`` would, in one transaction."""

    def __init__(self, store: Any, tables: dict[str, Any]) -> None:
        self._store, self._tables = store, tables
        self._artifact_roots: dict[str, str] = {}  # experiment id -> its artifact location

    @classmethod
    def for_client(cls, client: Any) -> FinishedRunWriter | None:
        """A writer for ``client``'s store, or None where this writer would not write what MLflow does."""
        try:
            from mlflow.store.tracking.dbmodels import models
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            store = client._tracking_client.store  # MLflow's client has no public handle on its store
            tables = {model.__tablename__: model.__table__ for model in (
                models.SqlRun, models.SqlTag, models.SqlParam, models.SqlMetric, models.SqlLatestMetric)}
        except (ImportError, AttributeError):
            return None
        if type(store) is not SqlAlchemyStore:
            return None
        if any({c.name for c in tables[name].columns} != columns for name, columns in COLUMNS.items()):
            return None
        return cls(store, tables)

    def write(self, experiment_id: str, *, run_name: str, start_ms: int, end_ms: int, tags: dict[str, str],
              params: dict[str, str], metrics: dict[str, float]) -> str:
        """Insert the finished run; its run id. Raises MLflow's own error for an invalid key or value."""
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME, MLFLOW_USER
        from mlflow.utils.validation import _validate_batch_log_data, _validate_batch_log_limits

        tags = {**tags, MLFLOW_RUN_NAME: run_name}
        checked_metrics, checked_params, checked_tags = _validate_batch_log_data(
            [Metric(k, float(v), end_ms, 0) for k, v in metrics.items()],
            [Param(k, str(v)) for k, v in params.items()],
            [RunTag(k, str(v)) for k, v in tags.items()])
        _validate_batch_log_limits(checked_metrics, checked_params, checked_tags)
        run_id = uuid.uuid4().hex
        rows = {
            "runs": [self._run_row(experiment_id, run_id, run_name, start_ms, end_ms, tags.get(MLFLOW_USER))],
            "tags": [{"key": t.key, "value": t.value, "run_uuid": run_id} for t in checked_tags],
            "params": [{"key": p.key, "value": p.value, "run_uuid": run_id} for p in checked_params],
            "metrics": [self._metric_row(m, run_id) for m in checked_metrics],
        }
        rows["latest_metrics"] = rows["metrics"]  # one value per key, at step 0: it is the latest
        with self._store.engine.begin() as connection:
            for name in COLUMNS:  # runs first: the others refer to it
                if rows[name]:
                    connection.execute(self._tables[name].insert(), rows[name])
        return run_id

    def _run_row(self, experiment_id: str, run_id: str, run_name: str, start_ms: int, end_ms: int,
                 user: str | None) -> dict[str, Any]:
        from mlflow.entities import LifecycleStage, RunStatus, SourceType
        from mlflow.utils.uri import append_to_uri_path

        if experiment_id not in self._artifact_roots:
            self._artifact_roots[experiment_id] = self._store.get_experiment(experiment_id).artifact_location
        return {"run_uuid": run_id, "name": run_name, "source_type": SourceType.to_string(SourceType.UNKNOWN),
                "source_name": "", "entry_point_name": "", "user_id": user or "unknown",
                "status": RunStatus.to_string(RunStatus.FINISHED), "start_time": int(start_ms),
                "end_time": int(end_ms), "deleted_time": None, "source_version": "",
                "lifecycle_stage": LifecycleStage.ACTIVE, "experiment_id": int(experiment_id),
                "artifact_uri": append_to_uri_path(self._artifact_roots[experiment_id], run_id, "artifacts")}

    def _metric_row(self, metric: Any, run_id: str) -> dict[str, Any]:
        is_nan, value = self._store.sanitize_metric_value(metric.value)
        return {"key": metric.key, "value": value, "timestamp": metric.timestamp, "step": metric.step,
                "is_nan": is_nan, "run_uuid": run_id}
