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
    # One path per step (the quickstart's sandwich trains three): the tests exercise the pipeline, and
    # tests/trainers cover the sandwich and distillation themselves.
    raw["supernet"].update(steps=40, checkpoint_every=10, batch_size=32, sandwich="off", distill=False)
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


# ---------------------------------------------------------------------- killing and comparing runs
def start_cli(*args: str, cwd: Path) -> subprocess.Popen:
    """Start ``hwnas ARGS`` in its own session, stdout and stderr merged, line-buffered text."""
    return subprocess.Popen(hwnas_cmd(*args), cwd=cwd, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def kill_driver(proc: subprocess.Popen) -> set:
    """SIGKILL the driver only (as a crash or the OOM killer would); return the processes below it
    at that moment, as (pid, start time), for :func:`assert_gone`."""
    import signal

    from core.reaper import descendants

    below = descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    return below


def assert_gone(processes: set, *, within: float) -> None:
    """Every process of ``processes`` has exited within ``within`` seconds."""
    import time

    from core.reaper import _alive

    deadline = time.monotonic() + within
    while time.monotonic() < deadline and any(_alive(p) for p in processes):
        time.sleep(0.2)
    left = [p for p in processes if _alive(p)]
    names = [(pid, (Path("/proc") / str(pid) / "cmdline").read_bytes()[:60]) for pid, _ in left]
    assert not left, f"still running {within:.0f} s after the driver was killed: {names}"


def run_watching(args: list[str], cwd: Path, on_line, timeout: float = 600) -> tuple[str, int]:
    """Start the CLI and hand each stdout line, with the process, to ``on_line(line, proc)`` until it
    returns true or the output ends; return the output and the exit code."""
    import time

    proc = start_cli(*args, cwd=cwd)
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            seen.append(line)
            if on_line(line, proc) or time.monotonic() > deadline:
                break
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return "".join(seen), proc.returncode


def run_until(args: list[str], cwd: Path, pattern: str, timeout: float = 300) -> tuple[str, set]:
    """Start the CLI, SIGKILL its driver as soon as a stdout line matches ``pattern``; return its
    output and the processes that were below the driver."""
    import re
    import signal

    below: set = set()

    def kill_at_pattern(line: str, proc: subprocess.Popen) -> bool:
        if re.search(pattern, line):
            below.update(kill_driver(proc))
            return True
        return False

    out, returncode = run_watching(args, cwd, kill_at_pattern, timeout)
    assert returncode == -signal.SIGKILL, f"never reached {pattern!r}:\n{out[-3000:]}"
    return out, below


def candidates(exp_dir: Path) -> dict[str, dict]:
    """The journal's candidate records by id (first wins, as resume reads them)."""
    import json

    out = {}
    for line in (exp_dir / "journal.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["event"] == "candidate":
            out.setdefault(rec["candidate_id"], rec)
    return out


def scores(exp_dir: Path) -> dict[str, tuple]:
    """What must not change when a run is interrupted: each candidate's encoding, generation and metrics."""
    return {cid: (r["encoding"], r["generation"], r["accuracy"], r["latency_ms"], r["params"], r["madds"])
            for cid, r in candidates(exp_dir).items()}


def pareto(exp_dir: Path) -> set[str]:
    import json

    return {r["candidate_id"] for r in json.loads((exp_dir / "summary.json").read_text())["pareto"]}


def assert_same_result(exp_dir: Path, reference: Path) -> None:
    """Same candidates with the same scores, and the same Pareto front, as the uninterrupted run."""
    assert scores(exp_dir) == scores(reference)
    assert pareto(exp_dir) == pareto(reference)


def mlflow_runs(db: Path, exp_dir: Path, name: str) -> tuple[list, list]:
    """(search runs, candidate runs) MLflow holds for the experiment in ``exp_dir``."""
    import json

    from mlflow.tracking import MlflowClient

    uid = json.loads((exp_dir / "experiment.json").read_text())["uid"]
    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.hwnas_uid = '{uid}'", max_results=1000)
    return ([r for r in runs if r.data.tags["hwnas_role"] == "search"],
            [r for r in runs if r.data.tags["hwnas_role"] == "candidate"])


def assert_mlflow_exact(db: Path, exp_dir: Path, name: str) -> None:
    """One FINISHED search run, and exactly one FINISHED run per candidate, Pareto members tagged."""
    parents, cands = mlflow_runs(db, exp_dir, name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    ids = [r.data.params["candidate_id"] for r in cands]
    assert sorted(ids) == sorted(candidates(exp_dir)), "exactly one run per candidate"
    assert all(r.info.status == "FINISHED" for r in cands)
    tagged = {r.data.params["candidate_id"] for r in cands if r.data.tags.get("pareto") == "true"}
    assert tagged == pareto(exp_dir)
