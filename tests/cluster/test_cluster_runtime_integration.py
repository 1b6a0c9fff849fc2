"""connect() starting a real embedded Ray."""
from __future__ import annotations

from typing import Iterator

import pytest
import ray

from cluster import connect, require_device
from core.errors import DeviceError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def fresh_ray() -> Iterator[None]:
    if ray.is_initialized():
        ray.shutdown()
    try:
        yield
    finally:
        ray.shutdown()


def test_local_ray_advertises_its_devices_and_connect_is_idempotent(fresh_ray) -> None:
    connect(None, num_cpus=1, devices=("cpu", "usb-npu"))
    resources = ray.cluster_resources()
    assert resources["device:cpu"] == 1 and resources["device:usb-npu"] == 1
    assert resources["CPU"] == 1
    connect(None, num_cpus=2)  # already connected: a no-op, not a second cluster
    assert ray.cluster_resources()["CPU"] == 1
    require_device("cpu")
    require_device("usb-npu")
    with pytest.raises(DeviceError, match=r"device:pixel4.*HINT: start a node"):
        require_device("pixel4")
