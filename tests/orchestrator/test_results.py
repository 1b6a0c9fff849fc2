"""Pareto fronts over the configured objectives, with constraints; tables and plots."""
from __future__ import annotations

from pathlib import Path

from orchestrator.config import Constraint, Objective
from orchestrator.results import format_table, front_table, pareto_ids, plot_front, write_pareto_csv

OBJ = (Objective("accuracy", "max", 0.5), Objective("latency_ms", "min", 0.5))


def _rec(cid: str, acc: float, lat: float) -> dict:
    return {"candidate_id": cid, "generation": 0, "accuracy": acc, "latency_ms": lat, "params": 1e6,
            "madds": 2e6, "encoding": "0-1"}


RECORDS = [_rec("fast", 0.5, 1.0), _rec("good", 0.8, 2.0), _rec("dominated", 0.6, 2.5), _rec("slow", 0.9, 5.0)]


def test_front_is_the_non_dominated_set() -> None:
    assert pareto_ids(RECORDS, OBJ) == {"fast", "good", "slow"}


def test_constraints_remove_infeasible_candidates_first() -> None:
    ids = pareto_ids(RECORDS, OBJ, (Constraint("latency_ms", "<=", 3.0),))
    assert ids == {"fast", "good"}
    assert pareto_ids(RECORDS, OBJ, (Constraint("latency_ms", "<=", 0.1),)) == set()


def test_direction_matters() -> None:
    flipped = (Objective("accuracy", "min", 0.5), Objective("latency_ms", "min", 0.5))
    assert pareto_ids(RECORDS, flipped) == {"fast"}


def test_table_csv_and_plot(tmp_path: Path) -> None:
    rows = front_table(RECORDS, {"good", "fast"})
    assert [r["candidate_id"] for r in rows] == ["fast", "good"]  # fastest first
    assert "fast" in format_table(rows)
    write_pareto_csv(rows, tmp_path / "p.csv")
    assert (tmp_path / "p.csv").read_text().splitlines()[0].startswith("candidate_id,")
    plot_front(RECORDS, {"good", "fast"}, tmp_path / "p.png", title="t")
    plot_front([], set(), tmp_path / "empty.png", title="t")
    assert (tmp_path / "p.png").stat().st_size > 0 and (tmp_path / "empty.png").stat().st_size > 0
