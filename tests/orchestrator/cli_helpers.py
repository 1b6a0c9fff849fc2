"""Helpers to run the real `hwnas` CLI in a subprocess, as a user would."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"


def hwnas_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator.cli", *args]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("RAY_ADDRESS", None)  # never join a cluster the developer happens to run
    return env


def run_cli(*args: str, cwd: Path, timeout: float = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``hwnas ARGS`` in ``cwd``; ``env`` adds variables to :func:`cli_env`'s."""
    return subprocess.run(hwnas_cmd(*args), cwd=cwd, env={**cli_env(), **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)


def tiny_config(tmp_path: Path, name: str = "tiny", **overrides: object) -> Path:
    """The quickstart shrunk to seconds: small data, short training, 2 generations of 4."""
    raw = yaml.safe_load(QUICKSTART.read_text())
    raw["name"] = name
    raw["space"]["settings"].update(width_mult=0.25, stem_stride=2)
    raw["data"].update(train_size=512, val_size=256)
    raw["supernet"].update(steps=40, checkpoint_every=10, batch_size=32)
    raw["evaluation"].update(bn_batches=2, bn_batch_size=64, batch_size=256)
    raw["search"]["settings"] = {"population_size": 4, "generations": 2}
    raw["cost"].update(kind="madds")
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path
