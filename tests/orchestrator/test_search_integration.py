"""End to end through the real CLI: real Ray, real Tune, real MLflow store, real ONNX Runtime."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import run_cli, tiny_config

pytestmark = pytest.mark.integration


def _mlflow_runs(db: Path, name: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name(name)
    return client, client.search_runs([exp.experiment_id], max_results=1000)


def _assert_busy_node_marks(run, exp_dir: Path) -> None:
    """Each measurement says how busy the node was meanwhile, and whether that makes it suspect, where its
    window was long enough to tell (these tiny models' often are not): as the latency cache recorded it."""
    cache = {r["candidate_id"]: r for r in map(json.loads, (exp_dir / "latency_cache.jsonl").read_text().splitlines())}
    busy = cache[run.data.params["candidate_id"]]
    if busy["foreign_cores"] is None:
        assert "latency_noisy" not in run.data.metrics and "latency_foreign_cores" not in run.data.metrics
    else:
        assert run.data.metrics["latency_noisy"] == (1.0 if busy["noisy"] else 0.0)
        assert run.data.metrics["latency_foreign_cores"] == pytest.approx(busy["foreign_cores"])


def test_search_with_measured_latency_end_to_end(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, name="e2e", cost__kind="measured", cost__min_runs=10, cost__max_runs=50)
    proc = run_cli("search", str(config), "--storage", str(tmp_path / "runs"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "[train_supernet] step 40/40" in out
    assert "[search] gen 1 candidates 8/8" in out
    assert "Pareto front (" in out and "mlflow ui --backend-store-uri sqlite:///" in out

    exp_dir = tmp_path / "runs" / "e2e"
    summary = json.loads((exp_dir / "summary.json").read_text())
    assert summary["mlflow_synced"] is True
    pareto = {row["candidate_id"] for row in summary["pareto"]}
    assert pareto and summary["candidates"] == 8
    for cid in pareto:
        assert (exp_dir / "onnx" / f"{cid}.onnx").stat().st_size > 0
    assert (exp_dir / "pareto.png").stat().st_size > 0
    assert len(list((exp_dir).glob("latency_cache.jsonl"))) == 1

    client, runs = _mlflow_runs(tmp_path / "mlflow.db", "e2e")
    parents = [r for r in runs if r.data.tags.get("hwnas_role") == "search"]
    candidates = [r for r in runs if r.data.tags.get("hwnas_role") == "candidate"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(candidates) == 8
    run_ids = {row["candidate_id"]: row["mlflow_run_id"] for row in summary["pareto"]}
    for run in candidates:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert {"candidate_id", "encoding", "generation", "layer_00"} <= set(run.data.params)
        assert {"accuracy", "latency_ms", "params_m", "madds_m", "eval_seconds"} <= set(run.data.metrics)
        assert run.data.metrics["latency_ms"] > 0 and run.info.end_time > run.info.start_time
        _assert_busy_node_marks(run, exp_dir)
        assert run.data.tags["hwnas_searcher"] == "weighted-nsga2" and run.data.tags["hwnas_device"] == "cpu"
        cid = run.data.params["candidate_id"]
        assert run.data.tags["pareto"] == ("true" if cid in pareto else "false")
        assert ("model_uri" in run.data.tags) == (cid in pareto)  # the Pareto candidates' ONNX models
        assert cid not in pareto or run_ids[cid] == run.info.run_id
    with (exp_dir / "pareto.csv").open() as fh:
        assert fh.readline().strip().endswith("mlflow_run_id")
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"pareto.png", "pareto.csv", "pareto.html", "summary.json"} <= artifacts
    (supernet,) = [r for r in runs if r.data.tags.get("hwnas_role") == "supernet"]
    assert supernet.info.status == "FINISHED" and supernet.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
    assert sorted(m.step for m in client.get_metric_history(supernet.info.run_id, "loss")) == list(range(1, 41))
    assert parents[0].data.tags["mlflow.source.name"].startswith("hwnas search")
    # The data as the search run's input, with the digest of what the journal recorded of it.
    from core.digest import json_digest

    identity = next(json.loads(line)["identity"] for line in (exp_dir / "journal.jsonl").read_text().splitlines()
                    if json.loads(line)["event"] == "data")
    (data_input,) = parents[0].inputs.dataset_inputs
    assert data_input.dataset.name == "synthetic" and data_input.dataset.digest == json_digest(identity)

    status = run_cli("status", str(exp_dir), "--json", cwd=tmp_path)
    assert status.returncode == 0
    info = json.loads(status.stdout)
    assert info["state"] == "completed" and info["candidates_evaluated"] == 8
    assert {r["candidate_id"] for r in info["pareto"]} == pareto
