"""The evaluation cache: scores keyed by (candidate_id, evaluator fingerprint), shared by processes.

Trial workers append one JSON line per evaluation; readers pick up new lines incrementally. A resumed
search that suggests a candidate again gets its score back instead of evaluating it twice.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.jsonio import append_jsonl

__all__ = ["EvaluationCache"]


class EvaluationCache:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._entries: dict[tuple[str, str], dict[str, Any]] = {}
        self._offset = 0

    def get(self, candidate_id: str, fingerprint: str) -> dict[str, Any] | None:
        key = (candidate_id, fingerprint)
        if key not in self._entries:
            self._refresh()
        return self._entries.get(key)

    def put(self, candidate_id: str, fingerprint: str, metrics: dict[str, Any]) -> None:
        append_jsonl(self.path, {"candidate_id": candidate_id, "fingerprint": fingerprint, "metrics": metrics})
        self._entries[(candidate_id, fingerprint)] = metrics

    def __len__(self) -> int:
        self._refresh()
        return len(self._entries)

    def _refresh(self) -> None:
        """Read lines appended since the last look; a torn last line is left for the next look."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except FileNotFoundError:
            return
        complete = chunk[: chunk.rfind(b"\n") + 1]
        for line in complete.splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # torn record: that evaluation is simply redone
            # Anything but a well-formed entry is ignored: a cache miss only means the candidate is scored again.
            if (isinstance(rec, dict) and isinstance(rec.get("candidate_id"), str)
                    and isinstance(rec.get("fingerprint"), str) and isinstance(rec.get("metrics"), dict)):
                self._entries.setdefault((rec["candidate_id"], rec["fingerprint"]), rec["metrics"])
        self._offset += len(complete)
