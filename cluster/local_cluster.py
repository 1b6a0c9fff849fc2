"""A real multi-process Ray cluster on this machine: ``ray start`` nodes and an ``mlflow server``, each its
own process tree, for the tests, the benchmarks, and trying the cluster path (``hwnas submit``, device
nodes, node failures) on one machine before a real cluster.

Not ``ray.cluster_utils.Cluster``: every node is a separate ``ray start --block`` (its own raylet, object
store, workers and temp dir; the head with its dashboard, so Ray's job API is real), and each is stopped by
the PID recorded here, never by ``ray stop`` (which stops every Ray on the machine). ``--block`` makes
SIGTERM to that PID take the node's processes down with it; :meth:`RayNodes.crash` SIGKILLs the whole tree.

The cluster runs with Ray's token authentication, deliberately: its own token file, given to the nodes and
to clients through ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN_PATH`` (:attr:`RayNodes.auth_env`, what a
user of a secured cluster sets). Whether a bare ``ray start`` would enable it depends on what earlier Ray
starts left in ``~/.ray``; this way nothing does. The caller's own process reads Ray's state over HTTP with
the token (:meth:`RayNodes.api`), leaving its Ray authentication untouched.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

__all__ = ["RayNodes", "client_env", "free_port", "python_without_hwnas", "start_mlflow_server", "stop_process",
           "wait_for"]

ROOT = Path(__file__).resolve().parents[1]


def client_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment with hwnas importable, and never a cluster the caller happens to point at."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("RAY_ADDRESS", None)
    return {**env, **(extra or {})}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_env(auth: dict[str, str], python: str = sys.executable) -> dict[str, str]:
    """As a user who activated ``python``'s venv starts a node: ``python`` first on the PATH. With this
    process's own Python hwnas is importable there; another Python keeps only what it has itself."""
    env = client_env(auth) if python == sys.executable else {**_without("PYTHONPATH", "RAY_ADDRESS"), **auth}
    env["PATH"] = str(Path(python).parent) + os.pathsep + env.get("PATH", "")
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def _without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}


def python_without_hwnas(directory: Path) -> str:
    """A venv at ``directory`` with every dependency of this one but not hwnas: a cluster's Python where
    hwnas was never installed (what ``hwnas submit --ship-source`` is for). Its site-packages points at this
    venv's by a path line, so this venv's ``.pth`` files, hwnas's editable-install hook among them, are not run."""
    import sysconfig

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(directory)], check=True, capture_output=True)
    python = directory / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "hwnas-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return str(python)


def wait_for(url: str, what: str, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before answering at {url}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:  # it answers, if only to say 401 (token auth): it is up
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{what} did not answer at {url} within {timeout:g} s")


def stop_process(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM the recorded PID, then SIGKILL its process group (its own session) if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def start_mlflow_server(directory: Path, port: int) -> subprocess.Popen:
    directory.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{directory / 'server.db'}",
           "--default-artifact-root", str(directory / "server-artifacts"), "--host", "127.0.0.1",
           "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=directory, env=client_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", "mlflow server", proc=proc)
    except RuntimeError:
        stop_process(proc)
        raise
    return proc


@dataclass
class RayNodes:
    """A head node (with the dashboard) and worker nodes, each a ``ray start --block`` process."""

    logs: Path
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    temp_dirs: list[Path] = field(default_factory=list)
    token: str = field(default_factory=lambda: secrets.token_hex(32))
    python: str = sys.executable  # the Python every node runs (its workers and job drivers too)

    @property
    def auth_env(self) -> dict[str, str]:
        """What a client of this cluster sets: Ray's token-auth variables."""
        path = self.logs / "auth_token"
        if not path.exists() or path.read_text() != self.token:  # a logs folder used before holds another token
            self.logs.mkdir(parents=True, exist_ok=True)
            path.write_text(self.token)
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(path)}

    def api(self, path: str) -> dict:
        """GET a dashboard REST path (Ray's job and state APIs) with the cluster's token."""
        request = urllib.request.Request(f"{self.dashboard}{path}", headers={"authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def job(self, submission_id: str) -> dict:
        """Ray's JobDetails of a job, as JSON (status, job_id, driver_info, driver_exit_code, message)."""
        return self.api(f"/api/jobs/{submission_id}")

    def actors(self, job_hex: str) -> list[dict]:
        """The alive actors of a Ray job (by its hex job id), as the state API lists them."""
        out = self.api(f"/api/v0/actors?limit=10000&detail=true&filter_keys=job_id&filter_predicates=%3D"
                       f"&filter_values={job_hex}")
        return [a for a in out["data"]["result"]["result"] if a["state"] == "ALIVE"]

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def gcs_address(self) -> str:
        return f"{self.node_ip()}:{self.gcs_port}"

    def node_ip(self) -> str:
        return next(n["node_ip"] for n in self.alive_nodes() if n["is_head_node"])

    def _start(self, name: str, args: Sequence[str], wrap: Sequence[str] = ()) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("w")
        # Each node its own temp dir, as on separate machines: nodes sharing one would also share (and
        # garbage-collect) each other's runtime_env folders, the job's working_dir among them.
        temp = Path(tempfile.mkdtemp(prefix=f"ray-{name}-", dir="/tmp"))
        self.temp_dirs.append(temp)
        cmd = [*wrap, self.python, "-m", "ray.scripts.scripts", "start", "--block", "--disable-usage-stats",
               "--temp-dir", str(temp), *args]
        proc = subprocess.Popen(cmd, env=node_env(self.auth_env, self.python), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_head(self, *, num_cpus: int, resources: dict[str, float] | None = None) -> None:
        proc = self._start("head", ["--head", "--port", str(self.gcs_port), "--dashboard-host", "127.0.0.1",
                                    "--dashboard-port", str(self.dashboard_port), "--include-dashboard", "true",
                                    "--num-cpus", str(num_cpus), "--resources", json.dumps(resources or {})])
        try:
            wait_for(f"{self.dashboard}/api/version", "the Ray head's dashboard", proc=proc)
        except RuntimeError as exc:
            logs = sorted(self.temp_dirs[-1].glob("session_*/logs/dashboard.*")) + [self.logs / "head.log"]
            raise RuntimeError(f"{exc}; " + " | ".join(f"{p.name}: {p.read_text()[-1500:]}" for p in logs)) from None
        deadline = time.monotonic() + 60
        while not self.alive_nodes():  # the dashboard answers a moment before it knows its node
            if time.monotonic() > deadline:
                raise RuntimeError(f"the head never listed itself: {(self.logs / 'head.log').read_text()[-2000:]}")
            time.sleep(0.5)

    def add_node(self, name: str, *, num_cpus: int, resources: dict[str, float] | None = None,
                 wrap: Sequence[str] = ()) -> None:
        """Start a worker node (``wrap``: a command it runs under, e.g. ``unshare``) and wait until it is alive."""
        before = self.alive_nodes()
        self._start(name, ["--address", self.gcs_address(), "--num-cpus", str(num_cpus),
                           "--resources", json.dumps(resources or {})], wrap)
        deadline = time.monotonic() + 120
        while len(self.alive_nodes()) <= len(before):
            if self.procs[name].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"node {name} did not join: {(self.logs / f'{name}.log').read_text()[-2000:]}")
            time.sleep(0.5)

    def alive_nodes(self) -> list[dict]:
        try:
            nodes = self.api("/api/v0/nodes?limit=1000&detail=true")["data"]["result"]["result"]
        except urllib.error.HTTPError:  # the state API answers 5xx for a moment at start
            return []
        return [n for n in nodes if n["state"] == "ALIVE"]

    def stop(self, name: str) -> None:
        stop_process(self.procs.pop(name))

    def crash(self, name: str) -> None:
        """The node dies at once, as a machine that loses power: SIGKILL to its `ray start` and every process
        below it (raylet, object store, workers), found from the PID recorded when it started."""
        from core.reaper import descendants

        proc = self.procs.pop(name)
        below = descendants(proc.pid)
        proc.kill()
        for pid, _started in below:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:  # gone already
                pass
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for name in [n for n in self.procs if n != "head"] + (["head"] if "head" in self.procs else []):
            self.stop(name)
        for temp in self.temp_dirs:
            shutil.rmtree(temp, ignore_errors=True)
