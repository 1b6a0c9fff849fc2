"""Config rules of cost.kind linear / lut: a fitted model file or a calibration stage, checked at load."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli_helpers import tiny_config
from cluster import LinearCostModel
from cluster.calibration import CalibrationResult, sample_architectures, save_cost_model
from orchestrator.config import load_config
from orchestrator.pipeline import stages_for
from spaces import ConfigError, get_space


def fitted_model_file(config: Path, out: Path, *, kind_input_size: int | None = None) -> Path:
    """A linear model of the config's space, fitted to MAdds-derived latencies (fast, deterministic)."""
    cfg = load_config(config, ["cost.kind=madds"])
    space = cfg.build_space()
    if kind_input_size is not None:
        space = get_space(space.name, **{**space.settings, "input_size": kind_input_size})
    encs = sample_architectures(space, 16, seed=0, purpose="fit")
    model = LinearCostModel().fit(space, encs, [0.05 + space.count(e)["madds"] / 1e7 for e in encs])
    save_cost_model(out, CalibrationResult(model=model, info={"device": "cpu", "fidelity": {"r2": 1.0, "n": 4}}))
    return out


def test_a_model_file_is_checked_and_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_config(tmp_path)
    fitted_model_file(config, tmp_path / "linear.json")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # a relative cost.model is relative to the config file, not cwd
    cfg = load_config(config, ["cost.kind=linear", "cost.model=linear.json"])
    assert cfg.cost.model == str((tmp_path / "linear.json").resolve())
    assert cfg.cost.uses_model and not cfg.cost.measures
    assert stages_for(cfg)[0] == "calibrate"
    assert "calibrate" not in stages_for(load_config(config))


def test_calibration_samples_auto_lets_held_out_fidelity_choose(tmp_path: Path) -> None:
    cfg = load_config(tiny_config(tmp_path), ["cost.kind=kernels", "cost.calibration_samples=auto"])
    assert cfg.cost.calibration_samples == "auto" and stages_for(cfg)[0] == "calibrate"


@pytest.mark.parametrize(
    "overrides, pattern",
    [
        (["cost.kind=linear"], "'cost.kind': linear needs cost.model"),
        (["cost.kind=lut", "cost.calibration_samples=3"], "'cost.calibration_samples': must be >= 4"),
        (["cost.kind=kernels", "cost.calibration_samples=many"], "must be a whole number in [0, 100000] or auto"),
        (["cost.kind=kernels", "cost.calibration_samples=2.5"], "must be a whole number in [0, 100000] or auto"),
        (["cost.kind=madds", "cost.calibration_samples=auto"], "applies only to cost.kind kernels, linear or lut"),
        (["cost.kind=madds", "cost.calibration_samples=8"], "applies only to cost.kind kernels, linear or lut"),
        (["cost.kind=measured", "cost.model=x.json"], "'cost.model': applies only to cost.kind kernels, linear or lut"),
        (["cost.kind=linear", "cost.model=x.json", "cost.calibration_samples=8"], "cannot be combined"),
        (["cost.kind=linear", "cost.model=absent.json"], "no such file"),
        (["cost.kind=cubic"], "'cost.kind': must be one of measured, kernels, linear, lut, madds"),
        (["cost.device=phone"], "'cost.device': must be one of cpu"),
    ],
)
def test_bad_cost_fields(tmp_path: Path, overrides: list[str], pattern: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(pattern)):
        load_config(tiny_config(tmp_path), overrides)


def test_a_model_of_another_kind_or_space_is_refused(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    good = fitted_model_file(config, tmp_path / "linear.json")
    with pytest.raises(ConfigError, match="holds a 'linear' cost model, not 'lut'"):
        load_config(config, ["cost.kind=lut", f"cost.model={good}"])
    other = fitted_model_file(config, tmp_path / "other.json", kind_input_size=64)
    with pytest.raises(ConfigError, match=r"was fitted for space .* --input-size 32 .*--kind linear"):
        load_config(config, ["cost.kind=linear", f"cost.model={other}"])


def test_the_shipped_gpu_cost_model_serves_a_cpu_search() -> None:
    """benchmarks/data's H200 model (fitted on a lent GPU by benchmarks/gpu_check.py) is a valid cost.model
    for the shipped example's space, and predicts latencies in the range it was measured in."""
    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "examples" / "gpu_costed_search.yaml")
    from cluster.calibration import load_cost_model

    loaded = load_cost_model(cfg.cost.model, kind="linear", space=cfg.build_space())
    assert loaded.info["device"] == "cuda-torch" and loaded.info["samples"] == 180
    space = cfg.build_space()
    predicted = [loaded.model.predict(e) for e in sample_architectures(space, 20, seed=5, purpose="eval")]
    assert 0.3 < min(predicted) and max(predicted) < 1.5  # H200 batch-1 latencies at 128 px: 0.51-0.82 ms
    assert load_config(root / "examples" / "cpu_measured_search.yaml").cost.kind == "measured"
