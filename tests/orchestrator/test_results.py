"""Pareto fronts over the configured objectives, with constraints; tables and plots."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from orchestrator.results import format_table, front_plot_data, front_table, pareto_ids, plot_front, write_pareto_csv
from searchers import Constraint, Objective

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


def test_table_and_csv(tmp_path: Path) -> None:
    rows = front_table(RECORDS, {"good", "fast"})
    assert [r["candidate_id"] for r in rows] == ["fast", "good"]  # fastest first
    assert all(type(r["accuracy"]) is float and type(r["generation"]) is int for r in rows)  # JSON-ready
    lines = format_table(rows).splitlines()
    assert lines[0].split()[:2] == ["candidate_id", "gen"] and lines[2].startswith("fast ")
    write_pareto_csv(rows, tmp_path / "p.csv")
    assert (tmp_path / "p.csv").read_text().splitlines() == [
        "candidate_id,generation,accuracy,latency_ms,params,madds,encoding",
        "fast,0,0.5,1.0,1000000.0,2000000.0,0-1",
        "good,0,0.8,2.0,1000000.0,2000000.0,0-1",
    ]
    assert front_table([], set()) == []


def test_plot_data_is_the_staircase_front() -> None:
    data = front_plot_data(RECORDS, pareto_ids(RECORDS, OBJ))
    np.testing.assert_array_equal(data["latency"], [1.0, 2.0, 2.5, 5.0])
    np.testing.assert_array_equal(data["step_quality"], [0.5, 0.8, 0.8, 0.9])  # best accuracy so far
    assert data["pareto"].tolist() == [True, True, False, True]


def _red_pixels(path: Path) -> int:
    import matplotlib.image

    rgb = matplotlib.image.imread(path)[..., :3]
    red = np.array([0.839, 0.153, 0.157])  # matplotlib's tab:red
    return int((np.abs(rgb - red).max(axis=-1) < 0.05).sum())


def test_plot_draws_the_front_in_red(tmp_path: Path) -> None:
    plot_front(RECORDS, {"good", "fast"}, tmp_path / "p.png", title="t")
    plot_front(RECORDS, set(), tmp_path / "none.png", title="t")
    plot_front([], set(), tmp_path / "empty.png", title="t")
    with_front, without_front = _red_pixels(tmp_path / "p.png"), _red_pixels(tmp_path / "none.png")
    assert with_front > without_front > 0  # the staircase line is red either way; the front's points add more
    assert _red_pixels(tmp_path / "empty.png") == 0
