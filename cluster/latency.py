"""The latency service: ONNX models measured on the node that holds the device, cached for good.

Three layers, each usable alone:

* :func:`measure_onnx` times an ONNX model with ONNX Runtime in this process (warm-up, many runs,
  robust statistics, repeated rounds while the timings are unstable).
* :class:`LatencyActor` is a Ray actor per device, placed by the custom resource ``device:NAME`` on
  the node that carries the device, measuring one model at a time and caching every result in an
  append-only JSON-lines file keyed by (candidate_id, device, runtime, input shape).
* :class:`LatencyClient` is what Tune trial workers hold: it finds the actor and waits for a result
  with a timeout, turning Ray failures into :class:`~core.errors.DeviceError`.
"""
from __future__ import annotations

import gc
import math
import numbers
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import ray
from ray.actor import ActorHandle

from core.errors import ConfigError, DeviceError, ExperimentError, HwnasError
from core.jsonio import append_jsonl, canonical_json, read_jsonl

from .devices import DeviceProfile, provider_options, require_provider, resolve_device
from .runtime import require_device

__all__ = [
    "LATENCY_NAMESPACE",
    "LatencyActor",
    "LatencyCache",
    "LatencyClient",
    "LatencyService",
    "LatencyStats",
    "MeasureOptions",
    "get_latency_actor",
    "latency_actor_name",
    "measure_onnx",
    "runtime_string",
]

LATENCY_NAMESPACE = "hwnas"
CACHE_SCHEMA = 1

# Latency actor handles this process created or found, by actor name (see get_latency_actor).
_KEEP_ALIVE: dict[str, ActorHandle] = {}
# Times a LatencyClient call meets a dead actor before it gives up.
_ACTOR_ATTEMPTS = 3

# Input element types a measurement can feed; anything else (int64 token ids, ...) needs a
# different input generator and is refused rather than fed garbage.
_INPUT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form that :meth:`from_dict` reads back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyStats:
        """Read the statistics out of a mapping that may hold other keys (a measurement record)."""
        try:
            values = {f.name: data[f.name] for f in fields(cls)}
        except KeyError as exc:
            raise HwnasError(f"latency record lacks the field {exc.args[0]!r}: {dict(data)!r}") from None
        return cls(**{k: (int(v) if k == "runs" else float(v)) for k, v in values.items()})


@dataclass(frozen=True)
class MeasureOptions:
    """How hard :func:`measure_onnx` works for one measurement; see its arguments."""

    warmup: int = 10
    min_runs: int = 30
    max_runs: int = 300
    min_time_s: float = 0.2
    cv_threshold: float = 0.05
    max_rounds: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        _check_int("warmup", self.warmup, minimum=0)
        _check_int("min_runs", self.min_runs, minimum=1)
        _check_int("max_runs", self.max_runs, minimum=self.min_runs)
        _check_int("max_rounds", self.max_rounds, minimum=1)
        _check_int("seed", self.seed, minimum=0)
        if not (_is_number(self.min_time_s) and math.isfinite(self.min_time_s) and self.min_time_s >= 0):
            raise ConfigError(f"min_time_s must be a finite number >= 0; got {self.min_time_s!r}.")
        if not (_is_number(self.cv_threshold) and self.cv_threshold > 0):
            raise ConfigError(f"cv_threshold must be a number > 0; got {self.cv_threshold!r}. HINT: e.g. 0.05.")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}; got {value!r}.")


def measure_onnx(
    onnx_bytes: bytes,
    input_shape: tuple[int, ...],
    *,
    threads: int = 1,
    provider: str = "CPUExecutionProvider",
    provider_options: Mapping[str, str] | None = None,
    warmup: int = 10,
    min_runs: int = 30,
    max_runs: int = 300,
    min_time_s: float = 0.2,
    cv_threshold: float = 0.05,
    max_rounds: int = 3,
    seed: int = 0,
) -> LatencyStats:
    """Measure the inference latency of an ONNX model with ONNX Runtime, in this process.

    The session runs sequentially with ``threads`` intra-op threads and one inter-op thread, with
    all graph optimisations, on one fixed random input drawn from ``seed``. After ``warmup`` runs,
    each round times single inferences with :func:`time.perf_counter_ns`, at least ``min_runs`` of
    them and until ``min_time_s`` has passed, at most ``max_runs``. While a round's CV exceeds
    ``cv_threshold`` another round is timed, at most ``max_rounds`` in all; the round with the
    lowest CV is returned (see :class:`LatencyStats` for the statistics).

    Args:
        onnx_bytes: A serialised ONNX model with exactly one float input.
        input_shape: Shape of that input, batch first.
        threads: Intra-op threads.
        provider: ONNX Runtime execution provider.
        provider_options: Options of that provider (see :func:`cluster.devices.provider_options`).
        warmup: Untimed runs first (allocations, caches, lazy kernel selection).
        min_runs: Fewest timed runs per round.
        max_runs: Most timed runs per round (bounds a slow model's round).
        min_time_s: Shortest timed duration per round (fast models get many runs).
        cv_threshold: A round with a CV at or below this is stable and ends the measurement.
        max_rounds: Most rounds.
        seed: Seed of the input tensor.

    Returns:
        The statistics of the most stable round.

    Raises:
        DeviceError: The bytes are not a loadable model, the provider is missing, or the model
            cannot run on an input of ``input_shape``.
        ConfigError: A measurement option is out of range.
    """
    options = MeasureOptions(warmup=warmup, min_runs=min_runs, max_runs=max_runs, min_time_s=min_time_s,
                             cv_threshold=cv_threshold, max_rounds=max_rounds, seed=seed)
    _check_int("threads", threads, minimum=1)
    session = _open_session(onnx_bytes, threads=threads, provider=provider, provider_options=provider_options)
    feed = _make_feed(session, _as_shape(input_shape), seed=options.seed)
    _run_checked(session, feed, times=max(options.warmup, 1))
    best = _robust_stats(_time_round(session, feed, options))
    for _ in range(options.max_rounds - 1):
        if best.cv <= options.cv_threshold:
            break
        stats = _robust_stats(_time_round(session, feed, options))
        if stats.cv < best.cv:
            best = stats
    return best


def _open_session(onnx_bytes: bytes, *, threads: int, provider: str,
                  provider_options: Mapping[str, str] | None = None) -> Any:
    import onnxruntime as ort  # deferred: only measuring processes need it

    if not isinstance(onnx_bytes, (bytes, bytearray)) or not onnx_bytes:
        size = len(onnx_bytes) if isinstance(onnx_bytes, (bytes, bytearray)) else "?"
        raise DeviceError(f"onnx_bytes must be a non-empty serialised ONNX model; got "
                          f"{type(onnx_bytes).__name__} of length {size}.")
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
        raise DeviceError(f"the model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                          f"the latency service measures single-input models only.")
    (declared,) = inputs
    dtype = _INPUT_DTYPES.get(declared.type)
    if dtype is None:
        raise DeviceError(f"the model's input {declared.name!r} is {declared.type}; the latency service "
                          f"feeds {', '.join(_INPUT_DTYPES)} only.")
    # Symbolic (str) and unknown (None) dimensions accept any size; fixed ones must match.
    fits = len(declared.shape) == len(input_shape) and all(
        not isinstance(want, int) or want == got for want, got in zip(declared.shape, input_shape)
    )
    if not fits:
        raise DeviceError(f"input_shape {list(input_shape)} does not fit the model's input "
                          f"{declared.name!r} of shape {declared.shape}.")
    rng = np.random.default_rng(seed)
    return {declared.name: rng.standard_normal(input_shape, dtype=np.float32).astype(dtype)}


def _as_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """``input_shape`` as a tuple of Python ints; numpy integers pass, 1.5 or True does not."""
    try:
        dims = tuple(input_shape)
    except TypeError:
        dims = ()
    if not dims or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in dims):
        raise DeviceError(f"input_shape must be a non-empty sequence of positive integers, batch first; "
                          f"got {input_shape!r}.")
    return tuple(int(d) for d in dims)


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


def _robust_stats(samples_ns: np.ndarray) -> LatencyStats:
    """Statistics over the runs at or below median + 5 * MAD (see :class:`LatencyStats`)."""
    ms = samples_ns / 1e6
    median = float(np.median(ms))
    mad = float(np.median(np.abs(ms - median)))
    kept = ms[ms <= median + 5.0 * mad]  # never empty: at least half the runs are <= median
    mean = float(kept.mean())
    return LatencyStats(
        median_ms=float(np.median(kept)),
        min_ms=float(kept.min()),
        p90_ms=float(np.percentile(kept, 90)),
        mean_ms=mean,
        cv=float(kept.std() / mean) if mean > 0 else 0.0,
        runs=int(ms.size),
    )


def runtime_string(profile: DeviceProfile) -> str:
    """Runtime identity for cache keys, e.g. ``"onnxruntime-1.31.1-CPUExecutionProvider"``.

    Evaluated where the measurement runs: the device node's ONNX Runtime is the one that counts. A
    precision other than fp32 is appended (``...-TensorrtExecutionProvider-fp16``) so fp16 timings
    never answer for fp32 ones; fp32 keys stay as they were, so existing caches remain valid.
    """
    import onnxruntime as ort

    base = f"{profile.runtime}-{ort.__version__}-{profile.provider}"
    return base if profile.precision == "fp32" else f"{base}-{profile.precision}"


class LatencyCache:
    """Measurements keyed by (candidate_id, device, runtime, input shape), optionally on disk.

    The file is JSON lines appended with :func:`core.jsonio.append_jsonl` (one fsync'd write per
    record), so any number of actors and experiments may share it and a killed writer loses at most
    the record in flight. Records of another schema version are ignored, not misread.

    Args:
        path: The JSON-lines file; ``None`` keeps the cache in memory only.
    """

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self._path = None if path is None else Path(path)
        self._records: dict[str, dict[str, Any]] = {}
        if self._path is not None:
            self._load(self._path)

    @staticmethod
    def key(candidate_id: str, device: str, runtime: str, input_shape: Sequence[int]) -> str:
        """The canonical cache key."""
        return canonical_json([candidate_id, device, runtime, [int(d) for d in input_shape]])

    def _load(self, path: Path) -> None:
        try:
            for record in read_jsonl(path):
                if record.get("schema") == CACHE_SCHEMA:
                    self._records[self.key(record["candidate_id"], record["device"], record["runtime"],
                                           record["input_shape"])] = record
        except (ValueError, KeyError, TypeError) as exc:
            raise ExperimentError(f"latency cache {path} has a malformed record: {exc!r}. "
                                  f"HINT: delete the offending line; it will be measured again.") from exc

    def get(self, key: str) -> dict[str, Any] | None:
        """The record stored under ``key``, or ``None``."""
        return self._records.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Store a record (with ``schema`` added) in memory and, if file-backed, on disk first."""
        record = {**record, "schema": CACHE_SCHEMA}
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            append_jsonl(self._path, record)
        self._records[key] = record

    def __len__(self) -> int:
        return len(self._records)


class LatencyService:
    """Measures models for one device and caches the results; the body of :class:`LatencyActor`.

    Plain Python, so it can be used and tested without Ray.

    Args:
        profile: The device measured on.
        cache_path: JSON-lines cache file (on the device node's file system), or ``None``.
        options: Measurement effort; defaults to :class:`MeasureOptions`.
    """

    def __init__(
        self,
        profile: DeviceProfile,
        cache_path: str | None = None,
        options: MeasureOptions | None = None,
    ) -> None:
        self._profile = profile
        self._options = options or MeasureOptions()
        self._runtime = runtime_string(profile)
        self._cache = LatencyCache(cache_path)  # a restarted actor reloads everything measured
        self._cache_path = cache_path
        self._measured = 0
        self._hits = 0

    def measure(self, candidate_id: str, onnx_bytes: bytes, input_shape: Sequence[int]) -> dict[str, Any]:
        """Latency of a candidate on this device, measured once and cached for good.

        Args:
            candidate_id: Stable id of the architecture the model was built from.
            onnx_bytes: The serialised ONNX model.
            input_shape: Its input shape, batch first.

        Returns:
            :meth:`LatencyStats.to_dict` plus ``candidate_id``, ``device``, ``runtime``,
            ``input_shape``, ``node_id`` (where it was measured), ``measured_at`` (Unix time) and
            ``cached`` (whether this call was answered from the cache).

        Raises:
            DeviceError: The model cannot be measured (see :func:`measure_onnx`).
        """
        if not isinstance(candidate_id, str) or not candidate_id:
            raise DeviceError(f"candidate_id must be a non-empty string; got {candidate_id!r}.")
        hit = self.lookup(candidate_id, input_shape)
        if hit is not None:
            return hit
        shape = list(_as_shape(input_shape))
        stats = measure_onnx(onnx_bytes, tuple(shape), threads=self._profile.threads,
                             provider=self._profile.provider, provider_options=provider_options(self._profile),
                             **asdict(self._options))
        record = {**stats.to_dict(), "candidate_id": candidate_id, "device": self._profile.name,
                  "runtime": self._runtime, "input_shape": shape, "node_id": _node_id(),
                  "measured_at": time.time()}
        self._cache.put(self._key(candidate_id, shape), record)
        self._measured += 1
        return _public(record, cached=False)

    def lookup(self, candidate_id: str, input_shape: Sequence[int]) -> dict[str, Any] | None:
        """The cached result of :meth:`measure`, or ``None``; lets callers skip exporting a model."""
        record = self._cache.get(self._key(candidate_id, input_shape))
        if record is None:
            return None
        self._hits += 1
        return _public(record, cached=True)

    def _key(self, candidate_id: str, input_shape: Sequence[int]) -> str:
        return LatencyCache.key(candidate_id, self._profile.name, self._runtime, _as_shape(input_shape))

    def stats(self) -> dict[str, Any]:
        """Counters since this (incarnation of the) service started, and where it runs."""
        return {"device": self._profile.name, "runtime": self._runtime, "measured": self._measured,
                "cache_hits": self._hits, "cache_entries": len(self._cache), "cache_path": self._cache_path,
                "node_id": _node_id(), "pid": os.getpid()}


def _public(record: dict[str, Any], *, cached: bool) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k != "schema"}
    out["cached"] = cached
    return out


def _node_id() -> str | None:
    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


@ray.remote(num_cpus=0, max_concurrency=1, max_restarts=-1, max_task_retries=3)
class LatencyActor(LatencyService):
    """:class:`LatencyService` as a Ray actor: one per device, one measurement at a time.

    ``num_cpus=0`` plus a sliver of ``device:NAME`` places it on the node carrying the device
    without taking a CPU from the scheduler. ``max_restarts=-1`` and ``max_task_retries=3`` let
    Ray restart a killed actor (which reloads the cache) and retry the request it was serving.
    Create it with :func:`get_latency_actor`.
    """


def latency_actor_name(device_name: str) -> str:
    """The Ray actor name of a device's latency actor (in namespace ``"hwnas"``)."""
    return f"hwnas-latency-{device_name}"


def get_latency_actor(
    device: DeviceProfile | str,
    cache_path: str | os.PathLike[str] | None,
    *,
    options: MeasureOptions | None = None,
) -> ActorHandle:
    """Get the device's latency actor, creating it on the node that carries the device.

    The actor is not detached: it belongs to the process that creates it and dies with it. Call
    this in the driver before trials start, so the actor outlives every trial. If the actor exists,
    it is returned as it is (its cache path and options are the ones it was created with).

    Args:
        device: A profile or a registered device name.
        cache_path: JSON-lines cache file; a relative path is made absolute here. On a multi-node
            cluster it is a path on the device node (use shared storage to see it from the driver).
        options: Measurement effort.

    Raises:
        DeviceError: No node of the cluster carries the device.
        UnknownNameError: ``device`` is a name no profile is registered under.
    """
    profile = resolve_device(device)
    require_device(profile)
    path = None if cache_path is None else os.path.abspath(os.fspath(cache_path))
    name = latency_actor_name(profile.name)
    handle = LatencyActor.options(
        name=name,
        namespace=LATENCY_NAMESPACE,
        get_if_exists=True,
        # A sliver, not the whole unit: the resource marks the node, it does not ration it.
        resources={profile.resource: 0.001},
        # Never inside the caller's placement group: Tune trials capture child tasks into theirs,
        # whose bundles hold no device resource, and the actor must outlive any one trial.
        scheduling_strategy="DEFAULT",
    ).remote(profile, path, options)
    # A non-detached actor dies once no handle to it is left, named or not: hold one for the life
    # of this process, so the actor lives exactly as long as the job that created it. (A stale
    # handle from an earlier Ray session that this replaces is dropped harmlessly.)
    _KEEP_ALIVE[name] = handle
    return handle


class LatencyClient:
    """Synchronous access to a device's latency actor, for Tune trial workers.

    Picklable: the actor handle is looked up lazily in the process that uses the client. A crashed
    actor is restarted by Ray and the request retried; an actor gone for good (killed, or dead
    with the process that owned it) is replaced by looking it up or creating it again.

    Args:
        device: A profile or a registered device name.
        cache_path: Passed to :func:`get_latency_actor` if the actor does not exist yet.
        options: Passed likewise.
        timeout_s: Longest wait for one result, queueing behind other requests included.
    """

    def __init__(
        self,
        device: DeviceProfile | str,
        cache_path: str | os.PathLike[str] | None = None,
        *,
        options: MeasureOptions | None = None,
        timeout_s: float = 900.0,
    ) -> None:
        if not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
            raise ConfigError(f"timeout_s must be a number > 0; got {timeout_s!r}.")
        self._profile = resolve_device(device)
        # Absolute here, in the driver: Tune runs trials in their own working directories.
        self._cache_path = None if cache_path is None else os.path.abspath(os.fspath(cache_path))
        self._options = options
        self._timeout_s = float(timeout_s)
        self._actor: ActorHandle | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_actor": None}

    @property
    def device(self) -> DeviceProfile:
        """The device measured on."""
        return self._profile

    def actor(self) -> ActorHandle:
        """The actor handle, found or created on first use."""
        if self._actor is None:
            self._actor = get_latency_actor(self._profile, self._cache_path, options=self._options)
        return self._actor

    def measure(self, candidate_id: str, onnx_bytes: bytes, input_shape: Sequence[int]) -> dict[str, Any]:
        """:meth:`LatencyService.measure` on the device's actor, waiting at most ``timeout_s``.

        Raises:
            DeviceError: The model cannot be measured, the wait timed out, or the actor kept dying
                (a fresh one is looked up or created after each death, 3 attempts in all).
        """
        what = f"measuring {candidate_id!r}"
        return self._call("measure", candidate_id, onnx_bytes, list(input_shape), what=what)

    def lookup(self, candidate_id: str, input_shape: Sequence[int]) -> dict[str, Any] | None:
        """:meth:`LatencyService.lookup` on the device's actor: a cache hit without sending a model.

        A hit through :meth:`measure` ships the model's bytes to the actor for nothing (about 3 ms
        for a 1 MB model); call this first when exporting the model is the expensive part.
        """
        what = f"looking up {candidate_id!r}"
        return self._call("lookup", candidate_id, list(input_shape), what=what)

    def stats(self) -> dict[str, Any]:
        """:meth:`LatencyService.stats` of the device's actor."""
        return self._call("stats", what="reading stats")

    def _call(self, method: str, *args: Any, what: str) -> Any:
        """Call an actor method; if the actor is gone for good, find or create it again (bounded)."""
        died: ray.exceptions.RayActorError | None = None
        for attempt in range(_ACTOR_ATTEMPTS):
            if attempt:
                time.sleep(0.5 * attempt)  # the GCS releases a dead actor's name shortly after
            try:
                return self._wait(getattr(self.actor(), method).remote(*args), what=what)
            except ray.exceptions.RayActorError as exc:
                # Ray's restarts and retries cover a crashed actor; this one is beyond them: killed
                # for good, or dead with the process that owned it.
                self._actor = None
                died = exc
        raise DeviceError(
            f"{what} on device {self._profile.name!r} failed: its latency actor died {_ACTOR_ATTEMPTS} "
            f"times ({died}). HINT: check the device node with `ray status`."
        ) from died

    def _wait(self, ref: ray.ObjectRef, *, what: str) -> Any:
        name = self._profile.name
        try:
            return ray.get(ref, timeout=self._timeout_s)
        except ray.exceptions.GetTimeoutError as exc:
            # A request waits forever for an actor whose node is gone (Ray keeps it restarting until a
            # node with the device returns), so tell that case apart from a long queue.
            try:
                require_device(self._profile)
            except DeviceError as gone:
                raise gone from exc
            raise DeviceError(f"{what} on device {name!r} took longer than {self._timeout_s:g} s. HINT: the "
                              f"device may be busy with a queue of requests (raise timeout_s), or its node is "
                              f"down (check `ray status`).") from exc
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, HwnasError):
                raise exc.cause from None  # our own clear message; Ray's wrapper adds only a traceback
            raise DeviceError(f"{what} on device {name!r} failed: {exc}") from exc
