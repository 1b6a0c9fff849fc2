"""`hwnas submit` and `hwnas jobs` on a real multi-process Ray cluster on this machine.

A head node (`ray start --head`, with the dashboard: Ray's real job API) and a second node carrying
`device:cpu`, each its own `ray start` process tree, plus an `mlflow server` on 127.0.0.1 as the tracking
server. Searches are submitted as a user would, from the CLI, and checked in the experiment directory, in
MLflow and in Ray's state API.

The nodes run a Python that has every dependency but not hwnas (a cluster where hwnas was never
installed), so every job here carries the source with ``--ship-source``, and one without it fails saying so.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cli_helpers import run_cli, tiny_config
from cluster.local_cluster import RayNodes, free_port, python_without_hwnas, start_mlflow_server, stop_process

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """Head (2 CPUs, no device), a device node (1 CPU, device:cpu), and an MLflow server."""
    base = tmp_path_factory.mktemp("cluster")
    python = python_without_hwnas(base / "venv")
    assert subprocess.run([python, "-c", "import orchestrator"], cwd=base, capture_output=True).returncode != 0
    nodes = RayNodes(logs=base / "ray-logs", python=python)
    port = free_port()
    server = start_mlflow_server(base / "mlflow", port)
    try:
        nodes.start_head(num_cpus=2)
        nodes.add_node("device", num_cpus=1, resources={"device:cpu": 1})
        device_id = next(n["node_id"] for n in nodes.alive_nodes() if "device:cpu" in n["resources_total"])
        yield {"nodes": nodes, "tracking": f"http://127.0.0.1:{port}", "device_id": device_id, "base": base}
    finally:
        nodes.stop_all()
        stop_process(server)


def _jobs(cluster, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    nodes = cluster["nodes"]
    return run_cli("jobs", *args, "--address", nodes.dashboard, cwd=cwd, timeout=300, env=nodes.auth_env)


def _submit(cluster, *args: str, cwd: Path, timeout: float = 900, ship: bool = True) -> subprocess.CompletedProcess[str]:
    nodes = cluster["nodes"]
    return run_cli("submit", *args, *(["--ship-source"] if ship else []), "--address", nodes.dashboard,
                   "--tracking-uri", cluster["tracking"], cwd=cwd, timeout=timeout, env=nodes.auth_env)


def _job_id(stdout: str) -> str:
    return next(line.split("submitted job ")[1].split()[0] for line in stdout.splitlines() if "submitted job" in line)


def _journal_candidates(exp_dir: Path) -> list[str]:
    return sorted(json.loads(line)["candidate_id"] for line in (exp_dir / "journal.jsonl").read_text().splitlines()
                  if json.loads(line)["event"] == "candidate")


def _mlflow_candidates(tracking: str, name: str) -> list[str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=2000)
    return sorted(r.data.params["candidate_id"] for r in runs if r.data.tags.get("hwnas_role") == "candidate")


def test_submitted_search_runs_on_the_cluster_and_measures_on_the_device_node(cluster, tmp_path: Path) -> None:
    config = tiny_config(tmp_path, name="submitted", cost__kind="measured", cost__min_runs=5, cost__max_runs=20)
    storage = tmp_path / "runs"
    proc = _submit(cluster, str(config), "--storage", str(storage), "--wait", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    job = _job_id(proc.stdout)
    assert f"hwnas jobs logs {job} --follow" in proc.stdout and str(storage / "submitted") in proc.stdout
    exp_dir = storage / "submitted"
    assert json.loads((exp_dir / "summary.json").read_text())["candidates"] == 8
    # Every candidate in MLflow exactly once; latency measured on the device node only.
    journal = _journal_candidates(exp_dir)
    assert len(set(journal)) == 8 and _mlflow_candidates(cluster["tracking"], "submitted") == journal
    records = [json.loads(line) for line in (exp_dir / "latency_cache.jsonl").read_text().splitlines()]
    measured = [r for r in records if "node_id" in r]
    assert measured and {r["node_id"] for r in measured} == {cluster["device_id"]}

    listed = _jobs(cluster, "list", "--json", cwd=tmp_path)
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {"job": job, "status": "SUCCEEDED", "kind": "search", "experiment": str(exp_dir)}.items() <= \
        next(r for r in rows if r["job"] == job).items()
    status = _jobs(cluster, "status", job, cwd=tmp_path)
    assert status.returncode == 0 and "SUCCEEDED" in status.stdout and str(exp_dir) in status.stdout
    logs = _jobs(cluster, "logs", job, cwd=tmp_path)
    assert logs.returncode == 0 and "Pareto" in logs.stdout
    followed = _jobs(cluster, "logs", job, "--follow", cwd=tmp_path)  # an ended job: all of it, then it returns
    assert followed.returncode == 0 and "Pareto" in followed.stdout and f"job {job} SUCCEEDED" in followed.stdout

    # The same config again: refused here, with nothing submitted.
    again = _submit(cluster, str(config), "--storage", str(storage), cwd=tmp_path)
    assert again.returncode == 2 and "already holds an experiment" in again.stderr
    assert "Traceback" not in again.stderr and len(again.stderr.strip().splitlines()) == 1
    assert len(_jobs(cluster, "list", "--json", cwd=tmp_path).stdout.splitlines()) == len(rows)


def test_stopped_or_killed_job_leaves_nothing_running_and_resumes_as_a_job(cluster, tmp_path: Path) -> None:
    config = tiny_config(tmp_path, name="stopped", supernet__steps=400, supernet__checkpoint_every=20)
    storage = tmp_path / "runs"
    proc = _submit(cluster, str(config), "--storage", str(storage), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    job = _job_id(proc.stdout)
    exp_dir = storage / "stopped"
    deadline = time.monotonic() + 300
    while not list(exp_dir.glob("**/supernet*.pt")):  # training is under way: a checkpoint exists
        assert time.monotonic() < deadline, _jobs(cluster, "logs", job, cwd=tmp_path).stdout[-3000:]
        time.sleep(1)
    stopped = _jobs(cluster, "stop", job, cwd=tmp_path)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout and f"--resume {exp_dir}" in stopped.stdout
    ray_job_id = json.loads(_jobs(cluster, "status", job, "--json", cwd=tmp_path).stdout)
    assert ray_job_id["status"] == "STOPPED"

    _assert_nothing_left(cluster["nodes"], job)

    # Resumed as a job, whose driver is then SIGKILLed (a crash of the head's driver process).
    proc = _submit(cluster, "--resume", str(exp_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    killed = _job_id(proc.stdout)
    nodes = cluster["nodes"]
    deadline = time.monotonic() + 300
    while not (nodes.job(killed).get("driver_info") or {}).get("pid") or "resuming" not in _jobs(
            cluster, "logs", killed, cwd=tmp_path).stdout:
        assert time.monotonic() < deadline and nodes.job(killed)["status"] in ("PENDING", "RUNNING")
        time.sleep(1)
    time.sleep(5)  # training under way again
    os.kill(int(nodes.job(killed)["driver_info"]["pid"]), signal.SIGKILL)
    while nodes.job(killed)["status"] not in ("FAILED", "STOPPED", "SUCCEEDED"):
        assert time.monotonic() < deadline
        time.sleep(1)
    assert nodes.job(killed)["status"] == "FAILED"
    _assert_nothing_left(nodes, killed)

    resumed = _submit(cluster, "--resume", str(exp_dir), "--wait", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-4000:] + resumed.stderr[-3000:]
    journal = _journal_candidates(exp_dir)
    assert len(journal) == len(set(journal)) == 8
    assert _mlflow_candidates(cluster["tracking"], "stopped") == journal


def _assert_nothing_left(nodes, job: str) -> None:
    """Nothing of the job lives on any node: no trainer, trial or latency actor."""
    hex_id = nodes.job(job)["job_id"]
    deadline = time.monotonic() + 60
    alive = None
    while alive != [] and time.monotonic() < deadline:
        alive = [a["class_name"] for a in nodes.actors(hex_id)]
        time.sleep(1)
    assert alive == [], alive


def test_bad_job_commands_say_one_line(cluster, tmp_path: Path) -> None:
    for args in (("status", "hwnas-nosuch-00000000"), ("logs", "nosuch"), ("stop", "nosuch")):
        proc = _jobs(cluster, *args, cwd=tmp_path)
        assert proc.returncode == 2 and "no job" in proc.stderr and "hwnas jobs list" in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    proc = _submit(cluster, "--resume", str(tmp_path / "missing"), cwd=tmp_path)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    # Without --ship-source on a cluster that lacks hwnas: the job fails, and both --wait and status say why.
    proc = _submit(cluster, str(tiny_config(tmp_path, name="nosource")), "--storage", str(tmp_path / "runs"), "--wait",
                   cwd=tmp_path, ship=False)
    assert proc.returncode != 0 and "FAILED" in proc.stdout and "--ship-source" in proc.stdout, proc.stdout[-3000:]
    status = _jobs(cluster, "status", _job_id(proc.stdout), cwd=tmp_path)
    assert "no hwnas" in status.stdout and "--ship-source" in status.stdout, status.stdout
    assert not (tmp_path / "runs").exists()  # nothing ran, nothing written
    # Without the cluster's token: one line saying so, nothing submitted.
    config = tiny_config(tmp_path, name="notoken")
    proc = run_cli("submit", str(config), "--storage", str(tmp_path / "runs"), "--address", cluster["nodes"].dashboard,
                   cwd=tmp_path, env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(tmp_path / "none")})
    assert proc.returncode == 2 and "requires token authentication" in proc.stderr, proc.stderr[-2000:]
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare to give a node its own mounts")
def test_a_node_that_cannot_see_the_storage_is_named_and_nothing_is_written(cluster, tmp_path: Path) -> None:
    storage = tmp_path / "runs"
    storage.mkdir()
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs none {storage}"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot give a node private mounts here: {probe.stderr.decode()[:200]}")
    nodes: RayNodes = cluster["nodes"]
    # A node whose view of the storage path is its own empty tmpfs: a worker that does not mount the share.
    nodes.add_node("blind", num_cpus=1, wrap=["unshare", "-m", "--propagation", "private", "sh", "-c",
                                              f'mount -t tmpfs none {storage} && exec "$0" "$@"'])
    try:
        blind = next(n for n in nodes.alive_nodes() if n["node_id"] not in
                     {m["node_id"] for m in nodes.alive_nodes() if m["is_head_node"]} | {cluster["device_id"]})
        config = tiny_config(tmp_path, name="blind")
        proc = _submit(cluster, str(config), "--storage", str(storage), "--wait", cwd=tmp_path)
        assert proc.returncode == 2, proc.stdout[-3000:]
        assert "not shared with node" in proc.stdout and blind["node_id"][:12] in proc.stdout
        assert list(storage.iterdir()) == []  # no experiment, no probe file left
    finally:
        nodes.stop("blind")
