"""Journal replay and the evaluation cache survive torn writes and concurrent appends."""
from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from orchestrator.cache import EvaluationCache
from orchestrator.journal import Journal


def test_journal_replay_tracks_stages_and_candidates(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.jsonl")
    j.append("attempt_started", attempt=1)
    j.stage_started("train_supernet")
    j.stage_completed("train_supernet", steps=10, digest="abc")
    j.stage_started("search")
    j.append("candidate", candidate_id="a", accuracy=0.5)
    j.append("candidate", candidate_id="a", accuracy=0.9)  # a replayed duplicate: first wins
    state = j.replay()
    assert state.stage("train_supernet") == "completed"
    assert state.stage("search") == "started"
    assert state.stage("finalize") == "pending"
    assert state.completed["train_supernet"]["digest"] == "abc"
    assert list(state.candidates) == ["a"] and state.candidates["a"]["accuracy"] == 0.5
    assert state.attempts == 1


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    j = Journal(path)
    j.append("candidate", candidate_id="a")
    with open(path, "a") as fh:
        fh.write('{"event": "candidate", "candidate_id": "b"')  # killed mid-write
    assert list(j.replay().candidates) == ["a"]


def test_cache_hits_across_instances_and_incremental_reads(tmp_path: Path) -> None:
    path = tmp_path / "evaluations.jsonl"
    writer, reader = EvaluationCache(path), EvaluationCache(path)
    assert reader.get("c1", "fp") is None
    writer.put("c1", "fp", {"accuracy": 0.5})
    assert reader.get("c1", "fp") == {"accuracy": 0.5}
    assert reader.get("c1", "other-fingerprint") is None
    writer.put("c2", "fp", {"accuracy": 0.7})
    assert reader.get("c2", "fp") == {"accuracy": 0.7}
    assert len(reader) == 2


def _append_many(path: str, worker: int) -> None:
    cache = EvaluationCache(path)
    for i in range(200):
        cache.put(f"w{worker}-{i}", "fp", {"accuracy": i / 200, "pad": "x" * 300})


def test_concurrent_appends_from_processes_do_not_interleave(tmp_path: Path) -> None:
    path = str(tmp_path / "evaluations.jsonl")
    procs = [mp.get_context("spawn").Process(target=_append_many, args=(path, w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert len(EvaluationCache(path)) == 600
