"""Is a directory the same directory on every node of the Ray cluster?

An experiment directory holds the journal, the checkpoints and the latency cache that trials, the
supernet trainer and the latency actor write from whichever node Ray places them on. A node that does not
mount it at the same path would fail mid-search (or, worse, write into a private copy), so a search on a
cluster checks first: a task pinned to every alive node reads a probe file the driver wrote and writes one
of its own, which the driver then reads.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from core.errors import ExperimentError

__all__ = ["check_shared_directory"]

PROBE_PREFIX = ".hwnas-probe-"


def _probe(directory: str, token: str, node_id: str) -> str | None:
    """On one node: read the driver's probe, write this node's. ``None``, or what went wrong."""
    driver_file = Path(directory) / f"{PROBE_PREFIX}{token}-driver"
    try:
        if driver_file.read_text() != token:
            return f"{driver_file} holds other content there (a different directory at the same path)"
    except OSError as exc:
        return f"cannot read {driver_file} there ({exc.strerror or exc})"
    try:
        (Path(directory) / f"{PROBE_PREFIX}{token}-{node_id}").write_text(token)
    except OSError as exc:
        return f"cannot write into {directory} there ({exc.strerror or exc})"
    return None


def check_shared_directory(directory: str | os.PathLike[str], *, timeout_s: float = 60.0) -> None:
    """Check that every alive node of the connected cluster reads and writes ``directory`` as this process does.

    The directory is created if missing (and removed again if the check fails and it was created here); the
    probe files are always removed.

    Raises:
        ExperimentError: naming the first node that cannot see the directory, or that did not answer.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    path = Path(directory).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())  # what a failed check leaves in place
    token = uuid.uuid4().hex
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / f"{PROBE_PREFIX}{token}-driver").write_text(token)
    except OSError as exc:
        _remove_created(path, existing)
        raise ExperimentError(f"cannot write into the experiment storage {path} ({exc.strerror or exc}); nothing "
                              f"was started. HINT: give a --storage directory this user can write.") from None
    probe = ray.remote(num_cpus=0, max_retries=0)(_probe)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    problem = None
    try:
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(str(path), token, n["NodeID"]) for n in nodes]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        for node, ref in zip(nodes, refs):
            problem = (f"it did not answer within {timeout_s:g} s" if ref not in ready else
                       _answer(ref) or _read_back(path, token, node["NodeID"]))
            if problem:
                raise ExperimentError(
                    f"the experiment storage {path} is not shared with node {_describe(node)}: {problem}; nothing "
                    f"was started. HINT: put --storage on a filesystem every node mounts at the same path (NFS, "
                    f"a shared volume; see cluster/recipes/), or run where all nodes see it.")
    finally:
        for leftover in path.glob(f"{PROBE_PREFIX}{token}-*"):
            leftover.unlink(missing_ok=True)
        if problem:
            _remove_created(path, existing)


def _answer(ref: Any) -> str | None:
    import ray

    try:
        return ray.get(ref)
    except Exception as exc:  # the task itself could not run there (a dead worker, a missing module)
        return f"its probe task failed ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]})"


def _read_back(path: Path, token: str, node_id: str) -> str | None:
    """The node's probe must be visible here: a node writing into a private copy is caught too."""
    try:
        if (path / f"{PROBE_PREFIX}{token}-{node_id}").read_text() == token:
            return None
    except OSError:
        pass
    return f"a file it wrote into {path} is not visible from this process (the node writes a private copy)"


def _describe(node: dict[str, Any]) -> str:
    return f"{node.get('NodeManagerAddress', '?')} (node id {node['NodeID'][:12]})"


def _remove_created(path: Path, existing: Path) -> None:
    """Undo the ``mkdir`` of a failed check: the directories it created below ``existing``, if empty."""
    for p in (path, *path.parents):
        if p == existing:
            return
        try:
            p.rmdir()
        except OSError:
            return
