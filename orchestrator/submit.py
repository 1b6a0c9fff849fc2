"""Searches as Ray jobs: what ``hwnas submit`` sends to a cluster, and how ``hwnas jobs`` finds them again.

A job is Ray's (``ray.job_submission``), nothing of our own: its entrypoint is the same ``hwnas search`` (or
``hwnas resume``) a user would type on the head node, with ``--address auto``, so a job behaves exactly as
a search started there, and a stopped or killed job leaves an experiment that ``hwnas submit --resume``
continues. The config travels in the job's ``working_dir`` (validated and with its relative paths made
absolute here first); with ``--ship-source`` this checkout's hwnas packages travel as ``py_modules`` too,
for a cluster that has hwnas's dependencies but not hwnas itself.

Every node must see the experiment storage (and the data) at the same absolute path: the job checks that
from every node before it writes anything (:func:`cluster.check_shared_directory`).
"""
from __future__ import annotations

import json
import os
import shlex
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError, ExperimentError

__all__ = ["JOB_KIND_KEY", "JobSpec", "dashboard_address", "find_job", "hwnas_jobs", "job_client", "resume_job",
           "search_job", "submit_job"]

#: Metadata keys hwnas puts on its jobs (Ray keeps metadata as strings).
JOB_KIND_KEY = "hwnas"  # "search" or "resume"
EXPERIMENT_KEY = "hwnas_experiment"
TRACKING_KEY = "hwnas_tracking_uri"
#: The packages of this checkout that ``--ship-source`` uploads (the top-level folders of the product).
SOURCE_PACKAGES = ("core", "spaces", "searchers", "trainers", "cluster", "orchestrator")
CONFIG_NAME = "hwnas-config.yaml"
SUBMIT_ATTEMPTS = 30  # 2 s apart: a minute for a fresh head's job agent
AUTH_HINT = ("set RAY_AUTH_MODE=token and give the cluster's token as RAY_AUTH_TOKEN, in RAY_AUTH_TOKEN_PATH or in "
             "~/.ray/auth_token (Ray's token authentication)")
ADDRESS_HINT = ("pass --address http://HEAD:8265 (the head node's dashboard; Ray's default port) or set "
                "RAY_ADDRESS=http://HEAD:8265")


@dataclass(frozen=True)
class JobSpec:
    """One job to submit: its id, command line, runtime environment and metadata."""

    submission_id: str
    entrypoint: str
    metadata: dict[str, str]
    config: dict[str, Any] | None = None  # written into the working_dir as CONFIG_NAME
    py_modules: list[str] = field(default_factory=list)
    env_vars: dict[str, str] = field(default_factory=lambda: {"PYTHONUNBUFFERED": "1"})


def dashboard_address(address: str | None) -> str:
    """The cluster's job API: ``--address``, else ``RAY_API_SERVER_ADDRESS`` or ``RAY_ADDRESS`` (Ray's own
    variables), as ``http://HOST:PORT``."""
    given = address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if not given or not given.strip():
        raise ConfigError(f"no Ray cluster to talk to. HINT: {ADDRESS_HINT}.")
    given = given.strip().rstrip("/")
    if given == "auto" or given.startswith("ray://") or ("://" in given and not given.startswith(("http://", "https://"))):
        raise ConfigError(f"--address {given!r} is not a Ray dashboard address: jobs go to the head's dashboard over "
                          f"HTTP, not to its GCS port. HINT: {ADDRESS_HINT}.")
    return given if "://" in given else f"http://{given}"


def bounded(fn: Any, timeout: float, what: str) -> Any:
    """``fn()``, or one clear error after ``timeout`` seconds. Ray's job client waits on its HTTP calls
    without a limit, and a head whose job agent is stuck keeps a submission waiting for many minutes; the
    call runs on a daemon thread, so that the CLI can exit while it still waits."""
    import threading

    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed on to the caller's thread
            outcome["error"] = exc
    worker = threading.Thread(target=run, daemon=True, name="hwnas-job-api")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise ExperimentError(f"{what} within {timeout:g} s. HINT: check the head node (`ray status` there, its "
                              f"session_latest/logs/dashboard*.log), or raise --timeout.")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def job_client(address: str | None, timeout: float = 60.0) -> Any:
    """A ``JobSubmissionClient`` for the cluster; one clear line if nothing answers there."""
    url = dashboard_address(address)
    host, _, port = url.split("://", 1)[1].split("/", 1)[0].rpartition(":")
    if port.isdigit():
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=5.0):
                pass
        except OSError as exc:
            raise ConfigError(f"cannot reach the Ray dashboard at {url}: nothing answers ({exc.strerror or exc}). "
                              f"HINT: start the head with `ray start --head --dashboard-host 0.0.0.0` (dashboard "
                              f"port 8265), check the host and port, or {ADDRESS_HINT}.") from None
    import logging

    from ray.job_submission import JobSubmissionClient

    for name in ("ray.dashboard", "ray.dashboard.modules.dashboard_sdk", "ray._private.runtime_env.packaging",
                 "ray.dashboard.modules.job.sdk"):
        logging.getLogger(name).setLevel(logging.WARNING)  # "Uploading package ...": Ray's chatter
    from ray.exceptions import AuthenticationError

    try:
        return bounded(lambda: JobSubmissionClient(url), timeout, f"the Ray dashboard at {url} did not answer")
    except AuthenticationError:
        raise ConfigError(f"the Ray cluster at {url} requires token authentication and this machine has no token "
                          f"for it. HINT: {AUTH_HINT}.") from None
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot use the Ray job API at {url}: {first}. HINT: the head needs `ray[default]` (the "
                          f"dashboard) and the same Ray version as this machine.") from None


def _new_id(name: str) -> str:
    return f"hwnas-{name}-{uuid.uuid4().hex[:8]}"


def _entrypoint(python: str, *args: str) -> str:
    return shlex.join([python, "-m", "orchestrator.cli", *args, "--address", "auto"])


def _source(ship_source: bool) -> list[str]:
    root = Path(__file__).resolve().parents[1]
    return [str(root / name) for name in SOURCE_PACKAGES] if ship_source else []


def search_job(config: dict[str, Any], *, name: str, storage: Path, tracking_uri: str, python: str = "python",
               ship_source: bool = False) -> JobSpec:
    """The job running ``hwnas search`` of the (already validated, paths absolute) ``config``."""
    experiment = storage / name
    return JobSpec(
        submission_id=_new_id(name), config=config, py_modules=_source(ship_source),
        entrypoint=_entrypoint(python, "search", CONFIG_NAME, "--storage", str(storage), "--tracking-uri", tracking_uri),
        metadata={JOB_KIND_KEY: "search", EXPERIMENT_KEY: str(experiment), TRACKING_KEY: tracking_uri})


def resume_job(experiment: Path, *, name: str, tracking_uri: str | None, python: str = "python",
               ship_source: bool = False) -> JobSpec:
    """The job running ``hwnas resume`` of an experiment directory."""
    args = ["resume", str(experiment)] + (["--tracking-uri", tracking_uri] if tracking_uri else [])
    return JobSpec(submission_id=_new_id(name), entrypoint=_entrypoint(python, *args), py_modules=_source(ship_source),
                   metadata={JOB_KIND_KEY: "resume", EXPERIMENT_KEY: str(experiment), TRACKING_KEY: tracking_uri or ""})


def submit_job(client: Any, spec: JobSpec, timeout: float = 180.0) -> str:
    """Submit ``spec``; its working_dir (the config) is uploaded before this returns. A cluster that has not
    accepted it within ``timeout`` seconds is one clear error (and the job, if it is accepted late, stopped)."""
    try:
        return bounded(lambda: _submit(client, spec), timeout, "the cluster did not accept the job")
    except ExperimentError:
        try:  # accepted after all, but nobody was told its id: it must not run unseen
            bounded(lambda: client.stop_job(spec.submission_id), 10.0, "stopping")
        except Exception:  # noqa: BLE001 - never submitted: nothing to stop
            pass
        raise


def _submit(client: Any, spec: JobSpec) -> str:
    import yaml

    with tempfile.TemporaryDirectory(prefix="hwnas-job-") as workdir:
        if spec.config is not None:
            (Path(workdir) / CONFIG_NAME).write_text(yaml.safe_dump(json.loads(json.dumps(spec.config)), sort_keys=False))
        runtime_env: dict[str, Any] = {"working_dir": workdir, "env_vars": spec.env_vars}
        if spec.py_modules:
            runtime_env["py_modules"] = spec.py_modules
            runtime_env["excludes"] = ["__pycache__", "*.pyc"]
        for attempt in range(SUBMIT_ATTEMPTS):
            try:
                return client.submit_job(entrypoint=spec.entrypoint, submission_id=spec.submission_id,
                                         runtime_env=runtime_env, metadata=spec.metadata)
            except (RuntimeError, ValueError) as exc:
                first = str(exc).strip().splitlines()[0][:300]
                # A head that has just started (or just gained a node) answers this until its job agent is
                # up; Ray itself says "try again later".
                if "No available agent" in first and attempt < SUBMIT_ATTEMPTS - 1:
                    time.sleep(2.0)
                    continue
                raise ExperimentError(f"the cluster refused the job: {first}. HINT: check the head node's "
                                      f"dashboard log (session_latest/logs/dashboard.log) for the reason.") from None
    raise AssertionError("unreachable")


def hwnas_jobs(client: Any) -> list[Any]:
    """hwnas's jobs on the cluster (those with its metadata), oldest first."""
    jobs = [j for j in client.list_jobs() if (j.metadata or {}).get(JOB_KIND_KEY)]
    return sorted(jobs, key=lambda j: j.start_time or 0)


def find_job(client: Any, job_id: str) -> Any:
    """The job ``job_id`` (a submission id); one clear line if the cluster has none of that id."""
    for job in client.list_jobs():
        if job.submission_id == job_id or job.job_id == job_id:
            return job
    known = ", ".join(j.submission_id for j in hwnas_jobs(client)[-5:]) or "none"
    raise ConfigError(f"the cluster has no job {job_id!r} (hwnas's latest: {known}). HINT: see `hwnas jobs list`.")
