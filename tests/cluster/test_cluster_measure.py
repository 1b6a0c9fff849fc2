"""measure_onnx in this process: statistics, run bounds, rounds, refusals."""
from __future__ import annotations

import numpy as np
import pytest

from cluster import LatencyStats, MeasureOptions, measure_onnx
from cluster.latency import _robust_stats
from core.errors import ConfigError, DeviceError


def test_statistics_are_sane(tiny_onnx) -> None:
    stats = measure_onnx(tiny_onnx.data, tiny_onnx.shape, warmup=3, min_runs=30, max_runs=200, min_time_s=0.05)
    assert 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms
    assert stats.min_ms <= stats.mean_ms
    assert stats.median_ms < 100  # a 16x16 toy model: anything slower is a harness bug
    assert 0 <= stats.cv < 10
    assert 30 <= stats.runs <= 200


def test_max_runs_bounds_a_round_whatever_min_time_says(tiny_onnx) -> None:
    stats = measure_onnx(tiny_onnx.data, tiny_onnx.shape, warmup=0, min_runs=5, max_runs=7, min_time_s=60.0)
    assert stats.runs == 7


def test_min_runs_is_honoured_when_time_is_up(tiny_onnx) -> None:
    stats = measure_onnx(tiny_onnx.data, tiny_onnx.shape, warmup=0, min_runs=12, max_runs=50, min_time_s=0.0)
    assert stats.runs == 12


def test_unstable_rounds_end_after_max_rounds(tiny_onnx) -> None:
    # A threshold no real timing meets: every round is "unstable", yet the call returns.
    stats = measure_onnx(tiny_onnx.data, tiny_onnx.shape, warmup=0, min_runs=5, max_runs=5, min_time_s=0.0,
                         cv_threshold=1e-12, max_rounds=3)
    assert stats.runs == 5


@pytest.mark.parametrize("data", [b"not an onnx model", b"\x08\x07", b""])
def test_bad_bytes_are_a_device_error(data: bytes) -> None:
    with pytest.raises(DeviceError, match="model"):
        measure_onnx(data, (1, 3, 16, 16))


def test_wrong_input_shape_is_a_device_error(tiny_onnx) -> None:
    with pytest.raises(DeviceError, match=r"does not fit.*'x'"):
        measure_onnx(tiny_onnx.data, (1, 3, 16))
    for bad in [(1, 3, 0, 16), (1, 3, 16.0, 16), (), 5]:
        with pytest.raises(DeviceError, match="positive integers"):
            measure_onnx(tiny_onnx.data, bad)


def test_numpy_integer_shapes_are_accepted(tiny_onnx) -> None:
    shape = np.array(tiny_onnx.shape)
    assert measure_onnx(tiny_onnx.data, tuple(shape), warmup=0, min_runs=3, max_runs=3).runs == 3


def test_input_is_a_function_of_the_seed(tiny_onnx) -> None:
    from cluster.latency import _make_feed, _open_session

    session = _open_session(tiny_onnx.data, threads=1, provider="CPUExecutionProvider")
    a = _make_feed(session, tiny_onnx.shape, seed=7)["x"]
    b = _make_feed(session, tiny_onnx.shape, seed=7)["x"]
    assert a.dtype == np.float32 and a.shape == tiny_onnx.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, _make_feed(session, tiny_onnx.shape, seed=8)["x"])


def test_missing_provider_is_a_device_error(tiny_onnx) -> None:
    with pytest.raises(DeviceError, match="lacks the execution provider 'NoSuchExecutionProvider'"):
        measure_onnx(tiny_onnx.data, tiny_onnx.shape, provider="NoSuchExecutionProvider")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"min_runs": 0}, "min_runs"),
        ({"min_runs": 10, "max_runs": 5}, "max_runs"),
        ({"max_rounds": 0}, "max_rounds"),
        ({"warmup": -1}, "warmup"),
        ({"min_time_s": float("inf")}, "min_time_s"),
        ({"cv_threshold": 0}, "cv_threshold"),
        ({"threads": 0}, "threads"),
    ],
)
def test_options_are_validated(tiny_onnx, kwargs: dict, name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        measure_onnx(tiny_onnx.data, tiny_onnx.shape, **kwargs)


def test_robust_stats_discard_upper_outliers_only() -> None:
    samples_ms = np.array([1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 50.0])  # one preempted run
    stats = _robust_stats(samples_ms * 1e6)
    assert stats.runs == 8  # counted, not hidden
    assert stats.p90_ms < 1.2 and stats.mean_ms < 1.1  # but kept out of the tail, mean and CV
    assert stats.cv < 0.1
    assert stats.min_ms == pytest.approx(0.9)
    assert stats.median_ms == pytest.approx(1.0)


def test_robust_stats_of_identical_runs() -> None:
    stats = _robust_stats(np.full(10, 2e6))
    assert (stats.min_ms, stats.median_ms, stats.p90_ms, stats.cv) == (2.0, 2.0, 2.0, 0.0)


def test_stats_round_trip_through_a_record() -> None:
    stats = LatencyStats(median_ms=1.5, min_ms=1.0, p90_ms=2.0, mean_ms=1.6, cv=0.03, runs=40)
    assert LatencyStats.from_dict({**stats.to_dict(), "device": "cpu", "cached": True}) == stats


def test_options_defaults_match_measure_onnx_defaults() -> None:
    import inspect

    params = inspect.signature(measure_onnx).parameters
    for name, value in MeasureOptions().__dict__.items():
        assert params[name].default == value, name
