"""The latency service: ONNX models measured on the node that holds the device, cached for good.

Three layers, each usable alone:

* :func:`~cluster.measure.measure_model` times an exported model in this process (:mod:`cluster.measure`),
  :class:`~cluster.cache.LatencyCache` keeps every result (:mod:`cluster.cache`) and
  :class:`~cluster.service.LatencyService` ties the two together for one device; none needs Ray.
* :class:`LatencyActor` is a Ray actor per device, placed by the custom resource ``device:NAME`` on
  the node that carries the device, measuring one model at a time and caching every result in an
  append-only JSON-lines file keyed by (candidate_id, device, runtime, input shape).
* :class:`LatencyClient` is what Tune trial workers hold: it finds the actor and waits for a result
  with a timeout, turning Ray failures into :class:`~core.errors.DeviceError`.
"""
from __future__ import annotations

import os
import time
from typing import Any, Sequence

import ray
from ray.actor import ActorHandle

from core.errors import DeviceError, HwnasError
from core.validation import check_number

from .devices import DeviceProfile, resolve_device
from .measure import MeasureOptions
from .runtime import require_device
from .service import LatencyService, UnknownReferenceError

__all__ = [
    "LATENCY_NAMESPACE",
    "LatencyActor",
    "LatencyClient",
    "LatencyService",
    "get_latency_actor",
    "latency_actor_name",
]

LATENCY_NAMESPACE = "hwnas"

# Latency actor handles this process created or found, by actor name (see get_latency_actor).
_KEEP_ALIVE: dict[str, ActorHandle] = {}
# Times a LatencyClient call meets a dead actor before it gives up.
_ACTOR_ATTEMPTS = 3
# How often a wait on the latency actor checks that some node still carries the device.
_DEVICE_POLL_S = 2.0
# How long an actor that kept dying is given to turn out to have lost its node (Ray's health checks).
_NODE_DEATH_GRACE_S = 30.0


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
        device_wait_s: How long a call waits for the device to come back when no node carries it any
            more (its node died or left); ``0``: fail at once, with a :class:`DeviceError` that says so.
    """

    def __init__(
        self,
        device: DeviceProfile | str,
        cache_path: str | os.PathLike[str] | None = None,
        *,
        options: MeasureOptions | None = None,
        timeout_s: float = 900.0,
        device_wait_s: float = 0.0,
    ) -> None:
        timeout_s = check_number("LatencyClient argument 'timeout_s'", timeout_s, low=0.0, low_open=True,
                                 hint="e.g. timeout_s=900 (seconds; a queue of requests counts)")
        self._device_wait_s = check_number("LatencyClient argument 'device_wait_s'", device_wait_s, low=0.0,
                                           hint="e.g. device_wait_s=600, or 0 to fail at once")
        self._profile = resolve_device(device)
        # Absolute here, in the driver: Tune runs trials in their own working directories.
        self._cache_path = None if cache_path is None else os.path.abspath(os.fspath(cache_path))
        self._options = options
        self._timeout_s = timeout_s
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

    def measure(self, candidate_id: str, onnx_bytes: bytes, input_shape: Sequence[int], *,
                noisy_retries: int = 0, reference: tuple[str, bytes, Sequence[int]] | None = None,
                fastest_of: int = 1, repeat: int = 0) -> dict[str, Any]:
        """:meth:`LatencyService.measure` on the device's actor, waiting at most ``timeout_s``.

        ``reference`` is ``(reference_id, onnx_bytes, input_shape)`` of a reference model to time the model against
        (registered with the actor on first use, and again after the actor restarted). ``fastest_of``
        keeps the fastest of that many plain measurements, and ``repeat`` names an independent measurement of the
        same model, cached apart from the first (:meth:`LatencyService.measure`).

        Raises:
            DeviceError: The model cannot be measured, the wait timed out, or the actor kept dying
                (a fresh one is looked up or created after each death, 3 attempts in all).
        """
        what = f"measuring {candidate_id!r}"
        reference_id = None if reference is None else reference[0]
        args = (candidate_id, onnx_bytes, list(input_shape), noisy_retries, reference_id, fastest_of, repeat)
        try:
            return self._call("measure", *args, what=what)
        except UnknownReferenceError:
            assert reference is not None
            self._call("register_reference", *reference, what=f"registering reference {reference_id!r}")
            return self._call("measure", *args, what=what)

    def lookup(self, candidate_id: str, input_shape: Sequence[int], reference_id: str | None = None,
               fastest_of: int = 1, repeat: int = 0) -> dict[str, Any] | None:
        """:meth:`LatencyService.lookup` on the device's actor: a cache hit without sending a model.

        A hit through :meth:`measure` ships the model's bytes to the actor for nothing (about 3 ms
        for a 1 MB model); call this first when exporting the model is the expensive part.
        """
        what = f"looking up {candidate_id!r}"
        return self._call("lookup", candidate_id, list(input_shape), reference_id, fastest_of, repeat, what=what)

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
                if self._actor is None:  # first use, or after a death: is there a node to place it on?
                    self._await_device(what)
                return self._wait(getattr(self.actor(), method).remote(*args), what=what)
            except ray.exceptions.RayActorError as exc:
                # Ray's restarts and retries cover a crashed actor; this one is beyond them: killed
                # for good, or dead with the process that owned it.
                self._actor = None
                died = exc
        # An actor that keeps dying is most often one whose node is gone, which the cluster notices only
        # after its health checks fail (seconds): say so when that is what happened.
        deadline = time.monotonic() + _NODE_DEATH_GRACE_S
        while time.monotonic() < deadline:
            if not self._device_present():
                raise self._device_gone(what) from died
            time.sleep(_DEVICE_POLL_S)
        raise DeviceError(
            f"{what} on device {self._profile.name!r} failed: its latency actor died {_ACTOR_ATTEMPTS} "
            f"times ({died}). HINT: check the device node with `ray status`."
        ) from died

    def _device_present(self) -> bool:
        try:
            require_device(self._profile)
            return True
        except DeviceError:
            return False

    def _device_gone(self, what: str) -> DeviceError:
        waited = f" and did not come back within {self._device_wait_s:g} s" if self._device_wait_s else ""
        resource = self._profile.resource
        return DeviceError(
            f"{what}: no node of the Ray cluster carries {resource} any more (its node died or left{waited}). "
            f"HINT: start the device node again (`ray start --address=HEAD:6379 --resources='{{\"{resource}\": 1}}'`) "
            f"and resume the experiment; set cost.device_wait_s to wait for it instead of stopping.")

    def _await_device(self, what: str) -> None:
        """Return once a node carries the device; if none does for ``device_wait_s``, raise
        :func:`~cluster.runtime.require_device`'s error (it lists the devices present)."""
        deadline = time.monotonic() + self._device_wait_s
        while True:
            try:
                require_device(self._profile)
                return
            except DeviceError:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(_DEVICE_POLL_S)

    def _wait(self, ref: ray.ObjectRef, *, what: str) -> Any:
        """The result of ``ref``; while it is pending, check every few seconds that the device still exists:
        Ray keeps a request for an actor whose node is gone waiting (restarting it) until a node with the
        device returns, which without this check would look like a long queue until ``timeout_s``."""
        deadline = time.monotonic() + self._timeout_s
        gone_since: float | None = None
        while True:
            ready, _ = ray.wait([ref], timeout=max(0.0, min(_DEVICE_POLL_S, deadline - time.monotonic())))
            if ready:
                return self._get(ref, what=what)
            now = time.monotonic()
            if self._device_present():
                gone_since = None
            else:
                gone_since = now if gone_since is None else gone_since
                if now - gone_since >= self._device_wait_s or now >= deadline:
                    raise self._device_gone(what)
            if now >= deadline:
                raise DeviceError(
                    f"{what} on device {self._profile.name!r} took longer than {self._timeout_s:g} s. HINT: the "
                    f"device may be busy with a queue of requests (raise timeout_s), or its node is overloaded.")

    def _get(self, ref: ray.ObjectRef, *, what: str) -> Any:
        name = self._profile.name
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, HwnasError):
                raise exc.cause from None  # our own clear message; Ray's wrapper adds only a traceback
            raise DeviceError(f"{what} on device {name!r} failed: {exc}") from exc
