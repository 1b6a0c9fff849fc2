"""One device's latency service without Ray: measure an exported model once, cache it for good.

A measurement taken while other processes kept the node's cores busy (:func:`noise_verdict`) is *noisy*. A caller that needs clean figures (a cost-model fit) asks for
``noisy_retries``: the service measures again and keeps the quietest try. One that stays noisy is
returned and stored marked ``noisy``, with why; the cache refuses it as an answer later, so it is
measured again rather than carried into every later fit. A search measuring while its own trials
train on the node asks for no retries: its figures are marked, not re-taken.

:class:`LatencyService` is the body of the Ray actor :class:`~cluster.latency.LatencyActor`; being plain
Python, it also serves a machine that has PyTorch but no Ray (``benchmarks/gpu_check.py`` on a lent GPU)
and the tests.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Sequence

from core.errors import DeviceError
from core.validation import check_int, invalid

from .cache import LatencyCache
from .devices import DeviceProfile
from .host_load import CpuWindow, busy_verdict, node_cpus
from .measure import PAIRING, MeasureOptions, check_input_shape, measure_model, measure_paired, runtime_string

__all__ = ["FASTEST_GAP_S", "NOISY_RETRIES", "LatencyService", "UnknownReferenceError", "noise_verdict"]

#: Extra tries of a noisy measurement a cost-model fit asks for before one is kept, marked.
NOISY_RETRIES = 2
#: Pause between the tries of a ``fastest_of`` measurement, so that one slow spell (a process starting,
#: a neighbour's burst) does not cover them all.
FASTEST_GAP_S = 1.0


class UnknownReferenceError(DeviceError):
    """A measurement named a reference model this service has not been given (or lost in a restart)."""


def noise_verdict(foreign_cores: float | None, *, threads: int, cpus: int | None = None) -> str | None:
    """Why a measurement is noisy, or ``None``: other processes kept the node's cores busy meanwhile
    (:func:`~cluster.host_load.busy_verdict`).

    A high CV alone is not noise: a sub-millisecond model's runs jitter by 5-10% on an idle machine (the
    median of hundreds of them is still exact to a fraction of a percent), and a low-effort setting
    (``min_runs: 5``) is the user's choice; the measurement's own rounds already retry an unstable CV.
    """
    return busy_verdict(foreign_cores, threads=threads, cpus=cpus)


class LatencyService:
    """Measures models for one device and caches the results; the body of :class:`LatencyActor`.

    Plain Python, so it can be used and tested without Ray.

    Args:
        profile: The device measured on.
        cache_path: JSON-lines cache file (on the device node's file system), or ``None``.
        options: Measurement effort; ``None`` is :class:`~cluster.measure.MeasureOptions`' defaults.
    """

    def __init__(
        self,
        profile: DeviceProfile,
        cache_path: str | None = None,
        options: MeasureOptions | None = None,
    ) -> None:
        self._profile = profile
        self._options = options or MeasureOptions()
        self._settings = self._options.settings()
        self._references: dict[str, tuple[bytes, list[int]]] = {}
        self._noisy = 0
        self._runtime = runtime_string(profile)
        self._cache = LatencyCache(cache_path)  # a restarted actor reloads everything measured
        self._cache_path = cache_path
        self._measured = 0
        self._hits = 0

    def register_reference(self, reference_id: str, onnx_bytes: bytes, input_shape: Sequence[int]) -> None:
        """Keep a reference model (and its input shape) for paired measurements (:meth:`measure` with
        ``reference_id``)."""
        self._references[str(reference_id)] = (bytes(onnx_bytes), list(check_input_shape(input_shape)))

    def measure(self, candidate_id: str, onnx_bytes: bytes, input_shape: Sequence[int], noisy_retries: int = 0,
                reference_id: str | None = None, fastest_of: int = 1, repeat: int = 0) -> dict[str, Any]:
        """Latency of a candidate on this device, measured once and cached for good.

        Args:
            candidate_id: Stable id of the architecture the model was built from.
            onnx_bytes: The serialised ONNX model.
            input_shape: Its input shape, batch first.
            noisy_retries: Extra tries while the measurement is noisy; the quietest is kept.
            reference_id: Time the model against this registered reference, in alternating blocks of
                runs (:func:`~cluster.measure.measure_paired`): the record adds ``relative`` (the median
                ratio of the model's blocks to the reference's), ``reference_id`` and ``reference_ms``.
                Part of the cache key, with the pairing method.
            fastest_of: Measure (plainly) this many times, :data:`FASTEST_GAP_S` apart, and keep the try
                with the lowest median (a quiet one before a noisy one): the figure of the node at its
                idle speed, for a number that scales many others (a reference model's own latency).
                Above 1 it is part of the cache key.
            repeat: Which independent measurement of the same model this is (0: the first). Above 0 it is
                part of the cache key, so a cache keeps each one: a cost-model fit scores on the mean
                of several passes over its held-out architectures, taken minutes apart.

        Returns:
            :meth:`~cluster.measure.LatencyStats.to_dict` plus ``candidate_id``, ``device``, ``runtime``,
            ``input_shape``, ``settings`` (the measurement options), ``node_id`` (where it was
            measured), ``measured_at`` (Unix time), ``foreign_cores`` (cores other processes kept busy
            meanwhile; ``None`` off Linux), ``cpus`` (the node's), ``noisy`` (why it is noisy, or
            ``None``) and ``cached`` (whether this call was answered from the cache).

        Raises:
            DeviceError: The model cannot be measured (see :func:`~cluster.measure.measure_onnx`).
            UnknownReferenceError: ``reference_id`` is not registered (or the service restarted since).
        """
        if not isinstance(candidate_id, str) or not candidate_id:
            raise invalid("candidate_id", "must be a non-empty string", candidate_id,
                          "pass the architecture's space.candidate_id(encoding)", error=DeviceError)
        fastest_of, repeat = _check_fastest_of(fastest_of, reference_id), _check_repeat(repeat)
        hit = self._cached(candidate_id, input_shape, reference_id, fastest_of, repeat)
        if hit is not None:
            return hit
        if reference_id is not None and reference_id not in self._references:
            raise UnknownReferenceError(f"reference model {reference_id!r} is not registered with the latency "
                                        f"service of {self._profile.name!r}. HINT: register_reference() it first.")
        shape = list(check_input_shape(input_shape))
        measured = self._fastest(bytes(onnx_bytes), shape, int(noisy_retries), reference_id, fastest_of)
        record = {**measured, "candidate_id": candidate_id, "device": self._profile.name, "runtime": self._runtime,
                  "input_shape": shape, "settings": self._settings_for(reference_id, fastest_of, repeat),
                  "node_id": _node_id(), "measured_at": time.time()}
        self._cache.put(self._key(candidate_id, shape, reference_id, fastest_of, repeat), record)
        self._measured += 1
        self._noisy += record["noisy"] is not None
        return _public(record, cached=False)

    def _fastest(self, onnx_bytes: bytes, shape: list[int], retries: int, reference_id: str | None,
                 tries: int) -> dict[str, Any]:
        """The fastest of ``tries`` quietest measurements (:meth:`_quietest`), :data:`FASTEST_GAP_S` apart."""
        best: dict[str, Any] | None = None
        for attempt in range(tries):
            if attempt:
                time.sleep(FASTEST_GAP_S)
            tried = self._quietest(onnx_bytes, shape, retries, reference_id)
            if best is None or _speed_rank(tried) < _speed_rank(best):
                best = tried
        assert best is not None
        return best

    def _quietest(self, onnx_bytes: bytes, shape: list[int], retries: int, reference_id: str | None) -> dict[str, Any]:
        """The statistics and noise fields of the quietest of up to ``1 + retries`` measurements."""
        best: dict[str, Any] | None = None
        cpus = node_cpus()
        for _ in range(1 + max(0, retries)):
            with CpuWindow() as window:
                fields = self._measure_once(onnx_bytes, shape, reference_id)
            noisy = noise_verdict(window.foreign_cores, threads=self._profile.threads, cpus=cpus)
            tried = {**fields, "foreign_cores": window.foreign_cores, "cpus": cpus, "noisy": noisy}
            if best is None or _quieter(tried, best):
                best = tried
            if noisy is None:
                break
        assert best is not None
        return best

    def _measure_once(self, onnx_bytes: bytes, shape: list[int], reference_id: str | None) -> dict[str, Any]:
        if reference_id is None:
            return measure_model(self._profile, onnx_bytes, shape, options=self._options).to_dict()
        reference, reference_shape = self._references[reference_id]
        paired = measure_paired(self._profile, onnx_bytes, shape, reference, reference_shape, options=self._options)
        return {**paired.stats.to_dict(), "relative": paired.relative, "reference_id": reference_id,
                "reference_ms": paired.reference.median_ms}

    def _settings_for(self, reference_id: str | None, fastest_of: int = 1, repeat: int = 0) -> dict[str, Any]:
        settings = dict(self._settings)
        if reference_id is not None:
            settings.update(reference=reference_id, pairing=PAIRING)
        if fastest_of > 1:
            settings["fastest_of"] = fastest_of
        if repeat:  # the first measurement keeps the key it always had
            settings["repeat"] = repeat
        return settings

    def lookup(self, candidate_id: str, input_shape: Sequence[int], reference_id: str | None = None,
               fastest_of: int = 1, repeat: int = 0) -> dict[str, Any] | None:
        """The cached result of :meth:`measure`, or ``None``; lets callers skip exporting a model.

        A record marked noisy is no answer: ``None``, so the caller measures it again.
        """
        return self._cached(candidate_id, input_shape, reference_id, _check_fastest_of(fastest_of, reference_id),
                            _check_repeat(repeat))

    def _cached(self, candidate_id: str, input_shape: Sequence[int], reference_id: str | None,
                fastest_of: int, repeat: int) -> dict[str, Any] | None:
        record = self._cache.get(self._key(candidate_id, input_shape, reference_id, fastest_of, repeat))
        if record is None or record.get("noisy") is not None:
            return None
        self._hits += 1
        return _public(record, cached=True)

    def _key(self, candidate_id: str, input_shape: Sequence[int], reference_id: str | None = None,
             fastest_of: int = 1, repeat: int = 0) -> str:
        return LatencyCache.key(candidate_id, self._profile.name, self._runtime, check_input_shape(input_shape),
                                self._settings_for(reference_id, fastest_of, repeat))

    def stats(self) -> dict[str, Any]:
        """Counters since this (incarnation of the) service started, and where it runs."""
        return {"device": self._profile.name, "runtime": self._runtime, "measured": self._measured,
                "noisy": self._noisy, "cache_hits": self._hits, "cache_entries": len(self._cache),
                "cache_path": self._cache_path, "node_id": _node_id(), "pid": os.getpid()}


def _check_fastest_of(fastest_of: Any, reference_id: str | None) -> int:
    fastest_of = check_int("LatencyService argument 'fastest_of'", fastest_of, minimum=1, maximum=20,
                           hint="e.g. fastest_of=3 for a reference model's own latency")
    if fastest_of > 1 and reference_id is not None:
        raise invalid("LatencyService argument 'fastest_of'", "applies to plain measurements only", fastest_of,
                      "leave it 1 with a reference_id: a paired ratio cancels the node's speed already",
                      error=DeviceError)
    return fastest_of


def _check_repeat(repeat: Any) -> int:
    return check_int("LatencyService argument 'repeat'", repeat, minimum=0, maximum=99,
                     hint="0 for a model's first measurement, k for its (k+1)-th independent one")


def _speed_rank(measured: dict[str, Any]) -> tuple[bool, float]:
    """Quiet before noisy, then the lower median."""
    return measured["noisy"] is not None, measured["median_ms"]


def _quieter(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether measurement ``a`` is quieter than ``b``: not noisy first, then less foreign load, then lower CV."""
    def rank(m: dict[str, Any]) -> tuple[bool, float, float]:
        return m["noisy"] is not None, m["foreign_cores"] or 0.0, m["cv"]

    return rank(a) < rank(b)


def _public(record: dict[str, Any], *, cached: bool) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k != "schema"}
    out["cached"] = cached
    return out


def _node_id() -> str | None:
    ray = sys.modules.get("ray")  # only a process that already runs Ray has a node to name
    return ray.get_runtime_context().get_node_id() if ray is not None and ray.is_initialized() else None
