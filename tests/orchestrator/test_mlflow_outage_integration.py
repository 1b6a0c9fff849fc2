"""An unreachable MLflow server delays logging and loses nothing: the search finishes from the
journal, and `hwnas resume` logs every candidate exactly once when a real server is back."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import run_cli, tiny_config
from cluster.local_cluster import free_port, start_mlflow_server, stop_process

pytestmark = pytest.mark.integration


def test_search_survives_mlflow_outage_and_resume_syncs_exactly_once(tmp_path: Path) -> None:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    config = tiny_config(tmp_path, name="outage")
    proc = run_cli("search", str(config), "--storage", str(tmp_path / "runs"), "--tracking-uri", uri, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[mlflow]" in proc.stdout and "hwnas resume" in proc.stdout
    exp_dir = tmp_path / "runs" / "outage"
    summary = json.loads((exp_dir / "summary.json").read_text())
    assert summary["mlflow_synced"] is False and summary["candidates"] == 8

    server = start_mlflow_server(tmp_path / "server", port)
    try:
        for _ in range(2):  # a second resume must not duplicate anything
            again = run_cli("resume", str(exp_dir), cwd=tmp_path)
            assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("outage")
        runs = client.search_runs([exp.experiment_id], max_results=1000)
        cands = [r for r in runs if r.data.tags.get("hwnas_role") == "candidate"]
        parents = [r for r in runs if r.data.tags.get("hwnas_role") == "search"]
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        assert sorted(r.data.params["candidate_id"] for r in cands) == sorted(
            json.loads(line)["candidate_id"] for line in (exp_dir / "journal.jsonl").read_text().splitlines()
            if json.loads(line)["event"] == "candidate")
        front = {r["candidate_id"] for r in summary["pareto"]}
        assert {r.data.params["candidate_id"] for r in cands if r.data.tags["pareto"] == "true"} == front
        assert json.loads((exp_dir / "summary.json").read_text())["mlflow_synced"] is True
    finally:
        stop_process(server)
