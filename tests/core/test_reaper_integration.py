"""The reaper: when a driver is SIGKILLed, the processes below it are stopped by pid within seconds;
when it exits normally, the reaper exits too. Real processes, real signals."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.reaper import _alive, descendants

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the reaper reads /proc")

ROOT = Path(__file__).resolve().parents[2]

# A stand-in driver: starts its reaper, then a child that starts a grandchild (the shape of a driver,
# its raylet and the raylet's agents), and a child in its own process group (a Ray worker's shape).
DRIVER = """
import subprocess, sys, time
from core.reaper import start_reaper
start_reaper()
subprocess.Popen([sys.executable, "-c", "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"])
subprocess.Popen(["sleep", "300"], start_new_session=True)
print("ready", flush=True)
time.sleep(float(sys.argv[1]))
"""


def _start(seconds: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(seconds)], stdout=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    assert proc.stdout.readline().strip() == "ready"  # type: ignore[union-attr]
    return proc


def _wait_gone(procs: set, seconds: float) -> list:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in procs):
        time.sleep(0.1)
    return [p for p in procs if _alive(p)]


def _wait_for_tree(pid: int, size: int) -> set:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        below = descendants(pid)
        if len(below) >= size:
            return below
        time.sleep(0.05)
    raise AssertionError(f"the stand-in driver never had {size} processes below it: {below}")


def test_a_killed_drivers_processes_are_stopped_by_pid(tmp_path: Path) -> None:
    proc = _start(300)
    below = _wait_for_tree(proc.pid, 4)  # reaper, child, grandchild, own-group child
    time.sleep(0.5)  # the reaper's first look
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _wait_gone(below, 10) == []


def test_the_reaper_leaves_with_a_driver_that_exits_normally(tmp_path: Path) -> None:
    proc = _start(1.0)
    below = _wait_for_tree(proc.pid, 4)
    reaper = {p for p in below if b"core.reaper" in (Path("/proc") / str(p[0]) / "cmdline").read_bytes()}
    assert len(reaper) == 1
    assert proc.wait(timeout=30) == 0
    assert _wait_gone(reaper, 10) == []
