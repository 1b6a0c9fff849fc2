"""Which architectures are retrained, how a retrain is named, the journal's retrain records, and the
ranking check's statistics (no Ray)."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.journal import Journal
from orchestrator.ranking import ranking_check
from orchestrator.retrain import choose_spanning, retrain_id
from searchers import Objective
from trainers.retrain import check_retrain_settings

OBJECTIVES = (Objective("accuracy", "max", 0.5), Objective("latency_ms", "min", 0.5))


def _rec(cid: str, acc: float, lat: float) -> dict:
    return {"candidate_id": cid, "accuracy": acc, "latency_ms": lat}


def test_top_k_spans_the_front_along_the_latency_axis() -> None:
    front = [_rec(f"f{i}", 0.5 + 0.04 * i, 1.0 + i) for i in range(9)]  # a front of 9, latency 1..9
    dominated = [_rec("d0", 0.1, 5.0), _rec("d1", 0.2, 8.5)]
    picked = [r["candidate_id"] for r in choose_spanning(front + dominated, OBJECTIVES, (), "accuracy", 3)]
    assert picked == ["f0", "f4", "f8"]  # fastest, middle, slowest
    assert [r["candidate_id"] for r in choose_spanning(front, OBJECTIVES, (), "accuracy", 1)] == ["f8"]  # best score
    # A front smaller than k is taken whole; the next front fills up.
    small = [_rec("a", 0.9, 1.0), _rec("b", 0.5, 2.0), _rec("c", 0.4, 3.0)]
    assert [r["candidate_id"] for r in choose_spanning(small, OBJECTIVES, (), "accuracy", 2)] == ["a", "b"]
    assert len(choose_spanning(small, OBJECTIVES, (), "accuracy", 10)) == 3


def test_a_retrain_is_named_by_its_candidate_and_what_is_trained() -> None:
    base = check_retrain_settings({})
    assert retrain_id("abc", base) == retrain_id("abc", {**base, "max_concurrent": 4, "register": True, "top_k": 9})
    assert retrain_id("abc", base) != retrain_id("abc", {**base, "epochs": 11})
    assert retrain_id("abc", base).startswith("abc-") and len(retrain_id("abc", base)) == 12


def test_the_journal_keeps_the_first_record_of_each_epoch_and_knows_what_is_pending(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    for rid in ("r1", "r2"):
        journal.append("retrain_requested", retrain_id=rid, candidate_id=rid)
    journal.append("retrain_epoch", retrain_id="r1", epoch=1, accuracy=0.1)
    journal.append("retrain_epoch", retrain_id="r1", epoch=1, accuracy=0.9)
    journal.append("retrain_failed", retrain_id="r2", reason="boom")
    journal.append("retrain_completed", retrain_id="r1", candidate_id="r1", final={})
    state = journal.replay()
    assert state.retrain_epochs["r1"][1]["accuracy"] == 0.1
    assert [r["retrain_id"] for r in state.pending_retrains()] == ["r2"] and "r2" in state.retrain_failures
    journal.append("retrain_completed", retrain_id="r2", candidate_id="r2", final={})
    assert journal.replay().pending_retrains() == [] and not journal.replay().retrain_failures


def test_ranking_check_statistics() -> None:
    agree = [(f"c{i}", 0.1 * i, 0.2 * i + 0.05) for i in range(5)]
    assert ranking_check(agree)["kendall_tau"] == pytest.approx(1.0)
    assert ranking_check(agree)["spearman"] == pytest.approx(1.0)
    reverse = [(c, s, -r) for c, s, r in agree]
    assert ranking_check(reverse)["kendall_tau"] == pytest.approx(-1.0)
    swapped = agree[:3] + [agree[4][:1] + (agree[3][1], agree[4][2]), agree[3][:1] + (agree[4][1], agree[3][2])]
    assert ranking_check(swapped)["kendall_tau"] == pytest.approx(0.8)  # one discordant pair of 10
    assert ranking_check(agree[:2])["kendall_tau"] is None and ranking_check(agree[:2])["n"] == 2
    assert ranking_check([(c, 0.5, r) for c, _, r in agree])["kendall_tau"] is None  # a constant side


def test_the_ranking_check_compares_retrains_trained_alike(tmp_path: Path) -> None:
    from orchestrator.retrain import ranking_pairs

    journal = Journal(tmp_path / "journal.jsonl")

    def retrained(cid: str, group: str, supernet: float, score: float) -> None:
        rid = f"{cid}-{group}"
        journal.append("retrain_requested", retrain_id=rid, candidate_id=cid, supernet={"accuracy": supernet})
        journal.append("retrain_completed", retrain_id=rid, candidate_id=cid, final={"accuracy": score})

    for i, cid in enumerate(("a", "b", "c")):
        retrained(cid, "10epochs", (0.5, 0.6, 0.7)[i], (0.8, 0.81, 0.82)[i])
    retrained("a", "30epochs", 0.5, 0.99)  # a again, with another recipe: not mixed into the three
    journal.append("retrain_requested", retrain_id="x-10epochs", candidate_id="x", supernet={})  # an --arch
    pairs = ranking_pairs(journal.replay(), "accuracy")
    assert sorted(pairs) == [("a", 0.5, 0.8), ("b", 0.6, 0.81), ("c", 0.7, 0.82)]
