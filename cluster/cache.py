"""The latency cache: every measurement kept for good, keyed by what determines it.

What determines a measurement: the candidate, the device, the runtime (and its version), the input
shape, and the measurement settings (warm-up, runs, rounds, CV threshold, input seed): a figure taken
with 5 runs never answers for one asked with 300. Ray-free: the latency actor holds one, and anything
that reads or shares a cache file can too.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from core.errors import ExperimentError
from core.jsonio import append_jsonl, canonical_json, read_jsonl

__all__ = ["CACHE_SCHEMA", "LatencyCache"]

#: Version of a cache record; records of another version are ignored, not misread (version 1 had no
#: measurement settings in its key: such records are measured again once).
CACHE_SCHEMA = 2


class LatencyCache:
    """Measurements keyed by (candidate_id, device, runtime, input shape, settings), optionally on disk.

    The file is JSON lines appended with :func:`core.jsonio.append_jsonl` (one fsync'd write per
    record), so any number of actors and experiments may share it and a killed writer loses at most
    the record in flight. Records of another schema version are ignored, not misread.

    Args:
        path: The JSON-lines file; ``None`` keeps the cache in memory only.

    Raises:
        ExperimentError: The file holds a malformed record of this schema version.
    """

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self._path = None if path is None else Path(path)
        self._records: dict[str, dict[str, Any]] = {}
        if self._path is not None:
            self._load(self._path)

    @staticmethod
    def key(candidate_id: str, device: str, runtime: str, input_shape: Sequence[int],
            settings: Mapping[str, Any]) -> str:
        """The canonical cache key; ``settings`` is :meth:`~cluster.stats.MeasureOptions.settings`."""
        return canonical_json([candidate_id, device, runtime, [int(d) for d in input_shape], dict(settings)])

    def _load(self, path: Path) -> None:
        try:
            for record in read_jsonl(path):
                if not isinstance(record, dict):
                    raise TypeError(f"a {type(record).__name__}, not an object")
                if record.get("schema") == CACHE_SCHEMA:
                    self._records[self.key(record["candidate_id"], record["device"], record["runtime"],
                                           record["input_shape"], record["settings"])] = record
        except (ValueError, KeyError, TypeError) as exc:
            raise ExperimentError(f"latency cache {path} has a malformed record: {exc!r}. "
                                  f"HINT: delete the offending line; it will be measured again.") from exc

    def get(self, key: str) -> dict[str, Any] | None:
        """The record stored under ``key``, or ``None``."""
        return self._records.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Store a record (with ``schema`` added) in memory and, if file-backed, on disk first."""
        record = {**record, "schema": CACHE_SCHEMA}
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            append_jsonl(self._path, record)
        self._records[key] = record

    def __len__(self) -> int:
        return len(self._records)
