"""What tells one search's MLflow runs apart from another's: identifying tags, the source and its git state.

Every run of a search (the search itself, its supernet, each candidate and retrain) carries
:func:`identifying_tags`, so two searches compared in one runs table can be grouped and filtered by space,
searcher, device and experiment, not only by a uid. The search run also carries MLflow's own source
tags (:func:`source_tags`): what ran, and the git commit of the hwnas code that ran it, where that code is
a git checkout.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

__all__ = ["describe_experiment", "identifying_tags", "source_tags"]

ROOT = Path(__file__).resolve().parents[1]


def identifying_tags(cfg: Any, uid: str) -> dict[str, str]:
    """The search's identifying settings as run tags."""
    searcher = "joint (REINFORCE)" if cfg.search.mode == "joint" else cfg.search.searcher
    return {"hwnas_experiment": cfg.name, "hwnas_space": cfg.space.name, "hwnas_task": cfg.data.task,
            "hwnas_searcher": searcher, "hwnas_cost": cfg.cost.kind, "hwnas_device": cfg.cost.device,
            "hwnas_uid": uid}


def describe_experiment(cfg: Any) -> str:
    """The MLflow experiment's description (markdown): what its runs are and how to read them."""
    objectives = ", ".join(f"{o.metric} ({o.mode})" for o in cfg.search.objectives)
    return (f"hwnas search **{cfg.name}**: {cfg.data.task} in the `{cfg.space.name}` space, objectives {objectives}.\n\n"
            f"Each search is one parent run (named with its date and uid); below it a `supernet` run with the "
            f"training curves, one run per candidate (per-layer choices as params, `pareto` tag, the Pareto "
            f"candidates' ONNX models) and, if configured, one run per stand-alone retrain. The parent run's "
            f"artifacts hold `pareto.html` (interactive), `pareto.png`, `pareto.csv` and `summary.json`.")


def source_tags(command: str) -> dict[str, str]:
    """MLflow's source tags: the command, and the git commit, branch and remote of the hwnas code (none
    of the git tags when the code is not a git checkout, or git is missing)."""
    tags = {"mlflow.source.name": command, "mlflow.source.type": "LOCAL"}
    for tag, args in (("mlflow.source.git.commit", ["rev-parse", "HEAD"]),
                      ("mlflow.source.git.branch", ["rev-parse", "--abbrev-ref", "HEAD"]),
                      ("mlflow.source.git.repoURL", ["config", "--get", "remote.origin.url"])):
        value = _git(args)
        if value:
            tags[tag] = value
    return tags


def _git(args: list[str]) -> str:
    if not (ROOT / ".git").exists():
        return ""
    try:
        proc = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""
