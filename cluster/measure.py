"""Timing an ONNX model with ONNX Runtime in this process: the measurement the latency service runs.

Ray-free, so a device node, a benchmark or a test can measure without a cluster. :class:`MeasureOptions`
is the one place the measurement effort and its defaults are declared; :func:`measure_onnx` applies it
(warm-up, many runs, repeated rounds while the timings are unstable) and reports
:class:`LatencyStats`. :func:`runtime_string` names the runtime a measurement was taken with, for
cache keys.
"""
from __future__ import annotations

import gc
import numbers
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np

from core.errors import DeviceError, HwnasError
from core.validation import check_int, check_number, invalid

from .devices import DeviceProfile, require_provider

__all__ = [
    "LatencyStats",
    "MeasureOptions",
    "check_input_shape",
    "measure_onnx",
    "model_input",
    "runtime_string",
]

# Input element types a measurement can feed; anything else (int64 token ids, ...) needs a
# different input generator and is refused rather than fed garbage.
_INPUT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
_EXPORT_HINT = "export it with spaces.export_onnx, which writes one float input"


@dataclass(frozen=True)
class LatencyStats:
    """Robust statistics of one measurement, in milliseconds per inference.

    ``median_ms``, ``min_ms``, ``p90_ms``, ``mean_ms`` and ``cv`` (standard deviation / mean) are
    computed over the runs at or below ``median + 5 * MAD`` of the kept round: those above are
    interruptions (preemption, page faults, a neighbour's burst), not the model's latency, and a
    single one would otherwise dominate the mean and the CV. ``runs`` counts every timed run of
    that round, outliers included.
    """

    median_ms: float
    min_ms: float
    p90_ms: float
    mean_ms: float
    cv: float
    runs: int

    @classmethod
    def from_samples_ns(cls, samples_ns: Sequence[float] | np.ndarray) -> LatencyStats:
        """The statistics of per-run wall times in nanoseconds (timed here or on another device).

        Raises:
            HwnasError: ``samples_ns`` is empty or holds a value that is not finite and >= 0.
        """
        try:
            ms = np.asarray(samples_ns, dtype=np.float64).reshape(-1) / 1e6
        except (TypeError, ValueError):
            ms = np.empty(0)
        if ms.size == 0 or not np.all(np.isfinite(ms) & (ms >= 0)):
            raise invalid("samples_ns", "must be a non-empty sequence of finite run times >= 0", samples_ns,
                          "pass one wall time per timed run, in nanoseconds", error=HwnasError)
        median = float(np.median(ms))
        mad = float(np.median(np.abs(ms - median)))
        kept = ms[ms <= median + 5.0 * mad]  # never empty: at least half the runs are <= median
        mean = float(kept.mean())
        return cls(
            median_ms=float(np.median(kept)),
            min_ms=float(kept.min()),
            p90_ms=float(np.percentile(kept, 90)),
            mean_ms=mean,
            cv=float(kept.std() / mean) if mean > 0 else 0.0,
            runs=int(ms.size),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form that :meth:`from_dict` reads back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyStats:
        """Read the statistics out of a mapping that may hold other keys (a measurement record).

        Raises:
            HwnasError: A statistic is missing or not a number.
        """
        try:
            return cls(**{f.name: (int if f.name == "runs" else float)(data[f.name]) for f in fields(cls)})
        except (KeyError, TypeError, ValueError) as exc:
            names = ", ".join(f.name for f in fields(cls))
            raise invalid("latency record", f"must hold the numbers {names} ({type(exc).__name__}: {exc})",
                          data, "measure the model again", error=HwnasError) from None


@dataclass(frozen=True)
class MeasureOptions:
    """How hard :func:`measure_onnx` works for one measurement, and the one place its defaults live.

    After ``warmup`` untimed runs, each round times single inferences, at least ``min_runs`` of them
    and until ``min_time_s`` has passed, at most ``max_runs``. While a round's CV exceeds
    ``cv_threshold`` another round is timed, at most ``max_rounds`` in all. The input is drawn from
    ``seed``. Class attributes hold the defaults (``MeasureOptions.warmup == 10``) for configs and CLI
    flags to read.

    Attributes:
        warmup: Untimed runs first (allocations, caches, lazy kernel selection).
        min_runs: Fewest timed runs per round.
        max_runs: Most timed runs per round (bounds a slow model's round).
        min_time_s: Shortest timed duration per round (fast models get many runs).
        cv_threshold: A round with a CV at or below this is stable and ends the measurement.
        max_rounds: Most rounds.
        seed: Seed of the input tensor.

    Raises:
        ConfigError: An option is out of range; the message names it.
    """

    warmup: int = 10
    min_runs: int = 30
    max_runs: int = 300
    min_time_s: float = 0.2
    cv_threshold: float = 0.05
    max_rounds: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        # Normalised values (a numpy int becomes an int) so records and Ray messages hold plain types.
        checked = {
            "warmup": check_int(_where("warmup"), self.warmup, minimum=0, maximum=100_000, hint=_example("warmup")),
            "min_runs": check_int(_where("min_runs"), self.min_runs, minimum=1, maximum=1_000_000,
                                  hint=_example("min_runs")),
            "max_rounds": check_int(_where("max_rounds"), self.max_rounds, minimum=1, maximum=100,
                                    hint=_example("max_rounds")),
            "seed": check_int(_where("seed"), self.seed, minimum=0, hint=_example("seed")),
            "min_time_s": check_number(_where("min_time_s"), self.min_time_s, low=0.0, high=3600.0, hint=_example("min_time_s")),
            "cv_threshold": check_number(_where("cv_threshold"), self.cv_threshold, low=0.0, low_open=True,
                                         hint=_example("cv_threshold")),
        }
        checked["max_runs"] = check_int(
            _where("max_runs"), self.max_runs, minimum=checked["min_runs"], maximum=10_000_000,
            hint="max_runs must be at least min_runs (and at most 10,000,000); raise it or lower min_runs")
        for name, value in checked.items():
            object.__setattr__(self, name, value)


def _where(name: str) -> str:
    return f"measurement option '{name}'"


def _example(name: str) -> str:
    return f"e.g. {name}={getattr(MeasureOptions, name)!r} (the default)"


def measure_onnx(
    onnx_bytes: bytes,
    input_shape: Sequence[int],
    *,
    options: MeasureOptions | None = None,
    threads: int = 1,
    provider: str = "CPUExecutionProvider",
    provider_options: Mapping[str, str] | None = None,
) -> LatencyStats:
    """Measure the inference latency of an ONNX model with ONNX Runtime, in this process.

    The session runs sequentially with ``threads`` intra-op threads and one inter-op thread, with
    all graph optimisations, on the input :func:`model_input` draws from ``options.seed``. Rounds of
    single inferences are timed with :func:`time.perf_counter_ns` as :class:`MeasureOptions` says;
    the round with the lowest CV is returned (see :class:`LatencyStats` for the statistics).

    Args:
        onnx_bytes: A serialised ONNX model with exactly one float input.
        input_shape: Shape of that input, batch first.
        options: Measurement effort; ``None`` is ``MeasureOptions()``, the defaults.
        threads: Intra-op threads.
        provider: ONNX Runtime execution provider.
        provider_options: Options of that provider (see :func:`cluster.devices.provider_options`).

    Returns:
        The statistics of the most stable round.

    Raises:
        DeviceError: The bytes are not a loadable model, the provider is missing, or the model
            cannot run on an input of ``input_shape``.
        ConfigError: ``options`` is not a :class:`MeasureOptions` or ``threads`` is not >= 1.
    """
    options = _check_options(options)
    check_int("measure_onnx argument 'threads'", threads, minimum=1, hint="use 1 for a single-threaded measurement")
    session = _open_session(onnx_bytes, threads=threads, provider=provider, provider_options=provider_options)
    feed = _make_feed(session, check_input_shape(input_shape), seed=options.seed)
    _run_checked(session, feed, times=max(options.warmup, 1))
    best = LatencyStats.from_samples_ns(_time_round(session, feed, options))
    for _ in range(options.max_rounds - 1):
        if best.cv <= options.cv_threshold:
            break
        stats = LatencyStats.from_samples_ns(_time_round(session, feed, options))
        if stats.cv < best.cv:
            best = stats
    return best


def _check_options(options: MeasureOptions | None) -> MeasureOptions:
    if options is None:
        return MeasureOptions()
    if not isinstance(options, MeasureOptions):
        raise invalid("measure_onnx argument 'options'", "must be a MeasureOptions or None", options,
                      "e.g. options=MeasureOptions(min_runs=50)")
    return options


def model_input(
    onnx_bytes: bytes, input_shape: Sequence[int], *, seed: int = MeasureOptions.seed
) -> dict[str, np.ndarray]:
    """The feed :func:`measure_onnx` times the model on: its one input, standard normal, drawn from ``seed``.

    For reproducing a measurement elsewhere (a phone's benchmark tool) or checking beforehand that the
    service accepts a model.

    Returns:
        ``{input name: tensor}``, the tensor of ``input_shape`` in the model's declared float type.

    Raises:
        DeviceError: The model cannot be loaded, has several or non-float inputs, or ``input_shape``
            does not fit its input.
    """
    session = _open_session(onnx_bytes, threads=1, provider="CPUExecutionProvider")
    return _make_feed(session, check_input_shape(input_shape), seed=seed)


def check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """``input_shape`` as a tuple of Python ints; numpy integers pass, 1.5 or True does not.

    Raises:
        DeviceError: Not a non-empty sequence of positive integers.
    """
    try:
        dims = tuple(input_shape)
    except TypeError:
        dims = ()
    if not dims or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in dims):
        raise invalid("input_shape", "must be a non-empty sequence of positive integers, batch first", input_shape,
                      "e.g. (1, 3, 224, 224)", error=DeviceError)
    return tuple(int(d) for d in dims)


def _open_session(onnx_bytes: bytes, *, threads: int, provider: str,
                  provider_options: Mapping[str, str] | None = None) -> Any:
    import onnxruntime as ort  # deferred: only measuring processes need it

    if not isinstance(onnx_bytes, (bytes, bytearray)) or not onnx_bytes:
        raise invalid("onnx_bytes", "must be a non-empty serialised ONNX model", onnx_bytes, _EXPORT_HINT,
                      error=DeviceError)
    require_provider(provider)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only; ORT's warnings would flood a search's logs
    try:
        providers: list[Any] = [(provider, dict(provider_options))] if provider_options else [provider]
        return ort.InferenceSession(bytes(onnx_bytes), sess_options=options, providers=providers)
    except Exception as exc:  # ORT's exceptions derive from Exception directly, not one base
        raise DeviceError(f"ONNX Runtime cannot load the model ({len(onnx_bytes)} bytes): {str(exc).rstrip('.')}. "
                          f"HINT: export it again with spaces' ONNX export and check it with onnx.checker.") from exc


def _make_feed(session: Any, input_shape: tuple[int, ...], *, seed: int) -> dict[str, np.ndarray]:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise invalid("onnx_bytes", "must be a model with exactly one input (the latency service feeds one)",
                      [i.name for i in inputs], _EXPORT_HINT, error=DeviceError)
    (declared,) = inputs
    dtype = _INPUT_DTYPES.get(declared.type)
    if dtype is None:
        raise invalid(f"the model's input {declared.name!r}", f"must be of type {' or '.join(_INPUT_DTYPES)}",
                      declared.type, _EXPORT_HINT, error=DeviceError)
    # Symbolic (str) and unknown (None) dimensions accept any size; fixed ones must match.
    fits = len(declared.shape) == len(input_shape) and all(
        not isinstance(want, int) or want == got for want, got in zip(declared.shape, input_shape)
    )
    if not fits:
        raise invalid("input_shape", f"must fit the model's input {declared.name!r} of shape {declared.shape}",
                      list(input_shape), "pass the shape the model was exported with", error=DeviceError)
    rng = np.random.default_rng(seed)
    return {declared.name: rng.standard_normal(input_shape, dtype=np.float32).astype(dtype)}


def _run_checked(session: Any, feed: dict[str, np.ndarray], *, times: int) -> None:
    """Run untimed; the first run surfaces a model that loads but cannot execute."""
    try:
        for _ in range(times):
            session.run(None, feed)
    except Exception as exc:
        raise DeviceError(f"ONNX Runtime failed to run the model: {exc}") from exc


def _time_round(session: Any, feed: dict[str, np.ndarray], options: MeasureOptions) -> np.ndarray:
    """Per-run wall times in nanoseconds; bounded by ``max_runs`` whatever the clock says."""
    min_time_ns = int(options.min_time_s * 1e9)
    samples: list[int] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside a timed run is the harness's cost, not the model's
    try:
        start = time.perf_counter_ns()
        while len(samples) < options.max_runs:
            t0 = time.perf_counter_ns()
            session.run(None, feed)
            t1 = time.perf_counter_ns()
            samples.append(t1 - t0)
            if len(samples) >= options.min_runs and t1 - start >= min_time_ns:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return np.asarray(samples, dtype=np.float64)


def runtime_string(profile: DeviceProfile) -> str:
    """Runtime identity for cache keys, e.g. ``"onnxruntime-1.31.1-CPUExecutionProvider"``.

    Evaluated where the measurement runs: the device node's ONNX Runtime is the one that counts. A
    precision other than fp32 is appended (``...-TensorrtExecutionProvider-fp16``) so fp16 timings
    never answer for fp32 ones; fp32 keys stay as they were, so existing caches remain valid.
    """
    import onnxruntime as ort

    base = f"{profile.runtime}-{ort.__version__}-{profile.provider}"
    return base if profile.precision == "fp32" else f"{base}-{profile.precision}"
