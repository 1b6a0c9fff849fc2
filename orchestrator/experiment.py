"""The experiment directory: where an experiment's config, journal, checkpoints and results live.

```
<storage>/<name>/
  experiment.json       config, uid, tracking URI (written once, atomically)
  journal.jsonl         stage and candidate events (append-only, fsync'd)
  evaluations.jsonl     evaluation cache keyed by (candidate_id, evaluator fingerprint)
  latency_cache.jsonl   latency measurements keyed by (candidate_id, device, runtime, input shape)
  cost_model.json       the cost model predicting latency (cost.kind kernels / linear / lut; calibrate)
  supernet/supernet.pt  the supernet checkpoint
  .lock                 flock'd by the driver that runs the experiment (its pid inside)
  onnx/<id>.onnx        exported Pareto candidates
  pareto.csv pareto.png summary.json
  retrain/<retrain_id>/ a stand-alone retrain: Ray Train checkpoints, model.onnx, model.pt, arch.json, result.json
  retrain/              retrains.csv, ranking.json, ranking.png (the ranking check)
  tune/                 Ray Tune's own files
```
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from core.errors import ConfigError, ExperimentError
from core.jsonio import read_json, write_json_atomic

from .config import ExperimentConfig, config_from_json
from .journal import Journal

__all__ = ["Experiment", "EXPERIMENT_FILE"]

EXPERIMENT_FILE = "experiment.json"
LOCK_FILE = ".lock"
#: 2: the config is stored complete (every plugin setting with its default filled in). 1 is still read.
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass
class Experiment:
    directory: Path
    config: ExperimentConfig
    uid: str
    tracking_uri: str

    @property
    def journal(self) -> Journal:
        return Journal(self.directory / "journal.jsonl")

    @property
    def supernet_path(self) -> Path:
        return self.directory / "supernet" / "supernet.pt"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the experiment for one driver: a second `hwnas resume` of it is refused, not interleaved.

        An OS lock (flock) on ``.lock``: it goes with the process, so a killed driver never leaves a
        stale lock behind.
        """
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                raise ExperimentError(
                    f"experiment {self.directory} is being run by another hwnas process (pid {holder}); nothing "
                    f"was changed. HINT: wait for it to finish, or stop that process first."
                ) from None
            yield
        finally:
            os.close(fd)  # releases the lock

    def record_holder(self) -> None:
        """Write this process's pid into the lock file, for the message a second driver gets (called once
        the run is sure to go ahead: a refused run writes nothing)."""
        (self.directory / LOCK_FILE).write_text(str(os.getpid()))

    @classmethod
    def create(cls, config: ExperimentConfig, storage: Path, tracking_uri: str) -> "Experiment":
        directory = cls.new_directory(config, storage)
        exp = cls(directory=directory, config=config, uid=uuid.uuid4().hex, tracking_uri=tracking_uri)
        write_json_atomic(directory / EXPERIMENT_FILE, {
            "schema_version": SCHEMA_VERSION, "uid": exp.uid, "created": time.time(),
            "tracking_uri": tracking_uri, "config": config.to_dict(),
        })
        (directory / LOCK_FILE).touch()
        return exp

    @staticmethod
    def new_directory(config: ExperimentConfig, storage: Path) -> Path:
        """Where ``config``'s experiment goes; raises if that would touch an existing one (cheap: call it
        before starting anything)."""
        if storage.exists() and not storage.is_dir():
            raise ExperimentError(f"--storage {storage} is a file, not a directory; nothing was changed. "
                                  f"HINT: give a directory (it is created if missing).")
        directory = (storage / config.name).resolve()
        if directory.exists() and not directory.is_dir():
            raise ExperimentError(f"{directory} is a file, not a directory; nothing was changed. "
                                  f"HINT: pick another name (--set name=...) or --storage.")
        if (directory / EXPERIMENT_FILE).exists():
            raise ExperimentError(
                f"experiment directory {directory} already holds an experiment; nothing was changed. "
                f"HINT: continue it with `hwnas resume {directory}`, or pick another name "
                f"(--set name=...) or --storage."
            )
        if directory.exists() and any(directory.iterdir()):
            raise ExperimentError(
                f"directory {directory} exists and is not empty, but is not an hwnas experiment; nothing was "
                f"changed. HINT: pick another name (--set name=...) or --storage."
            )
        return directory

    @classmethod
    def open(cls, directory: str | Path, tracking_uri: str | None = None) -> "Experiment":
        directory = Path(directory).resolve()
        meta_path = directory / EXPERIMENT_FILE
        if directory.exists() and not directory.is_dir():
            raise ExperimentError(f"{directory} is a file, not an experiment directory. "
                                  f"HINT: pass the directory `hwnas search` printed, e.g. hwnas-runs/<name>")
        if not directory.is_dir():
            raise ExperimentError(f"{directory} does not exist. HINT: pass the directory `hwnas search` printed")
        if not meta_path.is_file():
            raise ExperimentError(
                f"{directory} is not an hwnas experiment directory (no {EXPERIMENT_FILE}). "
                f"HINT: pass the directory `hwnas search` printed, e.g. hwnas-runs/<name>"
            )
        try:
            meta: dict[str, Any] = read_json(meta_path)
            if not isinstance(meta, dict):
                raise ValueError(f"a {type(meta).__name__}, not an object")
            if not isinstance(meta.get("uid"), str) or not isinstance(meta.get("tracking_uri"), str):
                raise ValueError("no uid or tracking_uri")
            if meta.get("schema_version") not in READABLE_VERSIONS:
                raise ValueError(f"schema_version {meta.get('schema_version')!r}")
            config = config_from_json(meta["config"], schema_version=meta["schema_version"])
        except (ValueError, KeyError, TypeError, AttributeError, ConfigError) as exc:
            raise ExperimentError(
                f"{meta_path} is damaged or from another hwnas version ({exc}). HINT: start a new experiment"
            ) from None
        return cls(directory=directory, config=config, uid=meta["uid"],
                   tracking_uri=tracking_uri or meta["tracking_uri"])
