"""Calibration helpers and GPU device profiles, without Ray: sampling, hold-out, model files, providers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from cluster import (DeviceProfile, LatencyService, LinearCostModel, MeasureOptions, get_device, provider_options,
                     require_provider, runtime_string)
from cluster.calibration import (
    MIN_SAMPLES,
    CalibrationResult,
    ServiceMeasurer,
    check_samples,
    holdout_size,
    load_cost_model,
    reference_encoding,
    sample_architectures,
    save_cost_model,
    space_hint,
    structure_digest,
)
from spaces import ConfigError, DeviceError, MogaSpace, export_onnx, get_space


@pytest.fixture(scope="module")
def space() -> MogaSpace:
    return MogaSpace(**MogaSpace.small_settings())


@pytest.fixture(scope="module")
def model_file(space: MogaSpace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    encs = sample_architectures(space, 12, seed=0, purpose="fit")
    model = LinearCostModel().fit(space, encs, [space.count(e)["madds"] / 1e6 for e in encs])
    path = tmp_path_factory.mktemp("model") / "linear.json"
    save_cost_model(path, CalibrationResult(model=model, info={"device": "cpu", "fidelity": {"r2": None}}))
    return path


def test_sampling_is_distinct_deterministic_and_split_by_purpose(space: MogaSpace) -> None:
    fit = sample_architectures(space, 20, seed=3, purpose="fit")
    assert len(set(fit)) == 20
    assert fit == sample_architectures(space, 20, seed=3, purpose="fit")
    assert fit != sample_architectures(space, 20, seed=3, purpose="eval")


def test_sampling_a_too_small_space_is_bounded() -> None:
    class _OneArchitecture:
        name = "one"

        def sample(self, rng: np.random.Generator) -> tuple[int, ...]:
            return (0,)

    with pytest.raises(ConfigError, match="could draw only 1 distinct architectures"):
        sample_architectures(_OneArchitecture(), 2, seed=0, purpose="fit")  # type: ignore[arg-type]


@pytest.mark.parametrize("name, settings", [("edgetpu", {}), ("moga", {}),
                                            ("mobiledet", {"target": "cpu", "task": "classification"})])
def test_the_reference_is_a_typical_architecture_not_the_default(name: str, settings: dict) -> None:
    space = get_space(name, **settings, input_size=128)
    reference = reference_encoding(space)
    assert reference == reference_encoding(get_space(name, **settings, input_size=128))  # any process, any seed
    assert space.validate(reference) == reference
    madds = sorted(space.count(e)["madds"] for e in sample_architectures(space, 60, seed=7, purpose="fit"))
    low, high = madds[len(madds) // 10], madds[-len(madds) // 10]
    assert low <= space.count(reference)["madds"] <= high  # among the middle 80% of sampled architectures
    if name != "moga":  # these spaces' published architectures are far smaller than their typical one
        assert space.count(space.default_encoding())["madds"] < low


def test_paired_measurements_are_timed_against_the_typical_reference(space: MogaSpace, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import cluster.service

    monkeypatch.setattr(cluster.service, "FASTEST_GAP_S", 0.0)
    service = LatencyService(get_device("cpu"), str(tmp_path / "cache.jsonl"),
                             options=MeasureOptions(warmup=1, min_runs=5, max_runs=20, min_time_s=0.0, max_rounds=1))
    (reference_id, data, shape), reference_ms = ServiceMeasurer(service, paired=True).reference(space)
    assert reference_id == f"reference-{space.candidate_id(reference_encoding(space))}"
    assert shape == list(space.input_shape) and len(data) > 0 and reference_ms > 0
    (record,) = [json.loads(line) for line in (tmp_path / "cache.jsonl").read_text().splitlines()]
    assert record["candidate_id"] == reference_id and record["settings"]["fastest_of"] == 3  # the scale: fastest of 3
    assert record["median_ms"] == reference_ms


def test_holdout_is_a_quarter_and_at_least_two() -> None:
    assert [holdout_size(n) for n in (4, 8, 9, 40, 100)] == [2, 2, 3, 10, 25]
    assert check_samples(MIN_SAMPLES, flag="--samples") == MIN_SAMPLES
    for bad in (3, 0, True, "8"):
        with pytest.raises(ConfigError, match=r"--samples: must be an integer >= 4, got .*HINT: .*2 of them are held"):
            check_samples(bad, flag="--samples")
    with pytest.raises(ConfigError, match=r"--samples: must be an integer >= 2, got 1\. HINT: e\.g\. --samples 40"):
        check_samples(1, flag="--samples", minimum=2)


def test_structure_digest_ignores_weight_values() -> None:
    torch.manual_seed(0)
    a = export_onnx(torch.nn.Conv2d(3, 8, 3), (1, 3, 16, 16))
    b = export_onnx(torch.nn.Conv2d(3, 8, 3), (1, 3, 16, 16))
    c = export_onnx(torch.nn.Conv2d(3, 8, 5), (1, 3, 16, 16))
    assert a != b and structure_digest(a) == structure_digest(b) != structure_digest(c)


def test_saved_model_loads_with_its_calibration_record(space: MogaSpace, model_file: Path) -> None:
    loaded = load_cost_model(model_file, kind="linear", space=space)
    assert loaded.info["device"] == "cpu"
    enc = space.default_encoding()
    assert loaded.model.predict(enc) == load_cost_model(model_file).model.predict(enc)


def test_bad_model_files_are_refused_clearly(space: MogaSpace, model_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file. HINT: write one with `hwnas costmodel fit"):
        load_cost_model(tmp_path / "absent.json")
    (tmp_path / "torn.json").write_text('{"kind": "lin')
    with pytest.raises(ConfigError, match="is not readable JSON"):
        load_cost_model(tmp_path / "torn.json")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ConfigError, match="schema_version"):
        load_cost_model(tmp_path / "other.json")
    damaged = json.loads(model_file.read_text())
    del damaged["state"]["weights_us"]
    (tmp_path / "damaged.json").write_text(json.dumps(damaged))
    with pytest.raises(ConfigError, match="damaged cost model"):
        load_cost_model(tmp_path / "damaged.json")
    with pytest.raises(ConfigError, match="holds a 'linear' cost model, not 'lut'"):
        load_cost_model(model_file, kind="lut")
    other = get_space("moga", **{**space.settings, "input_size": 64})
    with pytest.raises(ConfigError, match="--input-size 64") as info:
        load_cost_model(model_file, space=other)
    assert "was fitted for space" in str(info.value)


def test_space_hint_reproduces_the_identity(space: MogaSpace) -> None:
    hint = space_hint(space.identity)
    assert hint.startswith("--space moga --input-size 32 ") and "--set width_mult=0.35" in hint


# ------------------------------------------------------------------------------ GPU device profiles
def test_gpu_devices_are_registered_with_their_providers() -> None:
    assert get_device("cuda").provider == "CUDAExecutionProvider"
    trt16 = get_device("tensorrt-fp16")
    assert trt16.provider == "TensorrtExecutionProvider" and trt16.precision == "fp16"
    assert provider_options(trt16) == {"trt_fp16_enable": "True"}
    assert provider_options(get_device("tensorrt")) == {"trt_fp16_enable": "False"}
    assert provider_options(get_device("cpu")) == {}


def test_fp16_on_the_cuda_provider_is_refused() -> None:
    with pytest.raises(ConfigError, match="TensorrtExecutionProvider"):
        DeviceProfile(name="gpu16", provider="CUDAExecutionProvider", precision="fp16")


def test_precision_other_than_fp32_is_part_of_the_runtime_key() -> None:
    assert runtime_string(get_device("cpu")).endswith("-CPUExecutionProvider")
    assert runtime_string(get_device("tensorrt-fp16")).endswith("-TensorrtExecutionProvider-fp16")


@pytest.mark.parametrize("provider", ["CUDAExecutionProvider", "TensorrtExecutionProvider"])
def test_missing_gpu_provider_names_the_fix(provider: str) -> None:
    if provider in ort.get_available_providers():
        pytest.skip(f"this onnxruntime has {provider}")
    with pytest.raises(DeviceError, match=f"lacks the execution provider '{provider}'.*onnxruntime-gpu"):
        require_provider(provider)
