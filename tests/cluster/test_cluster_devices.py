"""Device profiles: defaults, validation naming the field, the registry."""
from __future__ import annotations

import pytest
import torch

from cluster import LOCAL_DEVICE, DeviceProfile, device_from_dict, device_names, get_device, register_device
from core.errors import ConfigError, DeviceError, HwnasError, UnknownNameError


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


_NAME_RULE = r"must be 1-64 characters of letters, digits, '\.', '_' or '-', starting with a letter or digit"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, r"device\.name: is required, got \{\}\. HINT: e\.g\. name: pixel4-edgetpu"),
        ({"name": ""}, rf"device\.name: {_NAME_RULE}, got ''\. HINT: e\.g\. 'pixel4-edgetpu'"),
        ({"name": "has space"}, rf"device\.name: {_NAME_RULE}, got 'has space'"),
        ({"name": "a:b"}, rf"device\.name: {_NAME_RULE}, got 'a:b'"),
        ({"name": "x", "threads": 0}, r"device\.threads: must be an integer >= 1, got 0\. HINT: use 1 for a single"),
        ({"name": "x", "threads": True}, r"device\.threads: must be an integer >= 1, got True"),
        ({"name": "x", "batch": 1.5}, r"device\.batch: must be an integer >= 1, got 1\.5"),
        ({"name": "x", "precision": "fp8"}, r"device\.precision: must be one of fp32, fp16, int8, got 'fp8'\. HINT: "
                                            r"'fp32' unless the exported model is quantised"),
        ({"name": "x", "runtime": "tflite"}, r"device\.runtime: must be one of onnxruntime, torch, got 'tflite'\. HINT: "
                                             r"measure other runtimes by exporting to ONNX"),
        ({"name": "x", "provider": "CUDA"}, r"device\.provider: must name an ONNX Runtime execution provider .*, got "
                                            r"'CUDA'\. HINT: e\.g\. 'CPUExecutionProvider'"),
        ({"name": "x", "thread": 2}, r"device: must have only the fields name, runtime, provider, threads, batch, "
                                     r"precision, got .*HINT: check the spelling of 'thread'"),
        (["cpu"], r"device: must be a mapping with at least 'name', got \['cpu'\]\. HINT:"),
    ],
)
def test_from_dict_rejects_and_names_the_field(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{message}"):
        device_from_dict(data)


def test_numpy_integers_are_stored_as_ints() -> None:
    np = pytest.importorskip("numpy")
    profile = DeviceProfile(name="np-threads", threads=np.int64(2))
    assert type(profile.threads) is int and profile.to_dict()["threads"] == 2


def test_register_is_idempotent_for_equal_profiles_and_refuses_conflicts() -> None:
    profile = DeviceProfile(name="test-registry-device", threads=2)
    assert register_device(profile) is profile
    register_device(DeviceProfile(name="test-registry-device", threads=2))  # equal: fine
    with pytest.raises(HwnasError, match="already registered"):
        register_device(DeviceProfile(name="test-registry-device", threads=4))
    assert get_device("test-registry-device") is profile


def test_torch_runtime_profiles() -> None:
    """``runtime: torch`` runs the exported model in PyTorch on ``provider`` (a torch device type)."""
    from cluster.measure import require_runtime, runtime_string

    profile = get_device("cuda-torch")
    assert (profile.runtime, profile.provider, profile.precision) == ("torch", "cuda", "fp32")
    assert device_from_dict({"name": "gpu16", "runtime": "torch", "provider": "cuda", "precision": "fp16"})
    for data, message in (
        ({"name": "x", "runtime": "torch", "provider": "CPUExecutionProvider"}, "must be one of cuda, cpu"),
        ({"name": "x", "runtime": "torch", "provider": "cpu", "precision": "fp16"}, "can be 'fp16' only on provider"),
        ({"name": "x", "runtime": "torch", "provider": "cuda", "precision": "int8"}, "must be 'fp32' or 'fp16'"),
    ):
        with pytest.raises(ConfigError, match=message):
            device_from_dict(data)
    cpu_torch = device_from_dict({"name": "cpu-torch", "runtime": "torch", "provider": "cpu"})
    require_runtime(cpu_torch)
    assert runtime_string(cpu_torch).startswith("torch-") and runtime_string(cpu_torch).endswith("-cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA device.*HINT"):
            require_runtime(profile)
