"""The ``hwnas`` command line: search, resume, status (plus spaces/arch and latency/costmodel).

Every user error is an :class:`HwnasError`: one line on stderr, exit code 2, no traceback, nothing
written.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn, Sequence

from core.errors import HwnasError

from ._ray_env import quiet_ray
from .report import out as _out
from .report import run_and_report

__all__ = ["main", "build_parser"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong, and where help is), exit code 2."""

    def error(self, message: str) -> "NoReturn":
        self.exit(EXIT_USAGE, f"hwnas: error: {self.prog}: {message}. HINT: see `{self.prog} --help`.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hwnas", description="Hardware-aware neural architecture search on Ray, tracked in MLflow.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("search", help="run a search experiment from a YAML config",
                       description="Train the supernet, search it, and log every candidate to MLflow.")
    p.add_argument("config", help="experiment config (YAML), e.g. examples/quickstart.yaml")
    p.add_argument("--storage", default="hwnas-runs", metavar="DIR",
                   help="parent of experiment directories; the experiment lives in DIR/<name> (default: ./hwnas-runs)")
    p.add_argument("--tracking-uri", metavar="URI",
                   help="MLflow tracking URI (default: sqlite:///<working dir>/mlflow.db)")
    p.add_argument("--address", metavar="RAY_ADDRESS",
                   help="join this Ray cluster (HOST:PORT of its head, or auto); default: start a local Ray")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value by dotted path, e.g. --set search.settings.generations=3 (repeatable)")

    p = sub.add_parser("resume", help="continue an interrupted experiment",
                       description="Continue an experiment: finished stages are skipped, scored candidates reused.")
    p.add_argument("experiment_dir", metavar="EXPERIMENT_DIR")
    p.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI (default: the one the search used)")
    p.add_argument("--address", metavar="RAY_ADDRESS", help="join this Ray cluster; default: start a local Ray")

    p = sub.add_parser("status", help="show an experiment's stage, candidates and Pareto front",
                       description="Read-only: reads the journal, starts nothing.")
    p.add_argument("experiment_dir", metavar="EXPERIMENT_DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    from .arch_cli import add_arch_commands
    from .cost_cli import add_cost_commands
    from .data_cli import add_data_commands
    from .evaluate_cli import add_evaluate_command
    from .jobs_cli import add_jobs_commands
    from .retrain_cli import add_retrain_command

    COMMANDS.update(add_arch_commands(sub))
    COMMANDS.update(add_cost_commands(sub))
    COMMANDS.update(add_data_commands(sub))
    COMMANDS.update(add_evaluate_command(sub))
    COMMANDS.update(add_retrain_command(sub))
    COMMANDS.update(add_jobs_commands(sub))
    return parser


def _cmd_search(args: argparse.Namespace) -> int:
    from .config import load_config
    from .experiment import Experiment
    from .tracking import default_tracking_uri

    from trainers import DATASETS

    cfg = load_config(args.config, args.overrides)
    Experiment.new_directory(cfg, Path(args.storage))  # refuse an existing experiment before Ray starts
    DATASETS.get(cfg.data.kind).prepare(cfg.data.settings, printer=_out)  # a bad image: one line, nothing written
    _check_placement(cfg, args.address, storage=Path(args.storage))  # before anything is written
    exp = Experiment.create(cfg, Path(args.storage), args.tracking_uri or default_tracking_uri())
    _out(f"hwnas: experiment {cfg.name} in {exp.directory}")
    return run_and_report(exp, args.address)


def _check_placement(cfg: Any, address: str | None, *, storage: Path) -> None:
    """Connect to Ray and make sure the latency device (and a GPU, where compute asks for one) exists and, on
    a cluster, that every node sees the storage, so a bad cluster writes nothing."""
    from cluster import connect, require_device

    from .placement import placed_compute

    quiet_ray()
    connect(address)
    placed_compute(cfg.compute)
    if cfg.cost.measures or cfg.retrain is not None:  # retrained models are measured on the device
        require_device(cfg.cost.device)
    if cfg.retrain is not None:
        from .retrain import check_room

        check_room(cfg.retrain, cfg.compute)
    if address is not None:  # last: it writes (and removes) probe files; a failed check leaves nothing
        from cluster import check_shared_directory

        check_shared_directory(storage)


def _cmd_resume(args: argparse.Namespace) -> int:
    from .experiment import Experiment

    exp = Experiment.open(args.experiment_dir, args.tracking_uri)
    if args.address is not None:  # every node must see the experiment before anything resumes
        from cluster import check_shared_directory, connect

        quiet_ray()
        connect(args.address)
        check_shared_directory(exp.directory)
    _out(f"hwnas: resuming experiment {exp.config.name} in {exp.directory}")
    return run_and_report(exp, args.address)


def _cmd_status(args: argparse.Namespace) -> int:
    from .status import experiment_status, format_status

    status = experiment_status(args.experiment_dir)
    _out(json.dumps(status, indent=1) if args.json else format_status(status))
    return 0


COMMANDS = {"search": _cmd_search, "resume": _cmd_resume, "status": _cmd_status}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except HwnasError as exc:
        # An error raised in a Ray actor arrives wrapped (RayTaskError, traceback in its text): show the
        # error itself.
        cause = getattr(exc, "cause", None)
        print(f"hwnas: error: {cause if isinstance(cause, HwnasError) else exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except BrokenPipeError:  # `hwnas status DIR | head`: the reader left; not an error
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print("hwnas: interrupted; continue with `hwnas resume EXPERIMENT_DIR`", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
