"""The latency actor on an embedded Ray: caching, persistence, missing devices, restarts."""
from __future__ import annotations

import gc
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import ray

from cluster import (
    LATENCY_NAMESPACE,
    DeviceProfile,
    LatencyClient,
    MeasureOptions,
    get_latency_actor,
    latency_actor_name,
)
from core.errors import DeviceError
from core.jsonio import read_jsonl

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

# 150 runs of the ~15 ms model (~2.5 s): still running 1 s after it was sent, even on a fast machine.
SLOW = MeasureOptions(warmup=1, min_runs=150, max_runs=150, min_time_s=0.0, max_rounds=1)


def test_second_request_is_answered_from_the_cache(local_ray, tmp_path: Path, tiny_onnx, fast_options) -> None:
    cache = tmp_path / "latency_cache.jsonl"
    client = LatencyClient("cpu", cache, options=fast_options)
    first = client.measure("cand-a", tiny_onnx.data, tiny_onnx.shape)
    second = client.measure("cand-a", tiny_onnx.data, tiny_onnx.shape)
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["median_ms"] == first["median_ms"]
    assert client.lookup("cand-a", tiny_onnx.shape) == second
    assert client.lookup("cand-b", tiny_onnx.shape) is None
    stats = client.stats()
    assert (stats["measured"], stats["cache_hits"]) == (1, 2)
    assert len(list(read_jsonl(cache))) == 1


def test_cache_survives_the_actor(
    local_ray, tmp_path: Path, tiny_onnx, fast_options, wait_until_actor_name_is_free
) -> None:
    cache = tmp_path / "latency_cache.jsonl"
    actor = get_latency_actor("cpu", cache, options=fast_options)
    first = ray.get(actor.measure.remote("cand-a", tiny_onnx.data, list(tiny_onnx.shape)))
    old_pid = ray.get(actor.stats.remote())["pid"]
    ray.kill(actor, no_restart=True)
    wait_until_actor_name_is_free(latency_actor_name("cpu"))

    reborn = get_latency_actor("cpu", cache, options=fast_options)
    again = ray.get(reborn.measure.remote("cand-a", tiny_onnx.data, list(tiny_onnx.shape)))
    stats = ray.get(reborn.stats.remote())
    assert stats["pid"] != old_pid  # really a new actor
    assert again["cached"] is True and again["median_ms"] == first["median_ms"]
    assert (stats["measured"], stats["cache_hits"]) == (0, 1)


def test_model_errors_reach_the_client_as_device_errors(local_ray, fast_options) -> None:
    client = LatencyClient("cpu", None, options=fast_options)
    with pytest.raises(DeviceError, match="cannot load the model"):
        client.measure("cand-bad", b"not an onnx model", (1, 3, 16, 16))


def test_missing_device_is_refused_with_the_hint(local_ray) -> None:
    with pytest.raises(DeviceError) as info:
        get_latency_actor(DeviceProfile(name="edge"), None)
    message = str(info.value)
    assert "device:edge" in message and "device:cpu" in message
    assert "ray start --address=... --resources='{\"device:edge\": 1}'" in message
    with pytest.raises(DeviceError, match="device:edge"):
        LatencyClient(DeviceProfile(name="edge")).measure("cand-a", b"x", (1,))


def test_actor_killed_mid_request_is_restarted_and_the_request_retried(
    local_ray, tmp_path: Path, tiny_onnx, slow_onnx
) -> None:
    cache = tmp_path / "latency_cache.jsonl"
    client = LatencyClient("cpu", cache, options=SLOW, timeout_s=120)
    client.measure("warm", tiny_onnx.data, tiny_onnx.shape)  # the actor is up before the kill
    old_pid = client.stats()["pid"]
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = _in_flight(client, pool, slow_onnx)
        ray.kill(client.actor(), no_restart=False)
        result = pending.result(timeout=150)
    assert result["cached"] is False and result["runs"] == 150
    stats = client.stats()
    assert stats["pid"] != old_pid  # restarted by Ray...
    assert (stats["measured"], stats["cache_entries"]) == (1, 2)  # ...which re-ran the request
    assert [r["candidate_id"] for r in read_jsonl(cache)] == ["warm", "slow"]  # the killed try wrote nothing


def _in_flight(client: LatencyClient, pool: ThreadPoolExecutor, model) -> Future:
    """Start a slow measurement through ``client`` in a thread; return once it is surely running."""
    pending = pool.submit(client.measure, "slow", model.data, model.shape)
    time.sleep(1.0)
    assert not pending.done()
    return pending


def test_actor_killed_for_good_mid_request_is_replaced_by_the_client(
    local_ray, tmp_path: Path, tiny_onnx, slow_onnx
) -> None:
    cache = tmp_path / "latency_cache.jsonl"
    client = LatencyClient("cpu", cache, options=SLOW, timeout_s=120)
    client.measure("warm", tiny_onnx.data, tiny_onnx.shape)
    old_pid = client.stats()["pid"]
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = _in_flight(client, pool, slow_onnx)
        ray.kill(client.actor(), no_restart=True)  # beyond Ray's restarts: the client must cope
        result = pending.result(timeout=150)
    assert result["cached"] is False and result["runs"] == 150
    stats = client.stats()
    assert stats["pid"] != old_pid and stats["cache_entries"] == 2  # a new actor, with the old cache


def test_dropping_every_handle_does_not_kill_the_actor(local_ray, tiny_onnx, fast_options) -> None:
    # A named, non-detached actor dies with its last handle; the creating process holds one.
    pid = ray.get(get_latency_actor("cpu", None, options=fast_options).stats.remote())["pid"]
    gc.collect()
    time.sleep(1.0)
    again = ray.get_actor(latency_actor_name("cpu"), namespace=LATENCY_NAMESPACE)
    assert ray.get(again.stats.remote())["pid"] == pid


def test_a_wait_past_the_timeout_is_a_device_error(local_ray, slow_onnx) -> None:
    client = LatencyClient("cpu", None, options=SLOW, timeout_s=0.5)
    with pytest.raises(DeviceError, match=r"longer than 0.5 s"):
        client.measure("slow", slow_onnx.data, slow_onnx.shape)


def test_a_paired_measurement_registers_its_reference_again_after_the_actor_restarted(
        local_ray, tmp_path: Path, tiny_onnx, slow_onnx, fast_options) -> None:
    client = LatencyClient("cpu", tmp_path / "latency_cache.jsonl", options=fast_options, timeout_s=120)
    reference = ("ref-slow", slow_onnx.data, slow_onnx.shape)
    first = client.measure("paired-a", tiny_onnx.data, tiny_onnx.shape, reference=reference)
    assert first["reference_id"] == "ref-slow" and 0 < first["relative"] < 1
    old_pid = client.stats()["pid"]
    ray.kill(client.actor(), no_restart=False)  # Ray restarts it: the registration is gone, the cache is not
    again = client.measure("paired-b", tiny_onnx.data, tiny_onnx.shape, reference=reference)
    assert again["cached"] is False and again["reference_id"] == "ref-slow"
    assert client.stats()["pid"] != old_pid
    assert client.lookup("paired-a", tiny_onnx.shape, "ref-slow")["relative"] == first["relative"]
