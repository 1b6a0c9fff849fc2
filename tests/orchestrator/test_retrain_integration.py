"""`hwnas retrain` through the real CLI, on copies of the finished tiny reference search: real Ray Train
(two data-parallel workers, gloo), real Tune trials, real MLflow (SQLite store, Model Registry) and ONNX
Runtime. A driver killed mid-retrain resumes from the last epoch checkpoint; a worker killed mid-epoch is
restarted by Ray Train; in both, every epoch is in the journal and in MLflow exactly once."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import assert_gone, run_cli, run_until, run_watching

pytestmark = pytest.mark.integration

RETRAIN = ("--set", "retrain.epochs=2", "--set", "retrain.workers=2", "--set", "retrain.batch_size=32",
           "--set", "retrain.register=true", "--set", "retrain.model_name=tiny-retrained")


def _copy(reference: Path, root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(reference, root / "exp")
    return root / "exp"


def _uri(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def _records(exp: Path, event: str) -> list[dict]:
    return [r for r in map(json.loads, (exp / "journal.jsonl").read_text().splitlines()) if r["event"] == event]


def _epochs(exp: Path) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for r in _records(exp, "retrain_epoch"):
        out.setdefault(r["retrain_id"], []).append(int(r["epoch"]))
    return out


def _client(root: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(_uri(root))


def _retrain_runs(root: Path, exp: Path) -> dict[str, object]:
    client = _client(root)
    uid = json.loads((exp / "experiment.json").read_text())["uid"]
    experiment = client.get_experiment_by_name("reference")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.hwnas_uid = '{uid}'")
    return {r.data.tags["retrain_id"]: r for r in runs if r.data.tags["hwnas_role"] == "retrain"}


def _steps(root: Path, run: object, key: str) -> list[int]:
    return sorted(m.step for m in _client(root).get_metric_history(run.info.run_id, key))


@pytest.fixture(scope="module")
def retrained(reference_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, list[str]]:
    """Two Pareto candidates of the reference search retrained, two Ray Train workers each, registered."""
    root = tmp_path_factory.mktemp("retrained")
    exp = _copy(reference_run, root)
    front = json.loads((exp / "summary.json").read_text())["pareto"]
    ids = [front[0]["candidate_id"], front[-1]["candidate_id"]]
    proc = run_cli("retrain", str(exp), "--candidates", *ids, "--tracking-uri", _uri(root), *RETRAIN, cwd=root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root, exp, proc.stdout, ids


def test_two_candidates_retrain_on_two_ray_train_workers(retrained: tuple) -> None:
    root, exp, out, ids = retrained
    assert "2 epochs on 2 Ray Train workers" in out
    done = {r["candidate_id"]: r for r in _records(exp, "retrain_completed")}
    assert sorted(done) == sorted(ids)
    assert all(sorted(epochs) == [1, 2] for epochs in _epochs(exp).values()) and len(_epochs(exp)) == 2
    for record in done.values():
        run_dir = exp / "retrain" / record["retrain_id"]
        assert {"model.onnx", "model.pt", "arch.json", "result.json"} <= {p.name for p in run_dir.iterdir()}
        assert sorted(p.name for p in (run_dir / "workers").iterdir()) == ["rank0.json", "rank1.json"]
        assert record["latency_device"] == "cpu" and record["latency_ms"] > 0 and record["onnx_max_rel_diff"] < 1e-4
        assert 0.0 <= record["final"]["accuracy"] <= 1.0
    # The final table and `hwnas status` put the supernet's score beside the retrained one.
    assert "supernet accuracy  retrained accuracy" in out
    status = run_cli("status", str(exp), cwd=root)
    assert status.returncode == 0 and all(f"{cid}-" in status.stdout for cid in ids), status.stdout
    rows = json.loads(run_cli("status", str(exp), "--json", cwd=root).stdout)["retrains"]
    assert {r["state"] for r in rows} == {"done"} and all(r["retrained_accuracy"] is not None for r in rows)


def test_mlflow_holds_nested_runs_with_epoch_history_onnx_models_and_registry_versions(retrained: tuple) -> None:
    import mlflow
    import mlflow.onnx
    import onnxruntime as ort

    from trainers.retrain import RetrainJob, build_shipped

    root, exp, _, ids = retrained
    mlflow.set_tracking_uri(_uri(root))
    runs = _retrain_runs(root, exp)
    client = _client(root)
    parent = client.search_runs([client.get_experiment_by_name("reference").experiment_id],
                                filter_string="tags.hwnas_role = 'search'")[0]
    assert len(runs) == 2
    for rid, run in runs.items():
        assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        for key in ("accuracy", "train_loss", "lr"):
            assert _steps(root, run, key) == [1, 2], key  # one entry per epoch: none doubled, none missing
        assert {"latency_ms", "params", "madds", "supernet_accuracy"} <= set(run.data.metrics)
        assert "iterations_since_restore" not in run.data.metrics  # Tune's bookkeeping stays out
        # The ONNX flavor loads, runs in ONNX Runtime and computes what the PyTorch weights compute.
        onnx_model = mlflow.onnx.load_model(run.data.tags["model_uri"])
        session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
        arch = json.loads((exp / "retrain" / rid / "arch.json").read_text())
        from spaces import get_space

        space = get_space(arch["space"], **arch["space_settings"])
        job = RetrainJob(retrain_id=rid, candidate_id=arch["candidate_id"], encoding=space.parse(arch["encoding"]),
                         space_name=arch["space"], space_settings=arch["space_settings"], data_kind="synthetic",
                         data_settings={}, seed=0, settings={})
        model = build_shipped(job, torch.load(exp / "retrain" / rid / "model.pt", weights_only=True))
        x = np.random.default_rng(1).standard_normal(space.input_shape).astype(np.float32)
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        got = session.run(None, {"input": x})[0]
        assert np.abs(want - got).max() <= 1e-4 * max(1.0, float(np.abs(want).max()))
        info = mlflow.models.get_model_info(run.data.tags["model_uri"])
        assert info.signature is not None and info.saved_input_example_info is not None
    versions = client.search_model_versions("name='tiny-retrained'")
    assert sorted(v.tags["candidate_id"] for v in versions) == sorted(ids)
    assert all({"retrain_id", "space", "encoding", "accuracy", "latency_ms"} <= set(v.tags) for v in versions)


def test_ranking_check_is_written_and_logged(retrained: tuple) -> None:
    root, exp, out, _ = retrained
    ranking = json.loads((exp / "retrain" / "ranking.json").read_text())
    assert ranking["n"] == 2 and ranking["kendall_tau"] is None  # two points order nothing
    assert "ranking check (accuracy): not computed" in out
    assert (exp / "retrain" / "ranking.png").stat().st_size > 0
    client = _client(root)
    parent = client.search_runs([client.get_experiment_by_name("reference").experiment_id],
                                filter_string="tags.hwnas_role = 'search'")[0]
    assert parent.data.metrics["ranking_n"] == 2
    assert "retrain/ranking.png" in {a.path for a in client.list_artifacts(parent.info.run_id, "retrain")}


def test_a_finished_retrain_is_not_run_again(retrained: tuple) -> None:
    root, exp, _, ids = retrained
    before = (exp / "journal.jsonl").read_text().count('"retrain_epoch"')
    proc = run_cli("retrain", str(exp), "--candidates", *ids, "--tracking-uri", _uri(root), *RETRAIN, cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("finished earlier; not run again") == 2 and "epoch 1/2" not in proc.stdout
    assert (exp / "journal.jsonl").read_text().count('"retrain_epoch"') == before
    assert len(_client(root).search_model_versions("name='tiny-retrained'")) == 2


@pytest.mark.slow
def test_driver_killed_mid_retrain_resumes_from_the_last_epoch(reference_run: Path, tmp_path: Path) -> None:
    exp = _copy(reference_run, tmp_path)
    args = ["retrain", str(exp), "--arch", "1-1-1-1-1-1-1-1-1-1-1-1-1-1", "--tracking-uri", _uri(tmp_path),
            "--set", "retrain.epochs=4", "--set", "retrain.workers=1", "--set", "retrain.batch_size=32"]
    out, below = run_until(args, tmp_path, r"epoch 2/4")
    assert_gone(below, within=60)  # Tune trials, the Train controller and its workers die with the driver
    assert "epoch 3/4" not in out
    proc = run_cli("resume", str(exp), "--tracking-uri", _uri(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "resuming after epoch 2" in proc.stdout, proc.stdout[-3000:]
    assert "epoch 3/4" in proc.stdout and "epoch 4/4" in proc.stdout and "epoch 1/4" not in proc.stdout
    [rid] = _epochs(exp)
    assert _epochs(exp)[rid] == [1, 2, 3, 4]
    [run] = _retrain_runs(tmp_path, exp).values()
    assert run.info.status == "FINISHED"
    for key in ("accuracy", "train_loss", "lr"):
        assert _steps(tmp_path, run, key) == [1, 2, 3, 4], key


@pytest.mark.slow
def test_a_killed_worker_is_restarted_from_the_last_checkpoint(reference_run: Path, tmp_path: Path) -> None:
    exp = _copy(reference_run, tmp_path)
    killed: list[int] = []

    def kill_a_worker(line: str, proc: object) -> bool:
        if not killed and re.search(r"epoch 1/4", line):
            [pid_file] = list((exp / "retrain").glob("*/workers/rank1.json"))
            killed.append(json.loads(pid_file.read_text())["pid"])
            os.kill(killed[0], signal.SIGKILL)  # one data-parallel worker, mid-run
        return False  # watch to the end

    args = ["retrain", str(exp), "--arch", "2-2-2-2-2-2-2-2-2-2-2-2-2-2", "--tracking-uri", _uri(tmp_path),
            "--set", "retrain.epochs=4", "--set", "retrain.workers=2", "--set", "retrain.batch_size=32"]
    out, returncode = run_watching(args, tmp_path, kill_a_worker)
    assert returncode == 0, out[-3000:]
    assert killed and "Ray Train workers (re)started from the checkpoint of epoch" in out, out[-3000:]
    [pid_file] = list((exp / "retrain").glob("*/workers/rank1.json"))
    assert json.loads(pid_file.read_text())["pid"] != killed[0]
    [rid] = _epochs(exp)
    assert _epochs(exp)[rid] == [1, 2, 3, 4]
    [run] = _retrain_runs(tmp_path, exp).values()
    for key in ("accuracy", "train_loss", "lr"):
        assert _steps(tmp_path, run, key) == [1, 2, 3, 4], key


def test_retrains_run_at_once_when_the_cluster_has_room(reference_run: Path, tmp_path: Path) -> None:
    """Two one-worker retrains on a 2-CPU Ray: two Ray Train runs side by side, each in its Tune trial."""
    exp = _copy(reference_run, tmp_path)
    proc = run_cli("retrain", str(exp), "--arch", "3-3-3-3-3-3-3-3-3-3-3-3-3-3", "4-4-4-4-4-4-4-4-4-4-4-4-4-4",
                   "--tracking-uri", _uri(tmp_path), "--set", "retrain.epochs=2", "--set", "retrain.workers=1",
                   "--set", "retrain.batch_size=32", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"2 retrains, up to [2-9]\d* at once", proc.stdout), proc.stdout[-3000:]
    spans = []
    for run_dir in (exp / "retrain").glob("*/workers"):
        started = json.loads((run_dir / "rank0.json").read_text())["started"]
        spans.append((started, (run_dir.parent / "result.json").stat().st_mtime))
    (a0, a1), (b0, b1) = spans
    assert a0 < b1 and b0 < a1, f"the two retrains ran one after the other: {spans}"
