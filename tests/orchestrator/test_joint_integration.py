"""A joint search (TuNAS) through the real CLI: killed with SIGKILL while the supernet and the controller
train, resumed, it ends where an uninterrupted run ends (the same weights, controller and candidates);
MLflow holds the controller's history and heat map."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from cli_helpers import assert_gone, assert_same_result, mlflow_runs, run_cli, run_until, tiny_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def joint_config(directory: Path, name: str) -> Path:
    """The tiny config with the joint search: madds as the (deterministic) cost, 3 candidates."""
    path = tiny_config(directory, name=name)
    raw = yaml.safe_load(path.read_text())
    raw["search"].update(searcher="reinforce", mode="joint",
                         settings={"cost_target": 1.0, "candidates": 3, "lr": 0.05, "warmup": 0.25})
    path.write_text(yaml.safe_dump(raw))
    return path


def assert_same_checkpoint(a: Path, b: Path) -> None:
    """The same weights, optimiser state, step and controller (the files' bytes may differ: a state loaded
    and saved again pickles in another order)."""
    import torch

    x, y = (torch.load(p / "supernet" / "supernet.pt", weights_only=True) for p in (a, b))
    assert x.keys() == y.keys()
    assert all(torch.equal(x["model"][k], y["model"][k]) for k in x["model"])
    assert all(torch.equal(x["optimizer"]["state"][i]["momentum_buffer"], y["optimizer"]["state"][i]["momentum_buffer"])
               for i in x["optimizer"]["state"])
    assert {k: v for k, v in x.items() if k not in ("model", "optimizer")} == \
        {k: v for k, v in y.items() if k not in ("model", "optimizer")}


def test_a_killed_joint_search_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    reference = run_cli("search", str(joint_config(tmp_path, "joint-ref")), "--storage", str(tmp_path / "runs"),
                        cwd=tmp_path)
    assert reference.returncode == 0, reference.stdout[-3000:] + reference.stderr[-3000:]
    assert "with the REINFORCE controller (joint search)" in reference.stdout
    assert re.search(r"step 40/40 .* reward -?\d\.\d{3}  cost \d+\.\d{3} ms  entropy", reference.stdout)
    assert "[search] the controller's argmax" in reference.stdout and "candidates 3/3" in reference.stdout
    ref_dir = tmp_path / "runs" / "joint-ref"

    exp_dir = tmp_path / "runs" / "joint-killed"
    _, below = run_until(["search", str(joint_config(tmp_path, "joint-killed")), "--storage", str(tmp_path / "runs")],
                         tmp_path, r"\[train_supernet\] step 20/40")
    assert_gone(below, within=10)
    resumed = run_cli("resume", str(exp_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert re.search(r"resuming from checkpoint at step (20|30)/40", resumed.stdout)

    assert_same_checkpoint(exp_dir, ref_dir)  # weights and controller, bit for bit
    assert_same_result(exp_dir, ref_dir)
    controller = json.loads((exp_dir / "controller.json").read_text())
    assert controller == json.loads((ref_dir / "controller.json").read_text())
    assert controller["candidates"][0] == controller["argmax"] and len(controller["candidates"]) == 3

    from mlflow.tracking import MlflowClient

    (parent,), _ = mlflow_runs(tmp_path / "mlflow.db", ref_dir, "joint-ref")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    history = client.get_metric_history(parent.info.run_id, "joint/reward")
    assert [m.step for m in history] == [10, 20, 30, 40]
    probabilities = [k for k in parent.data.metrics if k.startswith("controller/p/")]
    assert len(probabilities) == 14 * 12  # every choice of every MoGA layer
    assert len(client.get_metric_history(parent.info.run_id, probabilities[0])) == 4
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "controller")}
    assert artifacts == {"controller/controller.json", "controller/controller.png"}
