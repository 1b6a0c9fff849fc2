"""The experiment journal: append-only, fsync'd JSON lines; the source of truth for resume.

Stages record their start and completion, the driver records every finished candidate. Replaying the
journal tells which stages are done and which candidates exist; MLflow is fed from it idempotently.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.jsonio import append_jsonl, read_jsonl

__all__ = ["Journal", "JournalState"]


@dataclass
class JournalState:
    """What a replay of the journal says about an experiment."""

    started: set[str] = field(default_factory=set)
    completed: dict[str, dict[str, Any]] = field(default_factory=dict)
    candidates: dict[str, dict[str, Any]] = field(default_factory=dict)  # candidate_id -> record, first wins
    failures: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0

    def stage(self, name: str) -> str:
        if name in self.completed:
            return "completed"
        return "started" if name in self.started else "pending"


class Journal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, event: str, **fields: Any) -> None:
        append_jsonl(self.path, {"event": event, "time": time.time(), **fields})

    def stage_started(self, stage: str) -> None:
        self.append("stage_started", stage=stage)

    def stage_completed(self, stage: str, **result: Any) -> None:
        self.append("stage_completed", stage=stage, result=result)

    def replay(self) -> JournalState:
        state = JournalState()
        for rec in read_jsonl(self.path):
            kind = rec.get("event")
            if kind == "attempt_started":
                state.attempts += 1
            elif kind == "stage_started":
                state.started.add(rec["stage"])
            elif kind == "stage_completed":
                state.completed[rec["stage"]] = rec.get("result", {})
            elif kind == "candidate":
                state.candidates.setdefault(rec["candidate_id"], rec)
            elif kind == "candidate_failed":
                state.failures.append(rec)
        return state
