"""How busy the node was while a measurement ran: the CPU time other processes took.

A latency measured while other processes compete for the cores is slower and noisier than the
device's, and its CV does not always show it (a steady neighbour slows every run alike). The load
average cannot tell either: it lags by a minute and counts the measurement itself. So the service
reads the node's busy CPU time (``/proc/stat``) before and after a measurement and subtracts its own
process's CPU time: what is left is the work of *other* processes during the measurement, in cores.

Linux only; elsewhere the figure is ``None`` and only the CV marks a noisy measurement.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

__all__ = ["CpuWindow", "busy_verdict", "node_cpus"]

# /proc/stat's "cpu" line: user nice system idle iowait irq softirq steal guest guest_nice (USER_HZ ticks).
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user, nice, system, irq, softirq, steal (guest is inside user)


def node_cpus() -> int:
    """CPUs this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _busy_seconds() -> float | None:
    """The node's busy CPU time since boot, all cores, in seconds; ``None`` without ``/proc/stat``."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:]]
    return sum(ticks[i] for i in _BUSY_FIELDS if i < len(ticks)) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuWindow:
    """Times one stretch of work and what other processes did meanwhile.

    Use as a context manager around the measurement; afterwards :attr:`foreign_cores` is the mean
    number of cores other processes kept busy (``None`` where ``/proc/stat`` is missing or the
    window was too short to tell: under 0.1 s).
    """

    foreign_cores: float | None = None
    seconds: float = 0.0

    def __enter__(self) -> CpuWindow:
        self._busy, self._own, self._wall = _busy_seconds(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        busy, own, wall = _busy_seconds(), time.process_time(), time.perf_counter()
        self.seconds = wall - self._wall
        if busy is None or self._busy is None or self.seconds < 0.1:
            return
        # Tick granularity (10 ms) can make a short window read slightly negative: clamp at 0.
        self.foreign_cores = max(0.0, ((busy - self._busy) - (own - self._own)) / self.seconds)


def busy_verdict(foreign_cores: float | None, *, threads: int, cpus: int | None = None) -> str | None:
    """Why a measurement with ``threads`` threads was taken on a busy node, or ``None`` if it was not.

    The node is busy when other processes used more cores than the measurement left free, less half
    a core of slack for the runtime's own daemons (Ray's raylet and GCS take a few percent): on a
    2-core node, one other busy process is already too many for a 1-thread measurement.
    """
    if foreign_cores is None:
        return None
    cpus = node_cpus() if cpus is None else cpus
    allowed = max(0.5, cpus - threads - 0.5)
    if foreign_cores > allowed:
        return (f"other processes kept {foreign_cores:.2f} of the node's {cpus} cores busy "
                f"(at most {allowed:.1f} leave a {threads}-thread measurement alone)")
    return None
