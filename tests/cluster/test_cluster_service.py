"""LatencyService without Ray: cache keys, persistence, reload, damaged files; the client's own checks."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cluster import DeviceProfile, LatencyCache, LatencyClient, LatencyService, LatencyStats
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


def test_key_includes_input_shape_and_device(tiny_onnx, fast_options) -> None:
    key = LatencyCache.key("c", "cpu", "rt", [1, 3, 16, 16])
    assert key != LatencyCache.key("c", "cpu", "rt", [2, 3, 16, 16])
    assert key != LatencyCache.key("c", "edge", "rt", [1, 3, 16, 16])
    assert key == LatencyCache.key("c", "cpu", "rt", (1, 3, 16, 16))


def test_cache_file_is_reloaded_by_a_new_service(tmp_path: Path, tiny_onnx, fast_options) -> None:
    path = tmp_path / "exp" / "latency_cache.jsonl"
    LatencyService(CPU, str(path), fast_options).measure("cand-a", tiny_onnx.data, tiny_onnx.shape)
    (record,) = list(read_jsonl(path))
    assert record["schema"] == 1 and record["candidate_id"] == "cand-a"

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
    path.write_text('{"schema": 1, "candidate_id": "x"}\n', encoding="utf-8")
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
