"""A submitted search survives what a real cluster does to it, on separate `ray start` processes.

One cluster for the module: a head (drivers, 1 CPU), a spare worker node (2 CPUs, no device), a node
carrying `device:cpu`, and an `mlflow server`. The first test kills a trial's worker process, takes the
tracking server down for a minute and crashes the spare node, all during one submitted search; the second
crashes the device node. Each ends with every candidate in the journal and in MLflow exactly once.
"""
from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from cli_helpers import run_cli, tiny_config
from cluster.local_cluster import RayNodes, free_port, start_mlflow_server, stop_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("failures")
    nodes = RayNodes(logs=base / "ray-logs")
    port = free_port()
    state = {"nodes": nodes, "port": port, "mlflow_dir": base / "mlflow", "tracking": f"http://127.0.0.1:{port}"}
    state["server"] = start_mlflow_server(state["mlflow_dir"], port)
    try:
        nodes.start_head(num_cpus=1)
        nodes.add_node("device", num_cpus=1, resources={"device:cpu": 1})
        yield state
    finally:
        nodes.stop_all()
        stop_process(state["server"])


def _submit(cluster, *args: str, cwd: Path) -> str:
    nodes = cluster["nodes"]
    proc = run_cli("submit", *args, "--address", nodes.dashboard, "--tracking-uri", cluster["tracking"],
                   cwd=cwd, timeout=300, env=nodes.auth_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return next(line.split("submitted job ")[1].split()[0] for line in proc.stdout.splitlines() if "submitted job" in line)


def _logs(cluster, job: str) -> str:
    nodes = cluster["nodes"]
    proc = run_cli("jobs", "logs", job, "--address", nodes.dashboard, cwd=Path.cwd(), env=nodes.auth_env)
    return proc.stdout


def _wait_job(cluster, job: str, timeout: float = 900) -> str:
    nodes = cluster["nodes"]
    deadline = time.monotonic() + timeout
    while nodes.job(job)["status"] not in ("SUCCEEDED", "FAILED", "STOPPED"):
        assert time.monotonic() < deadline, _logs(cluster, job)[-3000:]
        time.sleep(1)
    return nodes.job(job)["status"]


def _candidates(exp_dir: Path) -> list[str]:
    path = exp_dir / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["candidate_id"] for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["event"] == "candidate"]


def _wait_candidates(exp_dir: Path, n: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while len(_candidates(exp_dir)) < n:
        assert time.monotonic() < deadline, f"{len(_candidates(exp_dir))} candidates after {timeout:g} s"
        time.sleep(0.5)


def _assert_each_candidate_once(cluster, exp_dir: Path, name: str, total: int) -> None:
    from mlflow.tracking import MlflowClient

    journal = sorted(_candidates(exp_dir))
    assert len(journal) == len(set(journal)) == total
    client = MlflowClient(cluster["tracking"])
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id], max_results=2000)
    logged = sorted(r.data.params["candidate_id"] for r in runs if r.data.tags.get("hwnas_role") == "candidate")
    assert logged == journal


def _finish(cluster, exp_dir: Path, cwd: Path) -> None:
    """Resume as a job until the experiment is finished and synced to MLflow."""
    for _ in range(2):
        summary = exp_dir / "summary.json"
        if summary.exists() and json.loads(summary.read_text()).get("mlflow_synced"):
            return
        job = _submit(cluster, "--resume", str(exp_dir), cwd=cwd)
        assert _wait_job(cluster, job) == "SUCCEEDED", _logs(cluster, job)[-3000:]
    raise AssertionError("not synced after two resumes")


def _kill_a_trial(cluster, job: str) -> str:
    """SIGKILL the worker process of one running trial of the job (as the OOM killer would)."""
    nodes: RayNodes = cluster["nodes"]
    hex_id = nodes.job(job)["job_id"]
    deadline = time.monotonic() + 120
    actors: list[dict] = []
    while time.monotonic() < deadline:
        actors = nodes.actors(hex_id)
        trials = [a for a in actors if "ImplicitFunc" in a["class_name"] and a.get("pid")]
        if trials:
            os.kill(trials[0]["pid"], signal.SIGKILL)
            return trials[0]["class_name"]
        time.sleep(0.2)
    raise AssertionError(f"no running trial found; actors: {[a['class_name'] for a in actors]}")


# Two minutes: in `-m extended`, out of the default run (its 30-minute budget). The default run covers a lost
# device node below, MLflow down during a local search, and killed trial workers locally.
@pytest.mark.extended
def test_search_survives_a_killed_trial_a_tracking_outage_and_a_lost_node(cluster, tmp_path: Path) -> None:
    nodes: RayNodes = cluster["nodes"]
    nodes.add_node("spare", num_cpus=2)
    config = tiny_config(tmp_path, name="chaos", cost__kind="measured", cost__min_runs=5, cost__max_runs=20,
                         search__settings={"population_size": 6, "generations": 3}, search__max_concurrent=2)
    exp_dir = tmp_path / "runs" / "chaos"
    job = _submit(cluster, str(config), "--storage", str(tmp_path / "runs"), cwd=tmp_path)
    _wait_candidates(exp_dir, 1)
    _kill_a_trial(cluster, job)
    stop_process(cluster["server"])  # the tracking server down ...
    down_since = time.monotonic()
    _wait_candidates(exp_dir, 6)
    nodes.crash("spare")  # ... and a worker node lost
    time.sleep(max(0.0, 60 - (time.monotonic() - down_since)))
    cluster["server"] = start_mlflow_server(cluster["mlflow_dir"], cluster["port"])  # ... back after a minute
    assert _wait_job(cluster, job) == "SUCCEEDED", _logs(cluster, job)[-3000:]
    _finish(cluster, exp_dir, tmp_path)  # if the search ended during the outage, a resume syncs MLflow
    _assert_each_candidate_once(cluster, exp_dir, "chaos", 18)


def test_lost_device_stops_the_search_clearly_and_it_finishes_once_the_device_is_back(cluster,
                                                                                        tmp_path: Path) -> None:
    nodes: RayNodes = cluster["nodes"]
    config = tiny_config(tmp_path, name="nodevice", cost__kind="measured", cost__min_runs=5, cost__max_runs=20)
    exp_dir = tmp_path / "runs" / "nodevice"
    job = _submit(cluster, str(config), "--storage", str(tmp_path / "runs"), cwd=tmp_path)
    _wait_candidates(exp_dir, 1)
    nodes.crash("device")
    try:
        assert _wait_job(cluster, job, timeout=300) == "FAILED"
        logs = _logs(cluster, job)
        assert nodes.job(job)["driver_exit_code"] == 2, logs[-3000:]
        # The trial measuring when the node died says it is gone; one starting later that it is missing.
        assert re.search(r"hwnas: error: .*no node of (the|this) Ray cluster carries (the resource )?device:cpu",
                         logs) and "Traceback" not in logs, logs[-4000:]
    finally:
        nodes.add_node("device", num_cpus=1, resources={"device:cpu": 1})
    before = set(_candidates(exp_dir))
    _finish(cluster, exp_dir, tmp_path)
    assert before <= set(_candidates(exp_dir))
    _assert_each_candidate_once(cluster, exp_dir, "nodevice", 8)
