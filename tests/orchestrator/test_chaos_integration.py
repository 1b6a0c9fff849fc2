"""Chaos: SIGKILL the driver of a real search at seeded random moments (start-up, training, search,
finalize), and one trial worker mid-evaluation in the same search; `hwnas resume` after each kill.
The end must be the uninterrupted run's: the same candidates with the same scores, the same Pareto
front, one finished MLflow run per candidate, and no process of a killed driver left 10 s after the
last kill."""
from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest

from cli_helpers import (
    assert_mlflow_exact,
    assert_same_result,
    kill_driver,
    run_cli,
    start_cli,
    tiny_config,
)
from test_failures_integration import _kill_one_trial_worker

# In `-m extended`, out of the default run (its 30-minute budget): test_resume_integration kills a search at
# fixed moments of every stage, and test_failures_integration kills trial workers.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.extended]

SEED = int(os.environ.get("HWNAS_CHAOS_SEED", "20261203"))  # another seed: other kill moments
DRIVER_KILLS = 4


def _attempt(args: list[str], cwd: Path, *, kill_after: float, kill_worker: bool) -> tuple[str, set, bool]:
    """Run the CLI; ``kill_after`` seconds after its first line, SIGKILL the driver (after killing one
    trial worker first, when ``kill_worker``). Returns (output, processes below the killed driver,
    whether it was killed); a run that finished before its moment returns unkilled."""
    proc = start_cli(*args, cwd=cwd)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    while not lines and proc.poll() is None:
        time.sleep(0.05)
    if kill_worker:
        while proc.poll() is None and not any(ln.startswith("[search] gen") for ln in lines):
            time.sleep(0.05)
        assert _kill_one_trial_worker(proc.pid, timeout=60) is not None, "".join(lines)[-2000:]
        while proc.poll() is None and not any("retrying" in ln for ln in lines):
            time.sleep(0.05)
    deadline = time.monotonic() + kill_after
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    below, killed = set(), proc.poll() is None
    if killed:
        below = kill_driver(proc)
    proc.wait(timeout=60)
    reader.join(timeout=30)
    return "".join(lines), below, killed


def _left_after(below: set, seconds: float, found: list) -> threading.Thread:
    """In the background: ``seconds`` from now, note which of ``below`` still run (in ``found``)."""
    from core.reaper import _alive

    def check() -> None:
        time.sleep(seconds)
        for proc in below:
            if _alive(proc):
                try:
                    title = (Path("/proc") / str(proc[0]) / "cmdline").read_bytes()[:80]
                except OSError:
                    continue
                found.append((proc, title))

    thread = threading.Thread(target=check, daemon=True)
    thread.start()
    return thread


def test_random_driver_kills_and_a_worker_kill_change_nothing(tmp_path: Path, reference_run: Path) -> None:
    rng = random.Random(SEED)
    cfg = tiny_config(tmp_path, name="chaos")
    exp_dir = tmp_path / "runs" / "chaos"
    worker_attempt = rng.randrange(1, DRIVER_KILLS)  # not the first: that one may die before the search
    args = ["search", str(cfg), "--storage", str(tmp_path / "runs")]
    outputs, checks, left = [], [], []
    for attempt in range(DRIVER_KILLS):
        out, below, killed = _attempt(args, tmp_path, kill_after=rng.uniform(2.0, 25.0),
                                      kill_worker=attempt == worker_attempt)
        outputs.append(out)
        last = out.strip().splitlines()[-1] if out.strip() else "(no output yet)"
        print(f"attempt {attempt + 1}: {'killed' if killed else 'finished'} at: {last}")  # pytest -s shows it
        if killed:  # the resume starts at once; 10 s on, nothing of the killed driver may be left
            checks.append(_left_after(below, 10.0, left))
        args = ["resume", str(exp_dir)]
        if not killed:
            break
    assert any("retrying (1 of 3 retries)" in out for out in outputs), "\n---\n".join(outputs)[-4000:]
    final = run_cli("resume", str(exp_dir), cwd=tmp_path)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]

    assert checks, "no kill landed"
    for check in checks:
        check.join()
    assert not left, f"processes of a killed driver still running 10 s after its kill: {left}"
    assert_same_result(exp_dir, reference_run)
    assert_mlflow_exact(tmp_path / "mlflow.db", exp_dir, "chaos")
