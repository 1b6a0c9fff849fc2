"""``hwnas latency measure`` and ``hwnas costmodel fit|eval`` run as a user runs them (real Ray, real ORT).

Tiny settings keep each call to seconds: MoGA at width 0.25 on 32x32 inputs, light measurement effort.
Bad input must fail before Ray starts: one line on stderr, exit 2, nothing written.
"""
from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort
import pytest

from cli_helpers import run_cli

TINY = ["--input-size", "32", "--set", "width_mult=0.25", "--set", "stem_stride=1"]
LIGHT = ["--warmup", "2", "--min-runs", "5", "--min-time", "0.01"]
ARCH = "8-10-6-7-1-7-6-10-5-10-6-6-9-9"


def _clean_failure(proc, pattern: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("hwnas: error: "), proc.stderr
    assert pattern in lines[0], lines[0]


@pytest.mark.integration
def test_measure_prints_the_statistics_and_caches(tmp_path: Path) -> None:
    cache = tmp_path / "latency.jsonl"
    args = ["latency", "measure", "--space", "moga", "--arch", ARCH, *TINY, *LIGHT, "--cache", str(cache), "--json"]
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    stats = json.loads(first.stdout)
    assert {"median_ms", "min_ms", "p90_ms", "cv", "runs", "device"} <= set(stats)
    assert stats["device"] == "cpu" and stats["input_shape"] == [1, 3, 32, 32] and not stats["cached"]
    assert 0 < stats["min_ms"] <= stats["median_ms"] <= stats["p90_ms"]
    second = json.loads(run_cli(*args, cwd=tmp_path).stdout)
    assert second["cached"] and second["median_ms"] == stats["median_ms"]
    assert len(cache.read_text().splitlines()) == 1


@pytest.mark.integration
def test_measure_a_preset_in_text_uses_the_default_cache(tmp_path: Path) -> None:
    proc = run_cli("latency", "measure", "--preset", "moga-c", "--input-size", "32", "--set", "width_mult=0.25",
                   *LIGHT, cwd=tmp_path, env={"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("moga 2-0-2-0") and "median" in proc.stdout and "on cpu" in proc.stdout
    assert (tmp_path / "xdg" / "hwnas" / "latency_cache.jsonl").is_file()


@pytest.mark.integration
def test_fit_then_eval_a_linear_model(tmp_path: Path) -> None:
    cache, out = tmp_path / "latency.jsonl", tmp_path / "models" / "linear.json"
    fit = run_cli("costmodel", "fit", "--space", "moga", "--kind", "linear", "--samples", "8", "--out", str(out),
                  "--seed", "1", *TINY, *LIGHT, "--cache", str(cache), cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr
    assert "held-out fidelity: r2" in fit.stdout and f"saved to {out}" in fit.stdout
    assert "[costmodel] fitting linear: measured 6/6" in fit.stderr  # the fit set once,
    assert "[costmodel] held-out set, pass 3 of 3: measured 2/2" in fit.stderr  # the held-out ones in 3 passes
    assert "measured latency: the mean of 3 passes" in fit.stdout
    saved = json.loads(out.read_text())
    assert saved["kind"] == "linear" and saved["calibration"]["holdout"] == 2
    assert saved["calibration"]["fit_samples"] == 6 and saved["calibration"]["device"] == "cpu"
    assert saved["space"]["settings"]["input_size"] == 32

    ev = run_cli("costmodel", "eval", "--model", str(out), "--samples", "5", "--json", *LIGHT,
                 "--cache", str(cache), cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr
    report = json.loads(ev.stdout)
    assert {"r2", "rmse_ms", "spearman", "kendall", "n"} <= set(report) and report["n"] == 5
    assert report["rmse_ms"] >= 0 and report["device"] == "cpu"
    assert report["passes"] == 3 and report["repeatability"]["n"] == 5  # how well two single passes agree
    records = [json.loads(line) for line in cache.read_text().splitlines()]
    repeats = [r["settings"].get("repeat", 0) for r in records if r.get("reference_id")]
    assert set(repeats) == {0, 1, 2} and repeats.count(1) == repeats.count(2) >= 5  # each pass a record of its own

    again = run_cli("costmodel", "fit", "--space", "moga", "--kind", "linear", "--samples", "8", "--out", str(out),
                    "--seed", "1", *TINY, *LIGHT, "--cache", str(cache), cwd=tmp_path)
    _clean_failure(again, "exists; nothing was changed. HINT: pass --force")
    assert json.loads(out.read_text()) == saved


@pytest.mark.integration
def test_fit_a_lookup_table_with_json_output(tmp_path: Path) -> None:
    out = tmp_path / "lut.json"
    proc = run_cli("costmodel", "fit", "--space", "moga", "--kind", "lut", "--samples", "4", "--out", str(out),
                   *TINY, "--warmup", "1", "--min-runs", "3", "--min-time", "0", "--cache", str(tmp_path / "c.jsonl"),
                   "--json", cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["kind"] == "lut" and summary["fidelity"]["n"] == 2 and summary["out"] == str(out)
    table = json.loads(out.read_text())["state"]["table_ms"]
    assert len(table) == 14 and all(len(row) == 12 for row in table)


# ------------------------------------------------------------------------------------ bad input
def _model(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "model.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["latency", "measure", "--preset", "moga-z"], "unknown preset 'moga-z'"),
        (["latency", "measure", "--space", "nope", "--arch", "1-2"], "unknown search space 'nope'"),
        (["latency", "measure", "--space", "moga", "--arch", "1-2-3"], "encoding has 3 choices but the space has 14"),
        (["latency", "measure", "--space", "moga", "--arch", "x-y"], "cannot read architecture 'x-y'"),
        (["latency", "measure", "--space", "moga"], "needs --arch ENCODING"),
        (["latency", "measure", "--preset", "moga-a", "--device", "phone"], "unknown device 'phone'"),
        (["latency", "measure", "--preset", "moga-a", "--set", "widht_mult=1"], "has no setting 'widht_mult'"),
        (["costmodel", "fit", "--space", "nope", "--kind", "lut", "--samples", "8", "--out", "m.json"],
         "unknown search space 'nope'"),
        (["costmodel", "fit", "--space", "moga", "--kind", "linear", "--samples", "3", "--out", "m.json"],
         "--samples: must be an integer >= 4"),
        (["costmodel", "fit", "--space", "moga", "--kind", "linear", "--samples", "8", "--out", "m.json",
          "--device", "phone"], "unknown device 'phone'"),
        (["costmodel", "fit", "--space", "moga", "--kind", "linear", "--samples", "8", "--out", "m.json",
          "--input-size", "8"], "input_size"),
        (["costmodel", "eval", "--model", "absent.json", "--samples", "5"], "no such file"),
        (["costmodel", "eval", "--model", "model.json", "--samples", "1"], "--samples: must be an integer >= 2"),
        (["costmodel", "fit", "--space", "moga", "--kind", "linear", "--samples", "8", "--out", "m.json",
          "--score-passes", "0"], "--score-passes: must be an integer"),
        (["costmodel", "eval", "--model", "model.json", "--samples", "5", "--score-passes", "11"],
         "--score-passes: must be an integer"),
    ],
)
def test_bad_arguments_fail_before_anything_runs(tmp_path: Path, args: list[str], pattern: str) -> None:
    _model(tmp_path, "{}")
    proc = run_cli(*args, "--cache", str(tmp_path / "c.jsonl"), cwd=tmp_path)
    _clean_failure(proc, pattern)
    assert not (tmp_path / "c.jsonl").exists() and not (tmp_path / "m.json").exists()


@pytest.mark.parametrize(
    "text, pattern",
    [
        ('{"kind": "line', "is not readable JSON"),
        ('{"schema_version": 1, "kind": "linear", "space": {"space": "moga", "settings": {}}, "state": {}}',
         "damaged cost model"),
        ('[1, 2]', "schema_version"),
        ('{"schema_version": 1, "kind": "cubic"}', "unknown cost model 'cubic'"),
    ],
)
def test_eval_refuses_a_corrupt_model_file(tmp_path: Path, text: str, pattern: str) -> None:
    model = _model(tmp_path, text)
    proc = run_cli("costmodel", "eval", "--model", str(model), "--samples", "4", cwd=tmp_path)
    _clean_failure(proc, pattern)


def test_a_gpu_device_without_its_provider_is_one_clear_line(tmp_path: Path) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    proc = run_cli("latency", "measure", "--preset", "moga-a", "--device", "cuda", cwd=tmp_path)
    _clean_failure(proc, "lacks the execution provider 'CUDAExecutionProvider'")
    assert "onnxruntime-gpu" in proc.stderr


def test_help_lists_the_cost_commands(tmp_path: Path) -> None:
    proc = run_cli("--help", cwd=tmp_path)
    assert "latency" in proc.stdout and "costmodel" in proc.stdout
    proc = run_cli("costmodel", "fit", "--help", cwd=tmp_path)
    for flag in ("--space", "--kind", "--samples", "--out", "--force", "--device", "--input-size", "--seed", "--cache",
                 "--score-passes"):
        assert flag in proc.stdout
