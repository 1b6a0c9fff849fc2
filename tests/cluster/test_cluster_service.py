"""LatencyService without Ray: cache keys, persistence, reload, damaged files; the client's own checks."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster import DeviceProfile, LatencyCache, LatencyClient, LatencyService, LatencyStats, MeasureOptions
from cluster.host_load import node_cpus
from cluster.service import noise_verdict
from core.errors import ConfigError, DeviceError, ExperimentError
from core.jsonio import read_jsonl

CPU = DeviceProfile(name="cpu")


def test_second_request_is_a_cache_hit(tiny_onnx, fast_options) -> None:
    service = LatencyService(CPU, None, fast_options)
    first = service.measure("cand-a", tiny_onnx.data, tiny_onnx.shape)
    second = service.measure("cand-a", tiny_onnx.data, list(tiny_onnx.shape))
    assert first["cached"] is False and second["cached"] is True
    assert LatencyStats.from_dict(first) == LatencyStats.from_dict(second)
    assert first["runtime"].startswith("onnxruntime-") and first["runtime"].endswith("-CPUExecutionProvider")
    assert first["device"] == "cpu" and first["input_shape"] == list(tiny_onnx.shape)
    assert service.stats()["measured"] == 1 and service.stats()["cache_hits"] == 1


def test_key_includes_input_shape_device_and_measurement_settings(tiny_onnx, fast_options) -> None:
    settings = MeasureOptions().settings()
    key = LatencyCache.key("c", "cpu", "rt", [1, 3, 16, 16], settings)
    assert key != LatencyCache.key("c", "cpu", "rt", [2, 3, 16, 16], settings)
    assert key != LatencyCache.key("c", "edge", "rt", [1, 3, 16, 16], settings)
    assert key != LatencyCache.key("c", "cpu", "rt", [1, 3, 16, 16], MeasureOptions(min_runs=5).settings())
    assert key == LatencyCache.key("c", "cpu", "rt", (1, 3, 16, 16), dict(settings))


def test_cache_file_is_reloaded_by_a_new_service(tmp_path: Path, tiny_onnx, fast_options) -> None:
    path = tmp_path / "exp" / "latency_cache.jsonl"
    LatencyService(CPU, str(path), fast_options).measure("cand-a", tiny_onnx.data, tiny_onnx.shape)
    (record,) = list(read_jsonl(path))
    assert record["schema"] == 2 and record["candidate_id"] == "cand-a"
    assert record["settings"] == fast_options.settings() and record["noisy"] is None

    reborn = LatencyService(CPU, str(path), fast_options)
    again = reborn.measure("cand-a", b"bytes never looked at on a hit", tiny_onnx.shape)
    assert again["cached"] is True
    assert (reborn.stats()["measured"], reborn.stats()["cache_hits"]) == (0, 1)
    assert len(list(read_jsonl(path))) == 1  # a hit appends nothing


def test_torn_last_line_and_foreign_schema_are_ignored(tmp_path: Path, tiny_onnx, fast_options) -> None:
    path = tmp_path / "latency_cache.jsonl"
    LatencyService(CPU, str(path), fast_options).measure("cand-a", tiny_onnx.data, tiny_onnx.shape)
    record = next(read_jsonl(path))
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({**record, "candidate_id": "cand-b", "schema": 99}) + "\n")
        fh.write('{"candidate_id": "cand-c", "sche')  # a writer killed mid-append
    service = LatencyService(CPU, str(path), fast_options)
    assert service.stats()["cache_entries"] == 1
    assert service.measure("cand-b", tiny_onnx.data, tiny_onnx.shape)["cached"] is False


def test_malformed_record_is_an_experiment_error(tmp_path: Path) -> None:
    path = tmp_path / "latency_cache.jsonl"
    path.write_text('{"schema": 2, "candidate_id": "x"}\n', encoding="utf-8")
    with pytest.raises(ExperimentError, match="malformed"):
        LatencyService(CPU, str(path))


def test_bad_candidate_id_is_refused(tiny_onnx) -> None:
    with pytest.raises(DeviceError, match=r"^candidate_id: must be a non-empty string, got ''\. HINT:"):
        LatencyService(CPU).measure("", tiny_onnx.data, tiny_onnx.shape)


def test_client_refuses_a_timeout_before_looking_for_an_actor() -> None:
    for bad in (0, -1.0, float("inf"), "60"):
        with pytest.raises(ConfigError, match=r"'timeout_s': must be a finite number > 0, got .*HINT: e\.g\."):
            LatencyClient("cpu", timeout_s=bad)


def test_lookup_answers_hits_without_a_model(tiny_onnx, fast_options) -> None:
    service = LatencyService(CPU, None, fast_options)
    assert service.lookup("cand-a", tiny_onnx.shape) is None
    measured = service.measure("cand-a", tiny_onnx.data, tiny_onnx.shape)
    hit = service.lookup("cand-a", list(tiny_onnx.shape))
    assert hit == {**measured, "cached": True}
    assert service.lookup("cand-a", (2, 3, 16, 16)) is None  # another input shape is another key
    assert (service.stats()["measured"], service.stats()["cache_hits"]) == (1, 1)


# ------------------------------------------------------------------------------------ noisy measurements
def _busy_processes(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.kill()
        process.wait()


def test_a_measurement_on_a_busy_node_is_marked_retried_refused_by_the_cache_and_measured_again(
        tmp_path: Path, tiny_onnx) -> None:
    # Real competition: as many busy loops as the node has cores. Long enough rounds (0.3 s) for
    # /proc/stat's 10 ms ticks to tell.
    options = MeasureOptions(warmup=2, min_runs=5, max_runs=1_000_000, min_time_s=0.3, max_rounds=1)
    path = tmp_path / "latency_cache.jsonl"
    service = LatencyService(CPU, str(path), options)
    hogs = _busy_processes(node_cpus())
    try:
        time.sleep(0.3)
        busy = service.measure("cand-a", tiny_onnx.data, tiny_onnx.shape, 1)
    finally:
        _stop(hogs)
    assert busy["noisy"] is not None and "other processes kept" in busy["noisy"], busy
    assert busy["foreign_cores"] > 0.5 and busy["cpus"] == node_cpus()
    assert service.stats()["noisy"] == 1
    assert service.lookup("cand-a", tiny_onnx.shape) is None  # refused as an answer
    reborn = LatencyService(CPU, str(path), options)  # ... also after a reload
    assert reborn.lookup("cand-a", tiny_onnx.shape) is None
    quiet = reborn.measure("cand-a", tiny_onnx.data, tiny_onnx.shape)
    assert quiet["cached"] is False and quiet["noisy"] is None, quiet
    assert reborn.lookup("cand-a", tiny_onnx.shape)["cached"] is True
    assert [r["noisy"] is None for r in read_jsonl(path)] == [False, True]  # both kept; the last one answers
    assert LatencyService(CPU, str(path), options).lookup("cand-a", tiny_onnx.shape) is not None


def test_noise_verdict_names_the_busy_node() -> None:
    assert noise_verdict(0.2, threads=1, cpus=2) is None  # Ray's daemons: a few percent
    assert "1.20 of the node's 2 cores" in noise_verdict(1.2, threads=1, cpus=2)
    assert noise_verdict(1.2, threads=1, cpus=16) is None  # 14 free cores: one neighbour is fine
    assert "at most 0.5" in noise_verdict(3.0, threads=4, cpus=4)
    assert noise_verdict(None, threads=1, cpus=2) is None  # off Linux nothing tells


def test_a_record_of_the_old_schema_without_settings_is_measured_again(tmp_path: Path, tiny_onnx,
                                                                       fast_options) -> None:
    path = tmp_path / "latency_cache.jsonl"
    LatencyService(CPU, str(path), fast_options).measure("cand-a", tiny_onnx.data, tiny_onnx.shape)
    old = {k: v for k, v in next(read_jsonl(path)).items() if k not in ("settings", "noisy")}
    path.write_text(json.dumps({**old, "schema": 1}) + "\n", encoding="utf-8")
    assert LatencyService(CPU, str(path), fast_options).lookup("cand-a", tiny_onnx.shape) is None


def test_a_paired_measurement_needs_its_reference_registered_and_is_cached_under_it(tiny_onnx, slow_onnx,
                                                                                   fast_options) -> None:
    from cluster.service import UnknownReferenceError

    service = LatencyService(CPU, None, fast_options)
    with pytest.raises(UnknownReferenceError, match="'ref' is not registered .* HINT: register_reference"):
        service.measure("cand-a", tiny_onnx.data, tiny_onnx.shape, 0, "ref")
    service.register_reference("ref", slow_onnx.data, slow_onnx.shape)
    paired = service.measure("cand-a", tiny_onnx.data, tiny_onnx.shape, 0, "ref")
    assert paired["reference_id"] == "ref" and 0 < paired["relative"] < 1 and paired["reference_ms"] > 0
    assert paired["settings"] == {**fast_options.settings(), "reference": "ref", "pairing": "blocks"}
    assert service.lookup("cand-a", tiny_onnx.shape) is None  # a plain figure is another key
    assert service.lookup("cand-a", tiny_onnx.shape, "ref")["relative"] == paired["relative"]
    # A record paired run by run (before blocks) is another key: it is measured again, not reused.
    run_by_run = LatencyCache.key("cand-a", CPU.name, service._runtime, tiny_onnx.shape,
                                  {**fast_options.settings(), "reference": "ref"})
    assert run_by_run != service._key("cand-a", tiny_onnx.shape, "ref")


def test_fastest_of_keeps_the_quickest_plain_try_under_its_own_key(tiny_onnx, fast_options, monkeypatch) -> None:
    import numpy as np

    import cluster.service as service_module

    medians = iter([3.0, 1.0, 2.0])  # the first try was taken while the node was slow
    monkeypatch.setattr(service_module, "FASTEST_GAP_S", 0.0)
    monkeypatch.setattr(service_module, "measure_model", lambda *a, **k: LatencyStats.from_samples_ns(
        np.full(5, next(medians) * 1e6)))
    service = LatencyService(CPU, None, fast_options)
    record = service.measure("reference-x", tiny_onnx.data, tiny_onnx.shape, fastest_of=3)
    assert record["median_ms"] == 1.0 and record["settings"]["fastest_of"] == 3 and service.stats()["measured"] == 1
    assert service.measure("reference-x", tiny_onnx.data, tiny_onnx.shape, fastest_of=3)["cached"] is True
    assert service.lookup("reference-x", tiny_onnx.shape) is None  # a single plain try is another record
    with pytest.raises(DeviceError, match="plain measurements only"):
        service.measure("paired-x", tiny_onnx.data, tiny_onnx.shape, reference_id="reference-x", fastest_of=3)
    with pytest.raises(ConfigError, match="fastest_of"):
        service.measure("reference-x", tiny_onnx.data, tiny_onnx.shape, fastest_of=0)


def test_a_repeat_is_an_independent_measurement_cached_beside_the_first(tiny_onnx, fast_options, monkeypatch) -> None:
    import numpy as np

    import cluster.service as service_module

    medians = iter([1.0, 1.2, 0.9])
    monkeypatch.setattr(service_module, "measure_model", lambda *a, **k: LatencyStats.from_samples_ns(
        np.full(5, next(medians) * 1e6)))
    service = LatencyService(CPU, None, fast_options)
    first = service.measure("cand-a", tiny_onnx.data, tiny_onnx.shape)
    second = service.measure("cand-a", tiny_onnx.data, tiny_onnx.shape, repeat=1)
    third = service.measure("cand-a", tiny_onnx.data, tiny_onnx.shape, repeat=2)
    assert [r["median_ms"] for r in (first, second, third)] == [1.0, 1.2, 0.9] and service.stats()["measured"] == 3
    assert "repeat" not in first["settings"] and second["settings"]["repeat"] == 1  # old caches keep their keys
    assert service.lookup("cand-a", tiny_onnx.shape, repeat=1)["median_ms"] == 1.2
    assert service.measure("cand-a", tiny_onnx.data, tiny_onnx.shape, repeat=2)["cached"] is True
    assert service.lookup("cand-a", tiny_onnx.shape, repeat=3) is None
    with pytest.raises(ConfigError, match="repeat"):
        service.measure("cand-a", tiny_onnx.data, tiny_onnx.shape, repeat=-1)
