"""The latency actor on a two-node Ray cluster: placed on, and measuring on, the device's node."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster import DeviceProfile, LatencyClient, MeasureOptions
from core.errors import DeviceError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@ray.remote(num_cpus=1)
def _measure_from_a_worker(
    client: LatencyClient, candidates: list[str], data: bytes, shape: tuple[int, ...]
) -> dict:
    """Stands in for a Tune trial: a worker on some node using a LatencyClient."""
    results = [client.measure(c, data, shape) for c in candidates]
    return {"worker_node_id": ray.get_runtime_context().get_node_id(), "results": results}


def test_actor_lands_on_the_node_that_carries_the_device(
    two_node_cluster, tmp_path: Path, tiny_onnx, fast_options
) -> None:
    edge = DeviceProfile(name="edge")
    client = LatencyClient(edge, tmp_path / "latency_cache.jsonl", options=fast_options)
    assert client.stats()["node_id"] == two_node_cluster.edge_node_id  # created from the driver

    on_head = NodeAffinitySchedulingStrategy(node_id=two_node_cluster.head_node_id, soft=False)
    out = ray.get(_measure_from_a_worker.options(scheduling_strategy=on_head).remote(
        client, ["cand-a", "cand-b", "cand-a"], tiny_onnx.data, tiny_onnx.shape))
    assert out["worker_node_id"] == two_node_cluster.head_node_id
    assert {r["node_id"] for r in out["results"]} == {two_node_cluster.edge_node_id}
    assert [r["cached"] for r in out["results"]] == [False, False, True]
    assert {r["device"] for r in out["results"]} == {"edge"}


def test_a_joined_cluster_has_only_the_devices_its_nodes_declare(two_node_cluster) -> None:
    # connect(address) adds nothing: without a node declaring device:cpu there is no local CPU device.
    with pytest.raises(DeviceError, match=r"device:cpu .*devices present: device:edge"):
        LatencyClient("cpu").measure("cand-a", b"x", (1,))


def test_a_device_node_that_goes_away_is_a_device_error(two_node_cluster, tiny_onnx, slow_onnx) -> None:
    cluster = two_node_cluster.cluster
    phone = cluster.add_node(num_cpus=0, resources={"device:phone": 1})  # this test's own, to remove
    cluster.wait_for_nodes()
    slow = MeasureOptions(warmup=1, min_runs=150, max_runs=150, min_time_s=0.0, max_rounds=1)
    # A timeout far beyond the test's wait: the client must notice the lost node by itself, not time out.
    client = LatencyClient(DeviceProfile(name="phone"), None, options=slow, timeout_s=600)
    client.measure("warm", tiny_onnx.data, tiny_onnx.shape)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(client.measure, "slow", slow_onnx.data, slow_onnx.shape)
        time.sleep(1.0)
        cluster.remove_node(phone)
        # Ray keeps the actor waiting for a node with device:phone; the client notices the node is gone
        # (well before its timeout) and says so.
        began = time.monotonic()
        with pytest.raises(DeviceError, match=r"no node of the Ray cluster carries device:phone any more"):
            pending.result(timeout=60)
        assert time.monotonic() - began < 45


def test_with_device_wait_a_measurement_waits_for_the_device_node_to_return(two_node_cluster, tiny_onnx,
                                                                               slow_onnx) -> None:
    cluster = two_node_cluster.cluster
    phone = cluster.add_node(num_cpus=0, resources={"device:tablet": 1})
    cluster.wait_for_nodes()
    slow = MeasureOptions(warmup=1, min_runs=150, max_runs=150, min_time_s=0.0, max_rounds=1)
    client = LatencyClient(DeviceProfile(name="tablet"), None, options=slow, timeout_s=120, device_wait_s=60)
    client.measure("warm", tiny_onnx.data, tiny_onnx.shape)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(client.measure, "slow", slow_onnx.data, slow_onnx.shape)
        time.sleep(1.0)
        cluster.remove_node(phone)
        time.sleep(6.0)  # gone for longer than the client's checks take to notice
        assert not pending.done()
        back = cluster.add_node(num_cpus=0, resources={"device:tablet": 1})
        cluster.wait_for_nodes()
        result = pending.result(timeout=90)
    assert result["node_id"] == back.node_id and result["median_ms"] > 0
    cluster.remove_node(back)
