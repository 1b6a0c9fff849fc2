"""Kill a real `hwnas search` with SIGKILL at several moments, resume it, and compare with an
uninterrupted run of the same seed: same candidates, same scores, same Pareto front, and exactly one
finished MLflow run per candidate."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cli_helpers import cli_env, hwnas_cmd, run_cli, tiny_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _run_until(args: list[str], cwd: Path, pattern: str, timeout: float = 300) -> str:
    """Start the CLI, SIGKILL it as soon as a stdout line matches ``pattern``; return its output."""
    proc = subprocess.Popen(hwnas_cmd(*args), cwd=cwd, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            seen.append(line)
            if re.search(pattern, line):
                os.kill(proc.pid, signal.SIGKILL)  # the driver only, as a crash or OOM kill would
                break
            if time.monotonic() > deadline:
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(seen)
    assert proc.returncode == -signal.SIGKILL, f"never reached {pattern!r}:\n{out[-3000:]}"
    return out


def _candidates(exp_dir: Path) -> dict[str, dict]:
    out = {}
    for line in (exp_dir / "journal.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["event"] == "candidate":
            out.setdefault(rec["candidate_id"], rec)
    return out


def _scores(cands: dict[str, dict]) -> dict[str, tuple]:
    return {cid: (r["encoding"], r["generation"], r["accuracy"], r["latency_ms"], r["params"], r["madds"])
            for cid, r in cands.items()}


def test_killed_search_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    storage = str(tmp_path / "runs")
    ref_cfg = tiny_config(tmp_path, name="reference")
    ref = run_cli("search", str(ref_cfg), "--storage", storage, cwd=tmp_path)
    assert ref.returncode == 0, ref.stdout[-3000:] + ref.stderr[-3000:]

    cfg = tiny_config(tmp_path, name="killed")
    exp_dir = tmp_path / "runs" / "killed"
    _run_until(["search", str(cfg), "--storage", storage], tmp_path, r"\[train_supernet\] step 20/40")
    out = _run_until(["resume", str(exp_dir)], tmp_path, r"\[search\] gen 0 candidates 2/8")
    # The trainer actor may finish the chunk in flight (steps 21-30) before Ray reaps it after the driver's
    # death; either way training continues from a checkpoint, not from scratch.
    assert re.search(r"resuming from checkpoint at step (20|30)/40", out), out[-2000:]
    out = _run_until(["resume", str(exp_dir)], tmp_path, r"\[search\] gen 1 candidates 6/8")
    assert "[train_supernet] done earlier" in out
    status = run_cli("status", str(exp_dir), "--json", cwd=tmp_path)
    assert status.returncode == 0 and json.loads(status.stdout)["stage"] == "search"
    final = run_cli("resume", str(exp_dir), cwd=tmp_path)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    assert "(cached)" in final.stdout  # scored candidates were looked up, not evaluated again

    ref_dir = tmp_path / "runs" / "reference"
    assert _scores(_candidates(exp_dir)) == _scores(_candidates(ref_dir))
    ref_front = {r["candidate_id"] for r in json.loads((ref_dir / "summary.json").read_text())["pareto"]}
    summary = json.loads((exp_dir / "summary.json").read_text())
    assert {r["candidate_id"] for r in summary["pareto"]} == ref_front
    assert summary["mlflow_synced"] is True
    _assert_mlflow_exact(tmp_path / "mlflow.db", exp_dir, set(_candidates(exp_dir)), ref_front)


def _assert_mlflow_exact(db: Path, exp_dir: Path, candidate_ids: set[str], front: set[str]) -> None:
    from mlflow.tracking import MlflowClient

    uid = json.loads((exp_dir / "experiment.json").read_text())["uid"]
    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("killed")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.hwnas_uid = '{uid}'", max_results=1000)
    parents = [r for r in runs if r.data.tags["hwnas_role"] == "search"]
    cands = [r for r in runs if r.data.tags["hwnas_role"] == "candidate"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    ids = [r.data.params["candidate_id"] for r in cands]
    assert sorted(ids) == sorted(candidate_ids), "exactly one run per candidate"
    assert all(r.info.status == "FINISHED" for r in cands)
    tagged = {r.data.params["candidate_id"] for r in cands if r.data.tags.get("pareto") == "true"}
    assert tagged == front
