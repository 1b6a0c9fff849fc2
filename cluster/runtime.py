"""The Ray connection: an embedded local Ray by default, an existing cluster with an address.

Devices are Ray custom resources. The embedded local node advertises ``device:cpu`` (the machine's
own CPU); in a cluster, each node that holds a device advertises ``device:NAME`` when it joins, so
the latency actor of that device is placed on it by Ray's scheduler, not by hwnas.
"""
from __future__ import annotations

import logging
import socket
from typing import Sequence

import ray

from core.errors import ConfigError, DeviceError
from core.reaper import start_reaper
from core.validation import check_int, invalid

from .devices import LOCAL_DEVICE, DeviceProfile, is_device_name

__all__ = ["connect", "require_device", "device_resource"]

_log = logging.getLogger(__name__)

def device_resource(device_name: str) -> str:
    """The Ray custom resource advertised by a node carrying ``device_name``."""
    return f"device:{device_name}"


def connect(
    address: str | None,
    *,
    num_cpus: int | None = None,
    devices: Sequence[str] = (LOCAL_DEVICE,),
) -> None:
    """Start an embedded Ray or join an existing cluster; a no-op if Ray is already initialised.

    Args:
        address: ``None`` starts a local Ray in this process; otherwise a Ray address
            (``"auto"``, ``"HOST:PORT"`` or ``"ray://HOST:PORT"``) to join.
        num_cpus: CPUs of the local Ray (default: all). Only for a local Ray.
        devices: Devices the local node advertises as ``device:NAME`` resources. Only for a local
            Ray: cluster nodes declare their devices themselves when they join.

    Raises:
        ConfigError: An argument does not apply to the chosen mode, or the cluster is unreachable.
    """
    if ray.is_initialized():
        # Tests, notebooks and Tune workers may have connected already; joining twice is an error
        # in Ray, and a second, different cluster in one process is never what the caller means.
        _log.debug("Ray is already initialised; connect(%r) is a no-op", address)
        return
    _quiet_ray_output()
    if address is None:
        _start_local(num_cpus=num_cpus, devices=devices)
    else:
        _join(address, num_cpus=num_cpus, devices=devices)


def _start_local(*, num_cpus: int | None, devices: Sequence[str]) -> None:
    if num_cpus is not None:
        num_cpus = check_int("num_cpus", num_cpus, minimum=1, hint="omit it (None) to use all CPUs")
    names = list(devices)
    for i, name in enumerate(names):
        if not is_device_name(name):
            raise invalid(f"devices[{i}]", "must be a device name (letters, digits, '.', '_', '-')", name,
                          "e.g. devices=('cpu',)")
    start_reaper()  # before Ray starts: a kill during its start-up must not leave its processes behind
    ray.init(
        # "local": always a new embedded Ray, never a cluster that `ray start` happens to run here
        # (joining one is what --address is for).
        address="local",
        num_cpus=num_cpus,
        # One unit per device: the latency actor asks for a sliver of it, so it is placed here.
        resources={device_resource(name): 1.0 for name in names},
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=True,
        logging_level=logging.WARNING,
    )


def _join(address: str, *, num_cpus: int | None, devices: Sequence[str]) -> None:
    if not isinstance(address, str) or not address.strip():
        raise invalid("address", "must be a Ray address such as 'auto' or 'HOST:6379'", address,
                      "omit it (None) to start a local Ray")
    if num_cpus is not None:
        raise invalid("num_cpus", f"must be None when joining address={address!r} (it sizes a local Ray only)",
                      num_cpus, "a cluster's CPUs are set when its nodes start; drop num_cpus")
    if tuple(devices) != (LOCAL_DEVICE,):
        raise invalid("devices", f"must be left at {(LOCAL_DEVICE,)!r} when joining address={address!r} (it sets a "
                      f"local Ray's devices only)", tuple(devices),
                      f"device nodes join with `ray start --address={address} --resources='{{\"device:NAME\": 1}}'`")
    _check_reachable(address)
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=True, logging_level=logging.WARNING)
    except ConnectionError as exc:
        raise ConfigError(
            f"cannot join the Ray cluster at address={address!r}: {exc}. HINT: check that the head "
            f"node runs (`ray status --address={address}`) and that RAY_AUTH_MODE / the auth token "
            f"match the cluster's."
        ) from exc


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds when a ``HOST:PORT`` (or ``ray://HOST:PORT``) head does not answer.

    ``ray.init`` retries an unreachable GCS for minutes before it gives up; one TCP connect tells the
    user at once. ``auto`` (resolved by Ray from this machine's files) is left to Ray.
    """
    target = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot join the Ray cluster at address={address!r}: nothing answers at {host}:{port} within "
            f"{timeout_s:g} s ({exc.strerror or exc}). HINT: start the head with `ray start --head --port={port}` "
            f"or check the host, port and firewall."
        ) from None


def _quiet_ray_output() -> None:
    """Keep Ray's start-up chatter out of the user's terminal, keeping warnings and errors."""
    auth_logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _DropAuthEnabledNotice) for f in auth_logger.filters):
        auth_logger.addFilter(_DropAuthEnabledNotice())


class _DropAuthEnabledNotice(logging.Filter):
    """Drops Ray's notice that token auth is on (the safe default) for every local start.

    Its counterpart, that auth is *disabled*, is a real warning and still goes through.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled")


def require_device(device: DeviceProfile | str) -> None:
    """Check that some node of the connected Ray cluster carries the device.

    Args:
        device: A profile or a device name.

    Raises:
        DeviceError: Ray is not initialised, or no alive node advertises ``device:NAME``.
    """
    name = device.name if isinstance(device, DeviceProfile) else device
    resource = device_resource(name)
    if not ray.is_initialized():
        raise DeviceError(
            f"cannot look for {resource}: Ray is not initialised. "
            f"HINT: call cluster.connect(address) first."
        )
    available = sorted(r for r in ray.cluster_resources() if r.startswith("device:"))
    if resource not in available:
        raise DeviceError(
            f"no node of this Ray cluster carries the resource {resource} (devices present: "
            f"{', '.join(available) or 'none'}). HINT: start a node with "
            f"`ray start --address=... --resources='{{\"{resource}\": 1}}'`."
        )
