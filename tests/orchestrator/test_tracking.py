"""What MLflow holds for a search, through the real MLflow client on a real SQLite store (no Ray): the
experiment opens on its runs, candidate runs are readable and comparable, the supernet's curves survive a
resume without doubled steps, and the Pareto candidates' models load."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchestrator.metrics import readable_metrics
from orchestrator.run_tags import source_tags
from orchestrator.tracking import Tracker
from spaces import get_space


@pytest.fixture()
def space():
    return get_space("moga", **get_space("moga").small_settings())


def _tracker(tmp_path: Path, space, uid: str = "0123456789abcdef") -> Tracker:
    tracker = Tracker(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment_name="tracked", uid=uid,
                      printer=lambda line: None, space_name=space.name, space=space,
                      run_tags={"hwnas_space": space.name, "hwnas_searcher": "weighted-nsga2", "hwnas_device": "cpu"},
                      description="a test search")
    tracker.start(params={"seed": 0}, tags={"hwnas_experiment": "tracked", "note": "n"})
    return tracker


def _record(space, seed: int, started: float) -> dict:
    import numpy as np

    encoding = space.sample(np.random.default_rng(seed))
    return {"candidate_id": space.candidate_id(encoding), "encoding": space.to_string(encoding), "space": space.name,
            "generation": 2, "accuracy": 0.5, "latency_ms": 1.25, "params": 863252, "madds": 4_500_000,
            "eval_started": started, "eval_seconds": 1.5}


def _client(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")


def _runs(tmp_path: Path, role: str) -> list:
    client = _client(tmp_path)
    exp = client.get_experiment_by_name("tracked")
    return client.search_runs([exp.experiment_id], filter_string=f"tags.hwnas_role = '{role}'", max_results=100)


def test_the_experiment_opens_on_its_runs_with_a_description(tmp_path: Path, space) -> None:
    tracker = _tracker(tmp_path, space)
    tracker.close()
    exp = _client(tmp_path).get_experiment_by_name("tracked")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert exp.tags["mlflow.note.content"] == "a test search"
    (parent,) = _runs(tmp_path, "search")
    assert "tracked" in parent.info.run_name and "01234567" in parent.info.run_name  # two searches stay apart
    assert parent.data.tags["hwnas_searcher"] == "weighted-nsga2"


def test_a_candidate_run_is_readable_and_spans_its_evaluation(tmp_path: Path, space) -> None:
    tracker = _tracker(tmp_path, space)
    started = time.time() - 100
    record = _record(space, 0, started)
    tracker.log_candidate(record)
    tracker.close()
    (run,) = _runs(tmp_path, "candidate")
    encoding = space.parse(record["encoding"])
    assert {d.name: run.data.params[d.name] for d in space.dims} == \
        {d.name: d.choices[v] for d, v in zip(space.dims, encoding)}
    assert run.data.params["generation"] == "2" and run.data.params["encoding"] == record["encoding"]
    assert "generation" not in run.data.metrics
    assert run.data.metrics["params_m"] == pytest.approx(0.863252) and run.data.metrics["madds_m"] == 4.5
    assert run.data.metrics["latency_ms"] == 1.25 and run.data.metrics["eval_seconds"] == 1.5
    assert {"hwnas_space", "hwnas_searcher", "hwnas_device"} <= set(run.data.tags)
    assert run.info.start_time == int(started * 1000) and run.info.end_time == int((started + 1.5) * 1000)


def test_readable_metrics_show_counts_in_millions() -> None:
    out = readable_metrics({"accuracy": 0.9, "params": 2_000_000, "madds": 300_000_000, "latency_ms": 2.0})
    assert out == {"accuracy": 0.9, "params_m": 2.0, "madds_m": 300.0, "latency_ms": 2.0}


def test_supernet_curves_continue_after_a_resume_without_doubled_steps(tmp_path: Path, space) -> None:
    def chunk(first: int, last: int, total: int = 8) -> dict:
        history = [{"step": s, "loss": 1.0 / s, "train_accuracy": s / 10, "lr": 0.1} for s in range(first, last + 1)]
        return {"step": last, "steps": total, "seconds": 0.5, "history": history}

    tracker = _tracker(tmp_path, space)
    tracker.log_supernet(chunk(1, 4), params={"supernet.steps": 8})
    tracker.log_supernet(chunk(5, 6), params={"supernet.steps": 8})
    tracker.close()  # the driver dies here; the checkpoint was at step 4, so steps 5-6 are trained again
    resumed = _tracker(tmp_path, space)
    resumed.log_supernet(chunk(5, 8), params={"supernet.steps": 8})
    resumed.close()
    (run,) = _runs(tmp_path, "supernet")
    client = _client(tmp_path)
    for key in ("loss", "train_accuracy", "lr"):
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, key)) == list(range(1, 9))
    assert run.info.status == "FINISHED" and run.data.params["supernet.steps"] == "8"
    assert len(client.get_metric_history(run.info.run_id, "steps_per_s")) == 3
    assert len(_runs(tmp_path, "search")) == 1  # the resumed tracker found its search run again


def test_pareto_models_are_logged_once_on_their_candidate_runs(tmp_path: Path, space) -> None:
    import mlflow
    import mlflow.onnx

    from spaces import export_onnx

    record = _record(space, 1, time.time() - 50)
    path = tmp_path / "model.onnx"
    export_onnx(space.build(space.parse(record["encoding"])).eval(), space.input_shape, path)
    tracker = _tracker(tmp_path, space)
    tracker.log_candidate(record)
    assert tracker.candidate_run_ids().keys() == {record["candidate_id"]}
    assert tracker.finish(pareto_ids={record["candidate_id"]}, artifacts=[], metrics={},
                          models={record["candidate_id"]: path})
    tracker.close()
    again = _tracker(tmp_path, space)  # a resumed finalize: nothing logged twice
    assert again.finish(pareto_ids={record["candidate_id"]}, artifacts=[], metrics={},
                        models={record["candidate_id"]: path})
    again.close()
    (run,) = _runs(tmp_path, "candidate")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.data.tags["pareto"] == "true"
    assert run.info.end_time == int((record["eval_started"] + 1.5) * 1000)  # still its evaluation's end
    models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    assert len(models) == 1 and models[0].source_run_id == run.info.run_id
    model = mlflow.onnx.load_model(run.data.tags["model_uri"])
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == space.input_shape[0]


def test_source_tags_name_the_command_and_the_git_commit() -> None:
    tags = source_tags("hwnas search x")
    assert tags["mlflow.source.name"] == "hwnas search x"
    if (Path(__file__).resolve().parents[2] / ".git").exists():
        assert len(tags["mlflow.source.git.commit"]) == 40


def test_a_new_local_store_logs_in_wal_mode_and_a_network_one_does_not(tmp_path: Path) -> None:
    import sqlite3

    from orchestrator.sqlite_store import create_sqlite_store, on_network_filesystem

    create_sqlite_store(tmp_path / "local.db")
    with sqlite3.connect(tmp_path / "local.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    mounts = "/dev/vda / ext4 rw 0 0\nserver:/export /shared nfs4 rw 0 0\ntmpfs /shared/tmp tmpfs rw 0 0\n"
    assert on_network_filesystem(Path("/shared/runs"), mounts)
    assert not on_network_filesystem(Path("/shared/tmp/x"), mounts) and not on_network_filesystem(Path("/home"), mounts)
    assert not on_network_filesystem(Path("/sharedother"), mounts)


def test_a_tracker_in_its_own_process_logs_the_same_and_says_failures_here(tmp_path: Path, space) -> None:
    said: list[str] = []
    tracker = Tracker(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment_name="tracked", uid="f" * 16,
                      printer=said.append, space_name=space.name, space=space, in_process=False)
    tracker.start(params={"seed": 0}, tags={"hwnas_experiment": "tracked"})
    assert tracker.parent_run_id and tracker.experiment_id  # known on this side too
    records = [_record(space, seed, time.time()) for seed in range(3)]
    for record in records:
        tracker.log_candidate(record)
    assert tracker.sync(records)
    assert tracker.candidate_run_ids().keys() == {r["candidate_id"] for r in records}
    tracker.log_supernet({"step": 2, "steps": 2, "seconds": 1.0, "history": [
        {"step": s, "loss": 1.0, "train_accuracy": 0.5, "lr": 0.1} for s in (1, 2)]}, params={})
    tracker.close()
    assert len(_runs(tmp_path, "candidate")) == 3 and len(_runs(tmp_path, "supernet")) == 1 and not said

    down = Tracker(tracking_uri="http://127.0.0.1:9", experiment_name="x", uid="e" * 16, printer=said.append,
                   in_process=False)  # nothing listens on port 9: the child's failure is printed by this process
    down.start(params={}, tags={})
    down.close()
    assert len(said) == 1 and said[0].startswith("[mlflow] starting the search run failed")


def test_the_tracking_process_dies_with_a_killed_driver(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from core.reaper import descendants

    driver = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from orchestrator.tracking import Tracker\n"
        f"t = Tracker(tracking_uri='sqlite:///{tmp_path / 'm.db'}', experiment_name='k', uid='k' * 16, in_process=False)\n"
        "t.start(params={}, tags={}); print('started', flush=True); time.sleep(600)")],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        assert driver.stdout.readline().strip() == "started"
        children = [pid for pid, _ in descendants(driver.pid)]
        assert children  # the tracking process (and its resource tracker)
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in children):
        assert time.monotonic() < deadline, "the tracking process outlived its driver"
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead, only not yet reaped by its new parent
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_a_wal_store_commits_without_waiting_for_the_disk(tmp_path: Path, space) -> None:
    tracker = _tracker(tmp_path, space)
    tracker.close()
    engine = tracker.client._tracking_client.store.engine
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_a_killed_tracking_process_is_said_once_and_never_raises(tmp_path: Path, space) -> None:
    import os
    import signal

    said: list[str] = []
    tracker = Tracker(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment_name="tracked", uid="d" * 16,
                      printer=said.append, space_name=space.name, space=space, in_process=False)
    tracker.start(params={}, tags={})
    for pid in list(tracker._worker._pool._processes):
        os.kill(pid, signal.SIGKILL)
    time.sleep(1.0)
    tracker.log_candidate(_record(space, 0, time.time()))  # neither call raises
    assert tracker.sync([_record(space, 1, time.time())]) is False
    tracker.close()
    assert len(said) == 1 and "the tracking process ended" in said[0] and "hwnas resume" in said[0]


def _written_run(tmp_path: Path, space, record: dict, *, one_transaction: bool):
    tracker = _tracker(tmp_path, space)
    if not one_transaction:
        tracker._run_writer = None  # the client's create_run + log_batch + set_terminated, as before
    tracker.log_candidate(record)
    tracker.close()
    (run,) = _runs(tmp_path, "candidate")
    client = _client(tmp_path)
    history = {key: [(m.value, m.step, m.timestamp) for m in client.get_metric_history(run.info.run_id, key)]
               for key in run.data.metrics}
    return run, history


def test_a_candidate_run_written_in_one_transaction_reads_back_as_mlflow_writes_it(tmp_path: Path, space) -> None:
    from orchestrator.finished_runs import FinishedRunWriter

    assert FinishedRunWriter.for_client(_tracker(tmp_path / "probe", space).client) is not None
    record = {**_record(space, 3, time.time() - 50), "accuracy": float("nan"), "latency_ms": float("inf")}
    fast, fast_history = _written_run(tmp_path / "fast", space, record, one_transaction=True)
    slow, slow_history = _written_run(tmp_path / "slow", space, record, one_transaction=False)
    for field in ("status", "start_time", "end_time", "lifecycle_stage", "user_id", "run_name"):
        assert getattr(fast.info, field) == getattr(slow.info, field), field
    assert fast.info.artifact_uri.endswith(f"/{fast.info.run_id}/artifacts")
    assert fast.data.params == slow.data.params
    assert fast.data.tags.keys() == slow.data.tags.keys()
    assert {k: v for k, v in fast.data.tags.items() if k != "mlflow.parentRunId"} == \
        {k: v for k, v in slow.data.tags.items() if k != "mlflow.parentRunId"}
    assert str(fast.data.metrics) == str(slow.data.metrics)  # NaN and the store's stand-in for inf alike
    assert str(fast_history) == str(slow_history)
    client = _client(tmp_path / "fast")
    exp = client.get_experiment_by_name("tracked")
    first_layer = space.dims[0]
    choice = fast.data.params[first_layer.name]
    found = client.search_runs([exp.experiment_id], filter_string=f"params.{first_layer.name} = '{choice}' "
                               f"and metrics.params_m > 0 and attributes.status = 'FINISHED'")
    assert [r.info.run_id for r in found] == [fast.info.run_id]


def test_the_one_transaction_writer_steps_aside_where_it_would_not_write_what_mlflow_does(
        tmp_path: Path, space, monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    from orchestrator import finished_runs

    assert finished_runs.FinishedRunWriter.for_client(MlflowClient("http://127.0.0.1:9")) is None  # a server
    client = _tracker(tmp_path, space).client
    monkeypatch.setitem(finished_runs.COLUMNS, "runs", finished_runs.COLUMNS["runs"] | {"a_future_column"})
    assert finished_runs.FinishedRunWriter.for_client(client) is None
