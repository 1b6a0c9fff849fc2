"""The interactive Pareto page and the corrected static plot: with a third objective, a candidate on the
front of all objectives can be beaten in a plotted plane, and both views must say so rather than show it
as a point below the front."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from orchestrator.pareto_view import planes, projections, write_pareto_html
from orchestrator.results import front_plot_data, pareto_ids, plot_front
from searchers import Constraint, Objective

ACC, LAT = Objective("accuracy", "max", 0.4), Objective("latency_ms", "min", 0.3)
PARAMS = Objective("params", "min", 0.3)
OBJ2, OBJ3 = (ACC, LAT), (ACC, LAT, PARAMS)


def _rec(cid: str, acc: float, lat: float, params: float, generation: int = 0) -> dict:
    return {"candidate_id": cid, "generation": generation, "accuracy": acc, "latency_ms": lat, "params": params,
            "madds": 2e7, "encoding": f"enc-{cid}", "space": "mbv3"}


# "small" is beaten by "good" in latency *and* accuracy, but has the fewest params: on the 3-objective front,
# off the accuracy/latency plane's front. "fast" is likewise beaten by "small" in the params/accuracy plane.
RECORDS = [_rec("fast", 0.5, 1.0, 2e6), _rec("good", 0.8, 2.0, 3e6), _rec("small", 0.7, 2.5, 0.5e6, 1),
           _rec("dominated", 0.6, 3.0, 4e6, 1), _rec("slow", 0.9, 5.0, 5e6, 2)]
IDS = [r["candidate_id"] for r in RECORDS]


def _flags(view, mask: np.ndarray) -> set[str]:
    return {i for i, m in zip(view.ids, mask) if m}


def test_the_hand_made_front() -> None:
    assert pareto_ids(RECORDS, OBJ3) == {"fast", "good", "small", "slow"}
    assert pareto_ids(RECORDS, OBJ2) == {"fast", "good", "slow"}


def test_planes_put_the_maximised_metric_up() -> None:
    assert [(x.metric, y.metric) for x, y in planes(OBJ3)] == [
        ("latency_ms", "accuracy"), ("params", "accuracy"), ("latency_ms", "params")]
    assert [(x.metric, y.metric) for x, y in planes((ACC,))] == [("latency_ms", "accuracy")]


def test_three_objectives_mark_the_points_a_plane_hides() -> None:
    front = pareto_ids(RECORDS, OBJ3)
    lat_acc, params_acc, lat_params = projections(RECORDS, OBJ3, front)
    assert lat_acc.ids == tuple(IDS) and lat_acc.hidden == ("params",)
    assert _flags(lat_acc, lat_acc.on_front_all) == {"fast", "good", "small", "slow"}
    assert _flags(lat_acc, lat_acc.on_front_plane) == {"fast", "good", "slow"}
    assert _flags(params_acc, params_acc.on_front_all & ~params_acc.on_front_plane) == {"fast"}
    assert _flags(lat_params, lat_params.on_front_plane) == {"fast", "small"}
    assert lat_params.hidden == ("accuracy",)
    # The staircase goes through the plane's front along x; params are plotted in millions.
    np.testing.assert_allclose(lat_acc.step_x, [1.0, 2.0, 5.0])
    np.testing.assert_allclose(lat_acc.step_y, [0.5, 0.8, 0.9])
    assert (params_acc.x_label, params_acc.y_label) == ("params (M)", "supernet accuracy")
    np.testing.assert_allclose(params_acc.x, [2.0, 3.0, 0.5, 4.0, 5.0])
    assert "better in params" in lat_acc.hover[IDS.index("small")]


def test_two_objectives_have_one_plane_and_nothing_hidden() -> None:
    (view,) = projections(RECORDS, OBJ2, pareto_ids(RECORDS, OBJ2))
    assert view.hidden == () and (view.x_metric, view.y_metric) == ("latency_ms", "accuracy")
    assert view.on_front_all.tolist() == view.on_front_plane.tolist() == [True, True, False, False, True]
    assert view.x_label == "latency (ms)" and view.step_shape == "hv"


def test_constraints_keep_infeasible_candidates_off_every_front() -> None:
    limit = (Constraint("latency_ms", "<=", 4.0),)
    (view,) = projections(RECORDS, OBJ2, pareto_ids(RECORDS, OBJ2, limit), constraints=limit)
    assert _flags(view, view.on_front_plane) == {"fast", "good"}
    assert "infeasible: breaks latency_ms &lt;= 4" in view.hover[IDS.index("slow")]  # plotly shows "<="


def _script_srcs(page: str) -> list[str]:
    return re.findall(r"<script[^>]*\bsrc\s*=\s*['\"]?([^'\" >]+)", page, flags=re.IGNORECASE)


@pytest.mark.parametrize("objectives", [OBJ2, OBJ3], ids=["two", "three"])
def test_html_is_self_contained_and_names_every_candidate(tmp_path: Path, objectives) -> None:
    path = tmp_path / "pareto.html"
    run_ids = {"good": "0123456789abcdef0123456789abcdef", "small": "fedcba9876543210fedcba9876543210"}
    write_pareto_html(RECORDS, objectives, pareto_ids(RECORDS, objectives), path, title="demo: 5 candidates",
                      run_ids=run_ids)
    page = path.read_text(encoding="utf-8")
    assert not list(tmp_path.glob("*.tmp"))  # written atomically: the temp file was renamed
    assert re.search(r"plotly\.js v\d", page) and len(page) > 1_000_000  # the library itself, inline
    assert _script_srcs(page) == []  # nothing fetched: no CDN, no https:// script (the page opens offline)
    assert "demo: 5 candidates" in page
    assert all(cid in page for cid in IDS)
    assert all(run in page for run in run_ids.values())
    assert "enc-small" in page and ("params (M)" in page) == (objectives == OBJ3)  # objectives only
    assert ("Pareto, better in an objective not shown here" in page) == (objectives == OBJ3)
    assert ("not shown: params" in page) == (objectives == OBJ3)


def test_html_without_candidates(tmp_path: Path) -> None:
    write_pareto_html([], OBJ3, set(), tmp_path / "empty.html", title="nothing yet")
    assert "no candidate was scored" in (tmp_path / "empty.html").read_text(encoding="utf-8")


def test_plot_data_marks_the_points_the_plane_hides() -> None:
    data = front_plot_data(RECORDS, pareto_ids(RECORDS, OBJ3), objectives=OBJ3)
    assert data["ids"].tolist() == ["fast", "good", "small", "dominated", "slow"]  # fastest first
    assert data["ids"][data["pareto"] & ~data["plane"]].tolist() == ["small"]
    np.testing.assert_array_equal(data["step_quality"], [0.5, 0.8, 0.8, 0.8, 0.9])
    old = front_plot_data(RECORDS, pareto_ids(RECORDS, OBJ2))  # an old caller: the two fronts agree
    assert old["pareto"].tolist() == old["plane"].tolist()


def test_plot_data_staircase_skips_infeasible_candidates() -> None:
    limit = (Constraint("latency_ms", "<=", 4.0),)
    data = front_plot_data(RECORDS, pareto_ids(RECORDS, OBJ2, limit), objectives=OBJ2, constraints=limit)
    np.testing.assert_array_equal(data["step_quality"], [0.5, 0.8, 0.8, 0.8, 0.8])  # "slow" is too slow
    assert not data["plane"][-1]


def _purple_pixels(path: Path) -> int:
    import matplotlib.image

    rgb = matplotlib.image.imread(path)[..., :3]
    purple = np.array([0.580, 0.404, 0.741])  # matplotlib's tab:purple: the hidden-objective points
    return int((np.abs(rgb - purple).max(axis=-1) < 0.05).sum())


def test_png_draws_hidden_objective_points_apart(tmp_path: Path) -> None:
    plot_front(RECORDS, pareto_ids(RECORDS, OBJ2), tmp_path / "two.png", title="t", objectives=OBJ2)
    plot_front(RECORDS, pareto_ids(RECORDS, OBJ3), tmp_path / "three.png", title="t", objectives=OBJ3)
    plot_front(RECORDS, pareto_ids(RECORDS, OBJ3), tmp_path / "old.png", title="t")  # objectives unknown
    assert _purple_pixels(tmp_path / "two.png") == 0
    assert _purple_pixels(tmp_path / "three.png") > 0 and _purple_pixels(tmp_path / "old.png") > 0
