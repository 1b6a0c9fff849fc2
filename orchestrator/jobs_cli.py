"""``hwnas submit`` and ``hwnas jobs``: a search as a Ray job on a cluster, and the jobs afterwards.

``hwnas submit CONFIG --address http://HEAD:8265`` validates the config here with the same errors as
``hwnas search`` and submits a Ray job that runs the search on the cluster; the shell that submitted can
close. ``hwnas submit --resume EXPERIMENT_DIR`` continues an experiment as a job. ``hwnas jobs list |
status JOB | logs JOB [--follow] | stop JOB`` are Ray's job API, restricted to hwnas's jobs.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
from pathlib import Path
from typing import Any, Callable

from core.errors import ConfigError

from .report import out

__all__ = ["add_jobs_commands"]

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def _address_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", metavar="URL", help="the head node's dashboard, http://HEAD:8265 (default: "
                   "$RAY_API_SERVER_ADDRESS or $RAY_ADDRESS)")


def add_jobs_commands(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = sub.add_parser("submit", help="run a search (or resume one) as a Ray job on a cluster",
                       description="Validate the config here, then submit `hwnas search` as a Ray job: the search "
                                   "runs on the cluster and this shell may close. Storage, data and a SQLite "
                                   "tracking store must be at the same path on every node.")
    p.add_argument("config", nargs="?", help="experiment config (YAML), e.g. examples/quickstart.yaml")
    p.add_argument("--resume", metavar="EXPERIMENT_DIR", help="resume this experiment as a job instead")
    _address_arg(p)
    p.add_argument("--storage", default="hwnas-runs", metavar="DIR",
                   help="parent of experiment directories, shared by every node (default: ./hwnas-runs, made absolute)")
    p.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI (default: sqlite:///<working dir>/"
                   "mlflow.db, made absolute; on a real cluster use a tracking server, http://...)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value by dotted path (repeatable)")
    p.add_argument("--ship-source", action="store_true",
                   help="upload this checkout's hwnas packages with the job (for a cluster without hwnas installed)")
    p.add_argument("--python", default="python", help="the Python the job runs on the head node (default: python)")
    p.add_argument("--wait", action="store_true", help="follow the job's output until it ends; exit with its code")
    p.add_argument("--timeout", type=float, default=180.0, metavar="SECONDS",
                   help="how long the cluster may take to accept the job (default 180)")

    p = sub.add_parser("jobs", help="list, inspect, follow or stop hwnas's Ray jobs",
                       description="Ray's job API for hwnas's jobs on a cluster.")
    jobs = p.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    q = jobs.add_parser("list", help="hwnas's jobs, oldest first")
    _address_arg(q)
    q.add_argument("--json", action="store_true", help="one JSON object per job")
    for action, text in (("status", "a job's status and experiment"), ("logs", "a job's output"),
                         ("stop", "stop a job; its experiment stays resumable")):
        q = jobs.add_parser(action, help=text)
        q.add_argument("job", metavar="JOB", help="the job id `hwnas submit` printed (hwnas-NAME-XXXXXXXX)")
        _address_arg(q)
        if action == "logs":
            q.add_argument("--follow", action="store_true", help="keep printing until the job ends")
        if action == "stop":
            q.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for it to stop (default 60)")
        if action == "status":
            q.add_argument("--json", action="store_true", help="print one JSON object")
    return {"submit": _cmd_submit, "jobs": _cmd_jobs}


# ------------------------------------------------------------------------------------------ submit
def _cmd_submit(args: argparse.Namespace) -> int:
    from .submit import job_client, submit_job

    if (args.config is None) == (args.resume is None):
        raise ConfigError("hwnas submit takes a CONFIG or --resume EXPERIMENT_DIR (one of them). HINT: e.g. "
                          "`hwnas submit examples/quickstart.yaml --address http://HEAD:8265`.")
    spec = _search_spec(args) if args.config is not None else _resume_spec(args)
    if not args.timeout > 0:
        raise ConfigError(f"--timeout must be a number of seconds > 0, got {args.timeout:g}. HINT: e.g. --timeout 180.")
    client = job_client(args.address, timeout=args.timeout)
    job_id = submit_job(client, spec, timeout=args.timeout)
    experiment = spec.metadata["hwnas_experiment"]
    address = client.get_address()
    out(f"hwnas: submitted job {job_id} to {address}")
    out(f"hwnas: experiment {experiment}")
    out(f"hwnas: follow it with `hwnas jobs logs {job_id} --follow --address {address}`; stop it with "
        f"`hwnas jobs stop {job_id} --address {address}`; resume a stopped one with "
        f"`hwnas submit --resume {experiment} --address {address}`")
    return _follow(client, job_id) if args.wait else 0


def _search_spec(args: argparse.Namespace) -> Any:
    from .config import load_config
    from .experiment import Experiment
    from .submit import search_job
    from .tracking import default_tracking_uri

    cfg = load_config(args.config, args.overrides)  # the same errors as `hwnas search`, nothing sent
    storage = Path(args.storage).absolute()
    Experiment.new_directory(cfg, storage)  # an experiment already there (where this machine sees it)
    return search_job(cfg.to_dict(), name=cfg.name, storage=storage,
                      tracking_uri=args.tracking_uri or default_tracking_uri(), python=args.python,
                      ship_source=args.ship_source)


def _resume_spec(args: argparse.Namespace) -> Any:
    from .experiment import Experiment
    from .submit import resume_job

    if args.overrides:
        raise ConfigError("--set does not apply to --resume: an experiment resumes with its own config. HINT: drop "
                          "--set, or submit the config anew under another name.")
    exp = Experiment.open(args.resume, args.tracking_uri)
    return resume_job(exp.directory, name=exp.config.name, tracking_uri=args.tracking_uri, python=args.python,
                      ship_source=args.ship_source)


# ------------------------------------------------------------------------------------------ jobs
def _cmd_jobs(args: argparse.Namespace) -> int:
    from .submit import find_job, hwnas_jobs, job_client

    client = job_client(args.address)
    if args.jobs_command == "list":
        jobs = hwnas_jobs(client)
        for job in jobs:
            out(json.dumps(_job_dict(job)) if args.json else _job_line(job))
        if not jobs and not args.json:
            out("hwnas: no hwnas jobs on this cluster")
        return 0
    job = find_job(client, args.job)
    if args.jobs_command == "status":
        out(json.dumps(_job_dict(job), indent=1) if args.json else _job_text(job))
        return 0
    if args.jobs_command == "logs":
        if args.follow:
            return _follow(client, job.submission_id)
        out(client.get_job_logs(job.submission_id).rstrip("\n"))
        return 0
    return _stop(client, job, args.timeout)


def _stop(client: Any, job: Any, timeout: float) -> int:
    import time

    experiment = (job.metadata or {}).get("hwnas_experiment", "?")
    if str(job.status) in TERMINAL:
        out(f"hwnas: job {job.submission_id} already ended ({job.status})")
        return 0
    client.stop_job(job.submission_id)
    deadline = time.monotonic() + timeout
    while str(client.get_job_status(job.submission_id)) not in TERMINAL:
        if time.monotonic() > deadline:
            raise ConfigError(f"job {job.submission_id} did not stop within {timeout:g} s. HINT: run `hwnas jobs "
                              f"stop` again, or raise --timeout.")
        time.sleep(0.5)
    out(f"hwnas: job {job.submission_id} stopped; resume its experiment with "
        f"`hwnas submit --resume {experiment} --address {client.get_address()}`")
    return 0


def _follow(client: Any, job_id: str) -> int:
    """Print the job's output as it comes until the job ends; the job's driver exit code (0 on success)."""
    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            print(chunk, end="", flush=True)
    try:
        asyncio.run(tail())
    except KeyboardInterrupt:
        out(f"hwnas: stopped following; job {job_id} goes on (`hwnas jobs stop {job_id}` stops it)")
        return 130
    info = client.get_job_info(job_id)
    out(f"hwnas: job {job_id} {info.status}")
    if str(info.status) == "SUCCEEDED":
        return 0
    if _lacks_hwnas(client.get_job_logs(job_id)):
        out(f"hwnas: {NO_HWNAS_HINT}")
    return info.driver_exit_code if info.driver_exit_code not in (None, 0) else 1


#: What a job's output says when the cluster's Python cannot import hwnas, and what to do about it.
NO_HWNAS_HINT = ("the cluster's Python has no hwnas (the job could not import it). HINT: submit again with "
                 "--ship-source to upload this checkout's packages with the job, or install hwnas on every node.")


def _lacks_hwnas(logs: str) -> bool:
    from .submit import SOURCE_PACKAGES

    return any(f"No module named '{name}'" in logs for name in SOURCE_PACKAGES)


def _when(ms: int | None) -> str:
    return "-" if not ms else datetime.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _job_dict(job: Any) -> dict[str, Any]:
    meta = job.metadata or {}
    return {"job": job.submission_id, "status": str(job.status), "kind": meta.get("hwnas"),
            "experiment": meta.get("hwnas_experiment"), "tracking_uri": meta.get("hwnas_tracking_uri") or None,
            "started": _when(job.start_time), "ended": _when(job.end_time), "message": job.message,
            "driver_exit_code": job.driver_exit_code}


def _job_line(job: Any) -> str:
    d = _job_dict(job)
    return f"{d['job']}  {d['status']:<9}  {d['kind']:<6}  {d['started']}  {d['experiment']}"


def _job_text(job: Any) -> str:
    d = _job_dict(job)
    lines = [f"job {d['job']}: {d['status']} ({d['kind']})", f"  experiment: {d['experiment']}",
             f"  started {d['started']}, ended {d['ended']}"]
    if d["message"]:
        lines.append(f"  message: {str(d['message']).strip().splitlines()[0][:300]}")
    if d["status"] == "FAILED" and _lacks_hwnas(str(d["message"] or "")):
        lines.append(f"  {NO_HWNAS_HINT}")
    elif d["status"] in ("FAILED", "STOPPED"):
        lines.append(f"  resume: hwnas submit --resume {d['experiment']} --address ...")
    return "\n".join(lines)
