"""The local MLflow SQLite store hwnas creates: whole or not at all, and in write-ahead-log mode.

MLflow creating a store in place leaves a half-migrated database, unusable for good, when the driver is
killed during those seconds (seen in the chaos test): the store is built in a temporary file and linked
into place. In SQLite's default rollback-journal mode every commit costs several fsyncs (a candidate
is one commit, :mod:`orchestrator.finished_runs`; a retrain or the supernet's curve many): write-ahead
logging cut MLflow's cost per commit about threefold (``benchmarks/orchestration_overhead.py``). WAL needs shared memory between the
processes that open the file, so it is left off on network file systems, where a reader on another host
(an ``mlflow ui``) would see a broken database.
"""
from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["create_sqlite_store", "on_network_filesystem", "relax_commit_sync"]

#: File system types where SQLite's WAL mode is unsafe (shared memory does not span hosts).
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "ceph", "glusterfs", "9p",
                       "afs", "beegfs")


def create_sqlite_store(path: Path) -> None:
    """Create a missing MLflow SQLite store at ``path`` (an existing one is left as it is)."""
    if path.exists():
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.unlink(tmp)  # SQLite creates it
    try:
        store = SqlAlchemyStore(f"sqlite:///{tmp}", str(path.parent / "mlartifacts"))
        store.engine.dispose()
        if not on_network_filesystem(path.parent):
            with sqlite3.connect(tmp) as db:  # the mode is stored in the file: every later connection uses it
                db.execute("PRAGMA journal_mode=WAL")
            db.close()
        try:
            os.link(tmp, path)  # create-if-absent: a store another driver made meanwhile is kept
        except FileExistsError:
            pass
    finally:
        Path(tmp).unlink(missing_ok=True)


def on_network_filesystem(directory: Path, mounts_text: str | None = None) -> bool:
    """Whether ``directory`` lies on a network file system (by the longest mount point in /proc/mounts,
    or ``mounts_text`` in its format; False where that cannot be read)."""
    try:
        mounts = (Path("/proc/mounts").read_text() if mounts_text is None else mounts_text).splitlines()
    except OSError:
        return False
    target, best, kind = str(Path(directory).resolve()), "", ""
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        if (target == point or target.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
            best, kind = point, fields[2]
    return kind.split(".")[-1] in NETWORK_FILESYSTEMS or kind.startswith("fuse.sshfs")


def relax_commit_sync(client: Any) -> bool:
    """Let a WAL-mode store's commits skip the fsync (``synchronous=NORMAL``: the log is synced at
    checkpoints). Under load an fsync per commit made MLflow several times slower per candidate. A power
    loss may drop the last commits, never corrupt the store; the journal keeps them and ``hwnas resume``
    logs them again. False where the store is not in WAL mode or MLflow's client is not the SQL one."""
    try:
        engine = client._tracking_client.store.engine  # MLflow's SqlAlchemyStore (no public handle)
        with engine.connect() as connection:
            if connection.exec_driver_sql("PRAGMA journal_mode").scalar() != "wal":
                return False
    except Exception:  # noqa: BLE001 - another store or MLflow version: leave it as it is
        return False
    from sqlalchemy import event

    event.listen(engine, "connect", lambda dbapi, _record: dbapi.execute("PRAGMA synchronous=NORMAL"))
    engine.dispose()  # pooled connections were opened before the listener: new ones get the setting
    return True
