"""Device profiles: defaults, validation naming the field, the registry."""
from __future__ import annotations

import pytest

from cluster import LOCAL_DEVICE, DeviceProfile, device_from_dict, device_names, get_device, register_device
from core.errors import ConfigError, HwnasError, UnknownNameError


def test_local_cpu_profile_is_built_in() -> None:
    cpu = get_device(LOCAL_DEVICE)
    assert cpu == DeviceProfile(name="cpu", runtime="onnxruntime", provider="CPUExecutionProvider",
                                threads=1, batch=1, precision="fp32")
    assert cpu.resource == "device:cpu"
    assert "cpu" in device_names()


def test_unknown_device_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match=r"'pixel9'.*cpu"):
        get_device("pixel9")


def test_from_dict_round_trips() -> None:
    profile = device_from_dict({"name": "pixel4-edgetpu", "threads": 4, "batch": 8, "precision": "int8"})
    assert profile.resource == "device:pixel4-edgetpu"
    assert device_from_dict(profile.to_dict()) == profile


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "has space"}, "name"),
        ({"name": "a:b"}, "name"),
        ({"name": "x", "threads": 0}, "threads"),
        ({"name": "x", "threads": True}, "threads"),
        ({"name": "x", "batch": 1.5}, "batch"),
        ({"name": "x", "precision": "fp8"}, "precision"),
        ({"name": "x", "runtime": "tflite"}, "runtime"),
        ({"name": "x", "provider": "CUDA"}, "provider"),
        ({"name": "x", "thread": 2}, "'thread'"),
    ],
)
def test_from_dict_rejects_and_names_the_field(data: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        device_from_dict(data)


def test_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        device_from_dict(["cpu"])  # type: ignore[arg-type]


def test_register_is_idempotent_for_equal_profiles_and_refuses_conflicts() -> None:
    profile = DeviceProfile(name="test-registry-device", threads=2)
    assert register_device(profile) is profile
    register_device(DeviceProfile(name="test-registry-device", threads=2))  # equal: fine
    with pytest.raises(HwnasError, match="already registered"):
        register_device(DeviceProfile(name="test-registry-device", threads=4))
    assert get_device("test-registry-device") is profile
