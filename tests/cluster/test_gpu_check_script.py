"""benchmarks/gpu_check.py as it runs on a lent GPU machine: from the source tree, with no Ray, MLflow or
pymoo importable. On a machine without CUDA it skips the GPU parts in one line; ``--rehearse`` runs each
part on the CPU at toy sizes, so the script is known to work before GPU minutes are spent on it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
# Imports of what the GPU machine lacks fail, as they would there.
_BLOCKED = (
    "import importlib.abc, runpy, sys\n"
    "class Block(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path, target=None):\n"
    "        if name.split('.')[0] in ('ray', 'mlflow', 'pymoo'):\n"
    "            raise ImportError('not on the GPU machine: ' + name)\n"
    "sys.meta_path.insert(0, Block())\n"
    "sys.argv = ['benchmarks/gpu_check.py'] + sys.argv[1:]\n"
    "runpy.run_path('benchmarks/gpu_check.py', run_name='__main__')\n"
)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", _BLOCKED, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the skip path is for machines without CUDA")
def test_without_cuda_it_skips_the_gpu_parts_in_one_line(tmp_path: Path) -> None:
    done = _run("--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and "sees no CUDA device: skipping the GPU parts" in lines[0]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["skipped"] is True and report["environment"]["cuda"] is False


def test_rehearsal_runs_every_part_without_ray_or_mlflow(tmp_path: Path) -> None:
    done = _run("--rehearse", "--out", str(tmp_path), *(f"--only={part}" for part in ("latency", "supernet", "loop", "cost")))
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    for part in ("latency", "supernet", "loop", "cost"):
        assert "error" not in report[part], report[part]
    assert report["latency"]["presets"]["mobilenet-v2"]["median_ms"] > 0
    assert report["loop"]["ratio"] > 0
    # The fitted model is a file a CPU search loads as cost.model.
    from cluster.calibration import load_cost_model
    from spaces import get_space

    cost = report["cost"]
    loaded = load_cost_model(tmp_path / cost["model_file"], kind="linear", space=get_space(cost["space"], **cost["settings"]))
    assert loaded.info["device"] == "cpu-torch" and loaded.info["samples"] == cost["samples"]
