"""Timing an exported model in this process: the measurement the latency service runs.

:func:`measure_model` measures on a device profile's runtime: ONNX Runtime here (:func:`measure_onnx`),
or PyTorch for ``runtime: torch`` devices (:mod:`cluster.torch_runtime`).

Ray-free, so a device node, a benchmark or a test can measure without a cluster. :class:`MeasureOptions`
is the one place the measurement effort and its defaults are declared; :func:`measure_onnx` applies it
(warm-up, many runs, repeated rounds while the timings are unstable) and reports
:class:`LatencyStats`. :func:`runtime_string` names the runtime a measurement was taken with, for
cache keys.
"""
from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from core.errors import DeviceError
from core.validation import check_int, invalid

from .devices import DeviceProfile, provider_options, require_provider
from .stats import LatencyStats, MeasureOptions, best_round, check_input_shape, check_options

__all__ = [
    "PairedStats",
    "LatencyStats",
    "MeasureOptions",
    "check_input_shape",
    "measure_model",
    "measure_onnx",
    "measure_paired",
    "require_runtime",
    "model_input",
    "runtime_string",
]

# Input element types a measurement can feed; anything else (int64 token ids, ...) needs a
# different input generator and is refused rather than fed garbage.
_INPUT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
_EXPORT_HINT = "export it with spaces.export_onnx, which writes one float input"


def require_runtime(profile: DeviceProfile) -> None:
    """Check that this process can measure on ``profile``: ONNX Runtime has its provider, or PyTorch its
    device; call it where the measurement runs.

    Raises:
        DeviceError: It cannot; the message says what is missing and how to get it.
    """
    if profile.runtime == "torch":
        from .torch_runtime import require_torch_device

        require_torch_device(profile.provider)
    else:
        require_provider(profile.provider)


#: Paired measurement alternates short blocks of runs, not single runs. A model that fills the caches
#: (a MobileDet of tens of MB) leaves the next runs of a small reference slow until it has run for a few
#: ms (its median inside run-by-run pairs: 35-45% above alone); a run-by-run ratio measured that eviction,
#: not the model (BENCHMARKS.md, "paired in blocks"). Each block first runs untimed for PAIRED_SETTLE_S (at least one
#: run), then keeps runs until they add up to PAIRED_KEEP_S (at least one); its value is their median.
PAIRED_SETTLE_S = 0.01
PAIRED_KEEP_S = 0.01
#: Part of a paired record's settings (and so of its cache key): records taken run by run are measured again.
PAIRING = "blocks"


@dataclass(frozen=True)
class PairedStats:
    """A model timed against a reference model in alternating blocks of runs (:func:`measure_paired`).

    ``relative`` is the median over block pairs of (model's block median / the reference's block median
    right after): whatever slows the node for a while (a neighbour on a shared host, frequency scaling,
    thermal throttling) slows both blocks of a pair alike and cancels, where each one's median moves
    with it. ``stats`` and ``reference`` summarise the block medians.
    """

    stats: LatencyStats
    reference: LatencyStats
    relative: float


def measure_model(profile: DeviceProfile, onnx_bytes: bytes, input_shape: Sequence[int], *,
                  options: MeasureOptions | None = None) -> LatencyStats:
    """Measure an exported model as ``profile`` says: its runtime, provider, threads and precision.

    Raises:
        DeviceError: The model cannot be measured, or this process lacks the profile's runtime.
    """
    if profile.runtime == "torch":
        from .torch_runtime import measure_torch

        return measure_torch(onnx_bytes, input_shape, options=options, device=profile.provider,
                             threads=profile.threads, precision=profile.precision)
    return measure_onnx(onnx_bytes, input_shape, options=options, threads=profile.threads,
                        provider=profile.provider, provider_options=provider_options(profile))


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
    options = check_options(options, where="measure_onnx argument 'options'")
    check_int("measure_onnx argument 'threads'", threads, minimum=1, hint="use 1 for a single-threaded measurement")
    session = _open_session(onnx_bytes, threads=threads, provider=provider, provider_options=provider_options)
    feed = _make_feed(session, check_input_shape(input_shape), seed=options.seed)
    _run_checked(session, feed, times=max(options.warmup, 1))
    return best_round(lambda: _time_round(session, feed, options), options)


def measure_paired(profile: DeviceProfile, onnx_bytes: bytes, input_shape: Sequence[int], reference_bytes: bytes,
                   reference_shape: Sequence[int], *, options: MeasureOptions | None = None,
                   settle_s: float = PAIRED_SETTLE_S, keep_s: float = PAIRED_KEEP_S) -> PairedStats:
    """Measure a model and a reference model in turn, in alternating blocks of runs (ONNX Runtime only).

    Warm-up and rounds follow ``options`` as in :func:`measure_onnx`. A round is a series of block pairs
    (a block of the model, then one of the reference; see :data:`PAIRED_SETTLE_S`): at least
    ``min_runs / 3`` of them and until ``min_time_s`` has passed, at most ``max_runs / 3``. The round
    whose block ratios vary least is kept. ``settle_s`` and ``keep_s`` set the blocks (0 and 0: run by
    run, for comparisons).

    Raises:
        DeviceError: A model cannot be measured, or ``profile`` runs on PyTorch (not supported here).
    """
    if profile.runtime != "onnxruntime":
        raise DeviceError(f"paired measurement runs on ONNX Runtime, not on device {profile.name!r}'s "
                          f"{profile.runtime}. HINT: measure without a reference on this device.")
    options = check_options(options, where="measure_paired argument 'options'")
    shapes = (check_input_shape(input_shape), check_input_shape(reference_shape))
    sessions = [_open_session(data, threads=profile.threads, provider=profile.provider,
                              provider_options=provider_options(profile)) for data in (onnx_bytes, reference_bytes)]
    feeds = [_make_feed(session, shape, seed=options.seed) for session, shape in zip(sessions, shapes)]
    for session, feed in zip(sessions, feeds):
        _run_checked(session, feed, times=max(options.warmup, 1))
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(options.max_rounds):
        model_ns, reference_ns = _time_pairs(sessions, feeds, options, settle_s=settle_s, keep_s=keep_s)
        ratios = model_ns / reference_ns
        spread = float(np.std(ratios) / np.mean(ratios))
        if best is None or spread < best[0]:
            best = (spread, model_ns, reference_ns)
        if spread <= options.cv_threshold:
            break
    assert best is not None
    _, model_ns, reference_ns = best
    return PairedStats(stats=LatencyStats.from_samples_ns(model_ns), reference=LatencyStats.from_samples_ns(reference_ns),
                       relative=float(np.median(model_ns / reference_ns)))


def _time_pairs(sessions: Sequence[Any], feeds: Sequence[dict[str, np.ndarray]], options: MeasureOptions, *,
                settle_s: float = PAIRED_SETTLE_S, keep_s: float = PAIRED_KEEP_S) -> tuple[np.ndarray, np.ndarray]:
    """Per-block-pair median times (model, then reference) in nanoseconds; a round of :func:`measure_paired`."""
    min_time_ns = int(options.min_time_s * 1e9)
    fewest, most = max(options.min_runs // 3, 1), max(options.max_runs // 3, 1)
    (model, reference), (model_feed, reference_feed) = sessions, feeds
    pairs: list[tuple[float, float]] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        while len(pairs) < most:
            pairs.append((_time_block(model, model_feed, settle_s, keep_s),
                          _time_block(reference, reference_feed, settle_s, keep_s)))
            if len(pairs) >= fewest and time.perf_counter_ns() - start >= min_time_ns:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    both = np.asarray(pairs, dtype=np.float64)
    return both[:, 0], both[:, 1]


def _time_block(session: Any, feed: dict[str, np.ndarray], settle_s: float, keep_s: float) -> float:
    """The median of one block's kept runs, in nanoseconds, after its settling runs."""
    settle_ns, keep_ns = int(settle_s * 1e9), int(keep_s * 1e9)
    block_start = time.perf_counter_ns()
    kept: list[int] = []
    kept_ns = 0
    while True:
        t0 = time.perf_counter_ns()
        session.run(None, feed)
        t1 = time.perf_counter_ns()
        if t0 - block_start >= settle_ns:  # with settle_ns > 0 the first run always settles
            kept.append(t1 - t0)
            kept_ns += t1 - t0
            if kept_ns >= keep_ns:
                return float(np.median(kept))


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
    """Runtime identity for cache keys, e.g. ``"onnxruntime-1.31.1-CPUExecutionProvider"`` (for a torch
    device, e.g. ``"torch-2.11.0+cu130-cuda-NVIDIA_H200"``).

    Evaluated where the measurement runs: the device node's ONNX Runtime is the one that counts. A
    precision other than fp32 is appended (``...-TensorrtExecutionProvider-fp16``) so fp16 timings
    never answer for fp32 ones; fp32 keys stay as they were, so existing caches remain valid.
    """
    if profile.runtime == "torch":
        from .torch_runtime import torch_runtime_string

        return torch_runtime_string(profile.provider, profile.precision)
    import onnxruntime as ort

    base = f"{profile.runtime}-{ort.__version__}-{profile.provider}"
    return base if profile.precision == "fp32" else f"{base}-{profile.precision}"
