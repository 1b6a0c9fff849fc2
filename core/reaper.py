"""The local Ray never outlives the process that started it.

When a driver that started an embedded Ray is killed (SIGKILL, OOM killer), Ray's head processes die
with it, but the raylet's agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) notice only after
30-90 s, and a resume started at once competes with them for the CPUs. :func:`start_reaper` starts a
small watcher in its own session: it keeps a list of the driver's descendants (pid and start time, so
a reused pid is never touched) and, once the driver is gone, stops each of them by pid: SIGTERM, then
SIGKILL after a grace period. A driver that exits normally has shut Ray down already; the watcher then
finds nothing left and exits.

Linux only (it reads ``/proc``); elsewhere :func:`start_reaper` does nothing. One watcher per driver
process: it covers every Ray the driver starts, one after the other.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["descendants", "start_reaper"]

POLL_S = 0.2
GRACE_S = 3.0
_PROC = Path("/proc")

Process = tuple[int, int]  # (pid, start time in clock ticks since boot): a process, never a reused pid


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of ``pid``, or None when it does not exist."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[19])


def _processes() -> dict[int, tuple[str, int, int]]:
    out = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            info = _stat(int(entry.name))
            if info is not None:
                out[int(entry.name)] = info
    return out


def descendants(*pids: int) -> set[Process]:
    """Every living process below ``pids`` in the process tree, as (pid, start time)."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for child, (_, parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, todo = set(), [c for pid in pids for c in children.get(pid, [])]
    while todo:
        child = todo.pop()
        if child in table and (child, table[child][2]) not in found:
            found.add((child, table[child][2]))
            todo.extend(children.get(child, []))
    return found


def _alive(proc: Process) -> bool:
    info = _stat(proc[0])
    return info is not None and info[2] == proc[1] and info[0] not in ("Z", "X")


def _signal(procs: set[Process], sig: int) -> None:
    for proc in procs:
        if _alive(proc):
            try:
                os.kill(proc[0], sig)
            except OSError:
                pass


def reap_after(driver: Process) -> None:
    """Watch ``driver``; when it is gone, stop the descendants it last had."""
    known: set[Process] = set()
    me = os.getpid()
    while _alive(driver):
        known = {p for p in known if _alive(p)} | {p for p in descendants(driver[0]) if p[0] != me}
        time.sleep(POLL_S)
    # Processes started since the last look are children of ones known (the raylet's agents at start-up):
    # look once more below those still there, before their parents die and they are orphaned.
    left = {p for p in known if _alive(p)}
    left |= {p for p in descendants(*(pid for pid, _ in left)) if p[0] != me}
    _signal(left, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and any(_alive(p) for p in left):
        time.sleep(0.1)
    _signal(left, signal.SIGKILL)


_STARTED: dict[int, subprocess.Popen] = {}


def start_reaper() -> subprocess.Popen | None:
    """Start the watcher of this process, once; None where /proc is missing."""
    driver_pid = os.getpid()
    if driver_pid in _STARTED and _STARTED[driver_pid].poll() is None:
        return _STARTED[driver_pid]
    info = _stat(driver_pid)
    if info is None:
        return None
    _STARTED[driver_pid] = subprocess.Popen(
        [sys.executable, "-m", "core.reaper", str(driver_pid), str(info[2])],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C or kill of the driver's process group spares the watcher
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    )
    return _STARTED[driver_pid]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.reaper", description=__doc__.split("\n")[0])
    parser.add_argument("pid", type=int)
    parser.add_argument("start_time", type=int)
    args = parser.parse_args(argv)
    reap_after((args.pid, args.start_time))
    return 0


if __name__ == "__main__":
    sys.exit(main())
