"""The experiment directory: where an experiment's config, journal, checkpoints and results live.

```
<storage>/<name>/
  experiment.json       config, uid, tracking URI (written once, atomically)
  journal.jsonl         stage and candidate events (append-only, fsync'd)
  evaluations.jsonl     evaluation cache keyed by (candidate_id, evaluator fingerprint)
  latency_cache.jsonl   latency measurements keyed by (candidate_id, device, runtime, input shape)
  cost_model.json       the cost model predicting latency (cost.kind linear / lut; calibrate stage)
  supernet/supernet.pt  the supernet checkpoint
  onnx/<id>.onnx        exported Pareto candidates
  pareto.csv pareto.png summary.json
  tune/                 Ray Tune's own files
```
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigError, ExperimentError
from core.jsonio import read_json, write_json_atomic

from .config import ExperimentConfig, config_from_json
from .journal import Journal

__all__ = ["Experiment", "EXPERIMENT_FILE"]

EXPERIMENT_FILE = "experiment.json"
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

    @classmethod
    def create(cls, config: ExperimentConfig, storage: Path, tracking_uri: str) -> "Experiment":
        directory = (storage / config.name).resolve()
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
        exp = cls(directory=directory, config=config, uid=uuid.uuid4().hex, tracking_uri=tracking_uri)
        write_json_atomic(directory / EXPERIMENT_FILE, {
            "schema_version": SCHEMA_VERSION, "uid": exp.uid, "created": time.time(),
            "tracking_uri": tracking_uri, "config": config.to_dict(),
        })
        return exp

    @classmethod
    def open(cls, directory: str | Path, tracking_uri: str | None = None) -> "Experiment":
        directory = Path(directory).resolve()
        meta_path = directory / EXPERIMENT_FILE
        if not directory.is_dir():
            raise ExperimentError(f"{directory} does not exist. HINT: pass the directory `hwnas search` printed")
        if not meta_path.is_file():
            raise ExperimentError(
                f"{directory} is not an hwnas experiment directory (no {EXPERIMENT_FILE}). "
                f"HINT: pass the directory `hwnas search` printed, e.g. hwnas-runs/<name>"
            )
        try:
            meta: dict[str, Any] = read_json(meta_path)
            if meta.get("schema_version") not in READABLE_VERSIONS:
                raise ValueError(f"schema_version {meta.get('schema_version')!r}")
            config = config_from_json(meta["config"], schema_version=meta["schema_version"])
        except (ValueError, KeyError, TypeError, ConfigError) as exc:
            raise ExperimentError(
                f"{meta_path} is damaged or from another hwnas version ({exc}). HINT: start a new experiment"
            ) from None
        return cls(directory=directory, config=config, uid=meta["uid"],
                   tracking_uri=tracking_uri or meta["tracking_uri"])
