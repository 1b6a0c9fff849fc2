"""``hwnas retrain EXPERIMENT_DIR [--top K | --candidates ID ... | --arch ENCODING ...]``: train architectures
of a finished search from scratch on Ray Train, later, again, or ones the search never proposed.

Every input is checked before anything is written or started on the cluster: the search must have
finished, ids must be the experiment's, encodings well formed, the settings valid and the workers
placeable. The retrains are journalled, so an interrupted ``hwnas retrain`` continues with
``hwnas resume EXPERIMENT_DIR`` (or the same command again) from each retrain's last epoch checkpoint.
"""
from __future__ import annotations

import argparse
from typing import Any

import yaml

from core.errors import ConfigError, ExperimentError

__all__ = ["add_retrain_command"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def add_retrain_command(sub: Any) -> dict[str, Any]:
    p = sub.add_parser(
        "retrain", help="train architectures of a finished search from scratch (Ray Train)",
        description="Train the search's architectures from scratch with Ray Train (data parallel), measure the "
                    "shipped models and log them to MLflow; check the supernet's ranking against the results. "
                    "Without a choice, the retrain section's top_k (default 3) spanning the Pareto front.")
    p.add_argument("experiment_dir", metavar="EXPERIMENT_DIR")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--top", type=_positive_int, metavar="K", help="the K candidates spanning the Pareto front")
    which.add_argument("--candidates", nargs="+", metavar="ID", help="these candidate ids (see `hwnas status`)")
    which.add_argument("--arch", nargs="+", metavar="ENCODING",
                       help="these architectures, as choice indices joined by '-' (need not be candidates)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="retrain.KEY=VALUE",
                   help="override a retrain setting, e.g. --set retrain.epochs=20 --set retrain.workers=2 (repeatable)")
    p.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI (default: the one the search used)")
    p.add_argument("--address", metavar="RAY_ADDRESS", help="join this Ray cluster; default: start a local Ray")
    return {"retrain": _cmd_retrain}


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``retrain.KEY=VALUE`` items (YAML values) as ``{KEY: value}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.startswith("retrain.") or len(key) <= len("retrain."):
            raise ConfigError(f"--set {item!r}: expected retrain.KEY=VALUE. HINT: e.g. --set retrain.epochs=20 "
                              f"(only the retrain settings can change after the search)")
        try:
            out[key[len("retrain."):]] = yaml.safe_load(text)
        except yaml.YAMLError:
            out[key[len("retrain."):]] = text
    return out


def _cmd_retrain(args: argparse.Namespace) -> int:
    from cluster import connect

    from ._ray_env import quiet_ray
    from .report import out, run_and_report
    from .experiment import Experiment
    from .pipeline import stages_for
    from .retrain import check_room, plan_retrains, retrain_settings

    exp = Experiment.open(args.experiment_dir, args.tracking_uri)
    state = exp.journal.replay()
    if state.stage("finalize") != "completed":
        current = next((s for s in stages_for(exp.config) if state.stage(s) != "completed"), "finalize")
        raise ExperimentError(
            f"the search of experiment {exp.directory} has not finished (stage {current} is {state.stage(current)}), "
            f"so there is no front to retrain yet; nothing was changed. HINT: finish it with "
            f"`hwnas resume {exp.directory}`, then retrain.")
    settings = retrain_settings(exp, parse_overrides(args.overrides))
    requests = plan_retrains(exp, state, settings, top=args.top, candidate_ids=args.candidates or (),
                             arches=args.arch or ())
    quiet_ray()
    connect(args.address)
    check_room(settings, exp.config.compute)  # too many workers for this cluster: one line, before anything is written
    out(f"hwnas: retraining {len(requests)} architecture(s) of experiment {exp.config.name} in {exp.directory}")
    return run_and_report(exp, args.address, retrain_requests=requests)
