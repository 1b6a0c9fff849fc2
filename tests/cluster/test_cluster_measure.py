"""measure_onnx in this process: statistics, run bounds, rounds, the input, refusals."""
from __future__ import annotations

import numpy as np
import pytest

from cluster import LatencyStats, MeasureOptions, measure_onnx
from cluster.measure import model_input
from core.errors import ConfigError, DeviceError, HwnasError


def test_statistics_are_sane(tiny_onnx) -> None:
    stats = measure_onnx(tiny_onnx.data, tiny_onnx.shape,
                         options=MeasureOptions(warmup=3, min_runs=30, max_runs=200, min_time_s=0.05))
    assert 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms
    assert stats.min_ms <= stats.mean_ms
    assert stats.median_ms < 100  # a 16x16 toy model: anything slower is a harness bug
    assert 0 <= stats.cv < 10
    assert 30 <= stats.runs <= 200


def test_max_runs_bounds_a_round_whatever_min_time_says(tiny_onnx) -> None:
    options = MeasureOptions(warmup=0, min_runs=5, max_runs=7, min_time_s=60.0)
    stats = measure_onnx(tiny_onnx.data, tiny_onnx.shape, options=options)
    assert stats.runs == 7


def test_min_runs_is_honoured_when_time_is_up(tiny_onnx) -> None:
    options = MeasureOptions(warmup=0, min_runs=12, max_runs=50, min_time_s=0.0)
    stats = measure_onnx(tiny_onnx.data, tiny_onnx.shape, options=options)
    assert stats.runs == 12


def test_unstable_rounds_end_after_max_rounds(tiny_onnx) -> None:
    # A threshold no real timing meets: every round is "unstable", yet the call returns.
    stats = measure_onnx(tiny_onnx.data, tiny_onnx.shape, options=MeasureOptions(
        warmup=0, min_runs=5, max_runs=5, min_time_s=0.0, cv_threshold=1e-12, max_rounds=3))
    assert stats.runs == 5


@pytest.mark.parametrize("data", [b"not an onnx model", b"\x08\x07", b""])
def test_bad_bytes_are_a_device_error(data: bytes) -> None:
    with pytest.raises(DeviceError, match="model"):
        measure_onnx(data, (1, 3, 16, 16))


def test_wrong_input_shape_is_a_device_error(tiny_onnx) -> None:
    for measure in (measure_onnx, model_input):
        with pytest.raises(DeviceError, match=r"input_shape: must fit the model's input 'x' of shape \[1, 3, 16, 16\], "
                                              r"got \[1, 3, 16\]\. HINT:"):
            measure(tiny_onnx.data, (1, 3, 16))
        for bad in [(1, 3, 0, 16), (1, 3, 16.0, 16), (), 5]:
            with pytest.raises(DeviceError, match=r"input_shape: must be a non-empty sequence of positive integers"):
                measure(tiny_onnx.data, bad)


def test_numpy_integer_shapes_are_accepted(tiny_onnx) -> None:
    shape = np.array(tiny_onnx.shape)
    options = MeasureOptions(warmup=0, min_runs=3, max_runs=3)
    assert measure_onnx(tiny_onnx.data, tuple(shape), options=options).runs == 3


def test_input_is_a_function_of_the_seed(tiny_onnx) -> None:
    (name, a), = model_input(tiny_onnx.data, tiny_onnx.shape, seed=7).items()
    assert name == "x" and a.dtype == np.float32 and a.shape == tiny_onnx.shape
    np.testing.assert_array_equal(a, model_input(tiny_onnx.data, tiny_onnx.shape, seed=7)["x"])
    assert not np.array_equal(a, model_input(tiny_onnx.data, tiny_onnx.shape, seed=8)["x"])
    np.testing.assert_array_equal(model_input(tiny_onnx.data, tiny_onnx.shape)["x"],
                                  model_input(tiny_onnx.data, tiny_onnx.shape, seed=MeasureOptions().seed)["x"])


def test_missing_provider_is_a_device_error(tiny_onnx) -> None:
    with pytest.raises(DeviceError, match="lacks the execution provider 'NoSuchExecutionProvider'"):
        measure_onnx(tiny_onnx.data, tiny_onnx.shape, provider="NoSuchExecutionProvider")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_runs": 0}, r"'min_runs': must be an integer in \[1, 1000000\], got 0\. HINT: e\.g\. min_runs=30"),
        ({"min_runs": 10, "max_runs": 5}, r"'max_runs': must be an integer in \[10, 10000000\], got 5\. HINT: .*lower min_runs"),
        ({"max_rounds": 0}, r"'max_rounds': must be an integer in \[1, 100\], got 0\. HINT: e\.g\. max_rounds=3"),
        ({"warmup": -1}, r"'warmup': must be an integer in \[0, 100000\], got -1\. HINT: e\.g\. warmup=10"),
        ({"warmup": True}, r"'warmup': must be an integer in \[0, 100000\], got True"),
        ({"min_time_s": float("inf")}, r"'min_time_s': must be a finite number in \[0, 3600\], got inf"),
        ({"cv_threshold": 0}, r"'cv_threshold': must be a finite number > 0, got 0\. HINT: e\.g\. cv_threshold=0\.05"),
        ({"seed": -1}, r"'seed': must be an integer >= 0"),
    ],
)
def test_options_are_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^measurement option " + message):
        MeasureOptions(**kwargs)


def test_measure_onnx_validates_its_own_arguments(tiny_onnx) -> None:
    with pytest.raises(ConfigError, match=r"'threads': must be an integer >= 1, got 0\. HINT:"):
        measure_onnx(tiny_onnx.data, tiny_onnx.shape, threads=0)
    with pytest.raises(ConfigError, match=r"'options': must be a MeasureOptions or None, got \{'warmup': 1\}"):
        measure_onnx(tiny_onnx.data, tiny_onnx.shape, options={"warmup": 1})  # type: ignore[arg-type]


def test_options_are_normalised_and_their_defaults_readable_from_the_class() -> None:
    options = MeasureOptions(warmup=np.int64(3), min_time_s=1)
    assert type(options.warmup) is int and type(options.min_time_s) is float
    assert (MeasureOptions.warmup, MeasureOptions.min_runs, MeasureOptions.cv_threshold) == (
        MeasureOptions().warmup, MeasureOptions().min_runs, MeasureOptions().cv_threshold)


def test_robust_stats_discard_upper_outliers_only() -> None:
    samples_ms = np.array([1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 50.0])  # one preempted run
    stats = LatencyStats.from_samples_ns(samples_ms * 1e6)
    assert stats.runs == 8  # counted, not hidden
    assert stats.p90_ms < 1.2 and stats.mean_ms < 1.1  # but kept out of the tail, mean and CV
    assert stats.cv < 0.1
    assert stats.min_ms == pytest.approx(0.9)
    assert stats.median_ms == pytest.approx(1.0)


def test_robust_stats_of_identical_runs() -> None:
    stats = LatencyStats.from_samples_ns(np.full(10, 2e6))
    assert (stats.min_ms, stats.median_ms, stats.p90_ms, stats.cv) == (2.0, 2.0, 2.0, 0.0)


@pytest.mark.parametrize("samples", [[], [1e6, float("nan")], [-1.0], ["fast"]])
def test_stats_of_no_or_bad_samples_are_refused(samples: list) -> None:
    with pytest.raises(HwnasError, match=r"samples_ns: must be a non-empty sequence of finite run times >= 0"):
        LatencyStats.from_samples_ns(samples)


def test_stats_round_trip_through_a_record() -> None:
    stats = LatencyStats(median_ms=1.5, min_ms=1.0, p90_ms=2.0, mean_ms=1.6, cv=0.03, runs=40)
    assert LatencyStats.from_dict({**stats.to_dict(), "device": "cpu", "cached": True}) == stats
    for damaged in ({"median_ms": 1.5}, {**stats.to_dict(), "runs": "many"}):
        with pytest.raises(HwnasError, match=r"latency record: must hold the numbers median_ms, .*HINT: measure"):
            LatencyStats.from_dict(damaged)


def test_paired_measurement_times_the_model_against_the_reference(tiny_onnx, slow_onnx) -> None:
    from cluster import DeviceProfile
    from cluster.measure import measure_paired

    options = MeasureOptions(warmup=2, min_runs=20, max_runs=40, min_time_s=0.0, max_rounds=1)
    cpu = DeviceProfile(name="cpu")
    itself = measure_paired(cpu, slow_onnx.data, slow_onnx.shape, slow_onnx.data, slow_onnx.shape, options=options)
    assert itself.relative == pytest.approx(1.0, rel=0.15)
    assert itself.stats.runs == itself.reference.runs >= 20 // 3  # block pairs
    # A different model with its own input shape: the ratio is the models' latency ratio, far below 1.
    small = measure_paired(cpu, tiny_onnx.data, tiny_onnx.shape, slow_onnx.data, slow_onnx.shape, options=options)
    assert 0 < small.relative < 0.2
    assert small.relative == pytest.approx(small.stats.median_ms / small.reference.median_ms, rel=0.5)


class _CacheSharingSession:
    """A session whose runs take ``ms``, and up to ``cold_ms`` more on the first runs after the other
    session ran: a big model evicting a small one's weights from the caches, slowed down to be timed."""

    last_runner: object = None

    def __init__(self, ms: float, cold_ms: float = 0.0) -> None:
        self.ms, self.cold_ms, self.warm_runs = ms, cold_ms, 0

    def run(self, outputs, feed) -> None:
        import time

        self.warm_runs = self.warm_runs + 1 if _CacheSharingSession.last_runner is self else 0
        _CacheSharingSession.last_runner = self
        time.sleep((self.ms + self.cold_ms / (1 + self.warm_runs)) / 1000)


def test_paired_blocks_time_past_the_cache_eviction_of_the_other_model() -> None:
    from cluster.measure import _time_pairs

    model, reference = _CacheSharingSession(4.0), _CacheSharingSession(1.0, cold_ms=3.0)
    options = MeasureOptions(warmup=0, min_runs=12, max_runs=30, min_time_s=0.0)
    model_ns, reference_ns = _time_pairs((model, reference), ({}, {}), options)
    assert len(model_ns) == len(reference_ns) == 12 // 3
    # Run by run the reference would always run cold (4 ms) and the ratio read ~1; its settled runs
    # are ~1.75 ms at worst (cold 3 ms / 4 after three settling runs), ~1.3 typically.
    # measure_paired takes the median over pairs: one pair slowed by the scheduler (a sleep that overshot
    # while other processes ran) must not decide it, so neither does it here.
    ratios = model_ns / reference_ns
    assert np.median(ratios) > 2.2, ratios
    # Run by run (no settling, one run per block) the same pair reads the eviction instead.
    model_ns, reference_ns = _time_pairs((model, reference), ({}, {}), options, settle_s=0.0, keep_s=0.0)
    assert np.median(model_ns / reference_ns) < 1.3, model_ns / reference_ns


def test_paired_measurement_is_refused_on_a_torch_device(tiny_onnx) -> None:
    from cluster import DeviceProfile
    from cluster.measure import measure_paired

    torch_device = DeviceProfile(name="cuda-torch", runtime="torch", provider="cuda")
    with pytest.raises(DeviceError, match="paired measurement runs on ONNX Runtime.*HINT"):
        measure_paired(torch_device, tiny_onnx.data, tiny_onnx.shape, tiny_onnx.data, tiny_onnx.shape)
