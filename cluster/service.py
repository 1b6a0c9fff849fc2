"""One device's latency service without Ray: measure an exported model once, cache it for good.

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
from core.validation import invalid

from .cache import LatencyCache
from .devices import DeviceProfile
from .measure import MeasureOptions, check_input_shape, measure_model, runtime_string

__all__ = ["LatencyService"]


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
            :meth:`~cluster.measure.LatencyStats.to_dict` plus ``candidate_id``, ``device``, ``runtime``,
            ``input_shape``, ``node_id`` (where it was measured), ``measured_at`` (Unix time) and
            ``cached`` (whether this call was answered from the cache).

        Raises:
            DeviceError: The model cannot be measured (see :func:`~cluster.measure.measure_onnx`).
        """
        if not isinstance(candidate_id, str) or not candidate_id:
            raise invalid("candidate_id", "must be a non-empty string", candidate_id,
                          "pass the architecture's space.candidate_id(encoding)", error=DeviceError)
        hit = self.lookup(candidate_id, input_shape)
        if hit is not None:
            return hit
        shape = list(check_input_shape(input_shape))
        stats = measure_model(self._profile, onnx_bytes, shape, options=self._options)
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
        return LatencyCache.key(candidate_id, self._profile.name, self._runtime, check_input_shape(input_shape))

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
    ray = sys.modules.get("ray")  # only a process that already runs Ray has a node to name
    return ray.get_runtime_context().get_node_id() if ray is not None and ray.is_initialized() else None
