"""`hwnas search` with latency predicted by a cost model: a fitted file, or the calibration stage."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import run_cli, tiny_config
from cluster.calibration import load_cost_model
from orchestrator.journal import Journal
from test_cost_config import fitted_model_file

SMALL = {"search__settings": {"population_size": 4, "generations": 1}}


def _candidates(directory: Path) -> list[dict]:
    return list(Journal(directory / "journal.jsonl").replay().candidates.values())


@pytest.mark.integration
def test_search_predicts_latency_with_a_fitted_model_file(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, name="withmodel", **SMALL)
    model_path = fitted_model_file(config, tmp_path / "linear.json")
    proc = run_cli("search", str(config), "--storage", str(tmp_path / "runs"), "--set", "cost.kind=linear",
                   "--set", f"cost.model={model_path}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "[calibrate] linear cost model in" in proc.stdout
    exp = tmp_path / "runs" / "withmodel"
    copy = load_cost_model(exp / "cost_model.json", kind="linear")
    records = _candidates(exp)
    assert len(records) == 4
    for rec in records:
        assert rec["latency_ms"] == pytest.approx(copy.model.predict(copy.model.space.parse(rec["encoding"])))
    assert not (exp / "latency_cache.jsonl").exists()  # predicted, never measured


@pytest.mark.integration
def test_search_with_a_calibration_stage_then_resume_skips_it(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, name="calibrated", **SMALL)
    proc = run_cli("search", str(config), "--storage", str(tmp_path / "runs"), "--set", "cost.kind=linear",
                   "--set", "cost.calibration_samples=6", "--set", "cost.min_runs=5", "--set", "cost.warmup=2",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "[calibrate] fitting a linear cost model from 6 architectures measured on cpu" in proc.stdout
    assert "held-out r2" in proc.stdout
    exp = tmp_path / "runs" / "calibrated"
    saved = json.loads((exp / "cost_model.json").read_text())
    assert saved["kind"] == "linear" and saved["calibration"]["samples"] == 6
    records = [json.loads(line) for line in (exp / "latency_cache.jsonl").read_text().splitlines()]
    paired = [r for r in records if "reference" in r["settings"]]  # the 6, each timed against the reference ...
    assert all(r["reference_id"] == paired[0]["reference_id"] > "" for r in paired)
    # ... the 2 held-out ones in 3 passes (a record each), the 4 fitted once
    assert sorted(r["settings"].get("repeat", 0) for r in paired) == [0] * 6 + [1, 1, 2, 2]
    (reference,) = [r for r in records if "reference" not in r["settings"]]  # ... whose own latency sets the scale
    assert reference["candidate_id"] == paired[0]["reference_id"]
    completed = Journal(exp / "journal.jsonl").replay().completed["calibrate"]
    assert completed["source"] == "calibration" and completed["fidelity"]["n"] == 2
    assert completed["fidelity"]["passes"] == 3 and "each the mean of 3 passes" in proc.stdout

    resumed = run_cli("resume", str(exp), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "[calibrate] done earlier" in resumed.stdout and "fitting" not in resumed.stdout
    status = json.loads(run_cli("status", str(exp), "--json", cwd=tmp_path).stdout)
    assert status["stages"]["calibrate"] == "completed" and status["state"] == "completed"


def test_search_without_a_model_or_calibration_writes_nothing(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    proc = run_cli("search", str(config), "--storage", str(tmp_path / "runs"), "--set", "cost.kind=lut", cwd=tmp_path)
    assert proc.returncode == 2 and "'cost.kind': lut needs cost.model" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "runs").exists()
