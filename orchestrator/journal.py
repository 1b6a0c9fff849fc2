"""The experiment journal: append-only, fsync'd JSON lines; the source of truth for resume.

Stages record their start and completion, the driver records every finished candidate. Replaying the
journal tells which stages are done and which candidates exist; MLflow is fed from it idempotently.

Every record carries ``schema`` (:data:`SCHEMA_VERSION`); records without one are version 1, the same
events before the field existed. A record of a newer version than this hwnas reads stops the replay
with a clear error instead of a guess.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ExperimentError
from core.jsonio import append_jsonl, read_jsonl

__all__ = ["Journal", "JournalState", "SCHEMA_VERSION"]

#: Version of the journal's records (1: the same events, before records carried a version).
SCHEMA_VERSION = 2


@dataclass
class JournalState:
    """What a replay of the journal says about an experiment."""

    started: set[str] = field(default_factory=set)
    completed: dict[str, dict[str, Any]] = field(default_factory=dict)
    candidates: dict[str, dict[str, Any]] = field(default_factory=dict)  # candidate_id -> record, first wins
    failures: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    data: dict[str, Any] | None = None  # the data's identity, recorded when the experiment first ran
    retrain_requests: dict[str, dict[str, Any]] = field(default_factory=dict)  # retrain_id -> request, first wins
    retrain_epochs: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)  # id -> epoch -> record
    retrains: dict[str, dict[str, Any]] = field(default_factory=dict)  # retrain_id -> completed result
    retrain_failures: dict[str, dict[str, Any]] = field(default_factory=dict)  # retrain_id -> last failure

    def pending_retrains(self) -> list[dict[str, Any]]:
        """The requested retrains without a result, in request order."""
        return [r for rid, r in self.retrain_requests.items() if rid not in self.retrains]

    def stage(self, name: str) -> str:
        if name in self.completed:
            return "completed"
        return "started" if name in self.started else "pending"


class Journal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, event: str, **fields: Any) -> None:
        append_jsonl(self.path, {"event": event, "schema": SCHEMA_VERSION, "time": time.time(), **fields})

    def stage_started(self, stage: str) -> None:
        self.append("stage_started", stage=stage)

    def stage_completed(self, stage: str, **result: Any) -> None:
        self.append("stage_completed", stage=stage, result=result)

    def replay(self) -> JournalState:
        state = JournalState()
        for number, rec in enumerate(read_jsonl(self.path), start=1):
            self._check(number, rec)
            version = rec.get("schema", 1)
            if not isinstance(version, int) or version > SCHEMA_VERSION:
                raise ExperimentError(
                    f"{self.path} has a record of journal schema {version!r}; this hwnas reads up to "
                    f"{SCHEMA_VERSION}. HINT: continue the experiment with the hwnas version that wrote it."
                )
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
            elif kind == "data" and state.data is None:
                state.data = rec.get("identity")
            elif kind == "retrain_requested":
                state.retrain_requests.setdefault(rec["retrain_id"], rec)
            elif kind == "retrain_epoch":  # first wins: a record is never logged twice
                state.retrain_epochs.setdefault(rec["retrain_id"], {}).setdefault(int(rec["epoch"]), rec)
            elif kind == "retrain_completed":
                state.retrains.setdefault(rec["retrain_id"], rec)
                state.retrain_failures.pop(rec["retrain_id"], None)
            elif kind == "retrain_failed" and rec["retrain_id"] not in state.retrains:
                state.retrain_failures[rec["retrain_id"]] = rec
        return state

    def _check(self, number: int, rec: Any) -> None:
        """A record has the fields its event needs; anything else was written by something other than
        hwnas, and guessing at it could resume into a wrong result."""
        needs = {"stage_started": "stage", "stage_completed": "stage", "candidate": "candidate_id",
                 **dict.fromkeys(("retrain_requested", "retrain_epoch", "retrain_completed", "retrain_failed"),
                                 "retrain_id")}
        problem = None
        if not isinstance(rec, dict) or not isinstance(rec.get("event"), str):
            problem = "it is not an object with an 'event'"
        elif rec["event"] in needs:
            key = needs[rec["event"]]
            if not isinstance(rec.get(key), str):
                problem = f"its '{rec['event']}' event has no {key}"
            elif rec["event"] == "stage_completed" and not isinstance(rec.get("result", {}), dict):
                problem = "its 'result' is not an object"
        if problem:
            raise ExperimentError(
                f"{self.path}: record {number} is not a journal record ({problem}). HINT: the file was edited or "
                f"damaged; put back a good copy, or start a new experiment."
            )
