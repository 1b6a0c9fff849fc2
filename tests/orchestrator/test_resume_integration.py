"""Kill a real `hwnas search` with SIGKILL at several moments, resume it, and compare with an
uninterrupted run of the same seed: same candidates, same scores, same Pareto front, and exactly one
finished MLflow run per candidate."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli_helpers import assert_gone, assert_mlflow_exact, assert_same_result, run_cli, run_until, tiny_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_killed_search_resumes_to_the_uninterrupted_result(tmp_path: Path, reference_run: Path) -> None:
    storage = str(tmp_path / "runs")
    cfg = tiny_config(tmp_path, name="killed")
    exp_dir = tmp_path / "runs" / "killed"
    _, below = run_until(["search", str(cfg), "--storage", storage], tmp_path, r"\[train_supernet\] step 20/40")
    assert_gone(below, within=10)  # the local Ray of a killed driver does not linger
    out, _ = run_until(["resume", str(exp_dir)], tmp_path, r"\[search\] gen 0 candidates 2/8")
    # The trainer actor may finish the chunk in flight (steps 21-30) before Ray reaps it after the driver's
    # death; either way training continues from a checkpoint, not from scratch.
    assert re.search(r"resuming from checkpoint at step (20|30)/40", out), out[-2000:]
    out, _ = run_until(["resume", str(exp_dir)], tmp_path, r"\[search\] gen 1 candidates 6/8")
    assert "[train_supernet] done earlier" in out
    status = run_cli("status", str(exp_dir), "--json", cwd=tmp_path)
    assert status.returncode == 0 and json.loads(status.stdout)["stage"] == "search"
    final = run_cli("resume", str(exp_dir), cwd=tmp_path)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    assert "(cached)" in final.stdout  # scored candidates were looked up, not evaluated again

    assert_same_result(exp_dir, reference_run)
    assert json.loads((exp_dir / "summary.json").read_text())["mlflow_synced"] is True
    assert_mlflow_exact(tmp_path / "mlflow.db", exp_dir, "killed")
