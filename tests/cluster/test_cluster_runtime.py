"""connect / require_device argument checks that need no Ray session."""
from __future__ import annotations

import pytest
import ray

from cluster import connect, require_device
from core.errors import ConfigError, DeviceError


@pytest.fixture(autouse=True)
def _no_ray_session() -> None:
    if ray.is_initialized():  # connect() is a no-op on a live session; these tests need none
        ray.shutdown()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"address": "127.0.0.1:6379", "num_cpus": 2},
         r"num_cpus: must be None when joining address='127\.0\.0\.1:6379' .*, got 2\. HINT: .*drop num_cpus"),
        ({"address": "127.0.0.1:6379", "devices": ("cpu", "npu")},
         r"devices: must be left at \('cpu',\) .*, got \('cpu', 'npu'\)\. HINT: .*ray start --address"),
        ({"address": "  "}, r"address: must be a Ray address such as 'auto' or 'HOST:6379', got '  '\. HINT:"),
        ({"address": None, "num_cpus": 0}, r"num_cpus: must be an integer >= 1, got 0\. HINT: omit it"),
        ({"address": None, "devices": ("cpu", "device:cpu")},
         r"devices\[1\]: must be a device name .*, got 'device:cpu'"),
    ],
)
def test_connect_rejects_arguments_before_starting_anything(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{match}"):
        connect(**kwargs)
    assert not ray.is_initialized()


def test_require_device_without_ray_says_connect_first() -> None:
    with pytest.raises(DeviceError, match=r"connect"):
        require_device("cpu")


def test_unreachable_head_fails_in_seconds_with_a_hint() -> None:
    import socket
    import time

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(ConfigError, match=rf"nothing answers at 127\.0\.0\.1:{port}.*HINT: start the head"):
        connect(f"127.0.0.1:{port}")
    assert time.monotonic() - start < 10 and not ray.is_initialized()
