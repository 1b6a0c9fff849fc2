"""`hwnas search --address` joins an existing multi-node Ray cluster; latency is measured on the
node that carries the device resource."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import run_cli, tiny_config

pytestmark = pytest.mark.integration


@pytest.fixture
def two_node_cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    device_node = cluster.add_node(num_cpus=2, resources={"device:cpu": 1})
    cluster.wait_for_nodes()
    try:
        yield cluster, device_node
    finally:
        cluster.shutdown()


def test_search_joins_a_cluster_and_measures_on_the_device_node(tmp_path: Path, two_node_cluster) -> None:
    cluster, device_node = two_node_cluster
    config = tiny_config(tmp_path, name="joined", cost__kind="measured", cost__min_runs=5, cost__max_runs=20)
    proc = run_cli("search", str(config), "--storage", str(tmp_path / "runs"), "--address", cluster.address,
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "runs" / "joined" / "latency_cache.jsonl").read_text().splitlines()]
    measured = [r for r in records if "node_id" in r]
    assert measured and {r["node_id"] for r in measured} == {device_node.node_id}


def test_search_on_a_cluster_without_the_device_fails_clearly(tmp_path: Path) -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        config = tiny_config(tmp_path, name="nodevice", cost__kind="measured")
        proc = run_cli("search", str(config), "--storage", str(tmp_path / "runs"), "--address", cluster.address,
                       cwd=tmp_path)
    finally:
        cluster.shutdown()
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "device:cpu" in proc.stderr and "ray start" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing written
