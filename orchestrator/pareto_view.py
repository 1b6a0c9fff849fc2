"""An interactive view of a search's candidates: one scatter per pair of objectives, as a single HTML page.

The static plot (:func:`orchestrator.results.plot_front`) shows one plane, quality vs latency. With a third
objective a candidate can be on the front of all objectives yet beaten in that plane, because what makes it
optimal (e.g. fewer params) is not drawn. Here every pair of objectives gets its own plane, and each plane
marks both fronts: the front of all objectives (``pareto``) and the front of the plane itself, so a reader
sees which optimal candidates a plane hides and by which objective they win. Hovering a point names the
candidate, its generation, encoding, objective metrics and MLflow run.

The page embeds plotly.js (about 5 MB) instead of loading it from a CDN: MLflow's artifact viewer shows it
in an iframe, often on a machine or cluster without internet.

:func:`projections` computes what the page draws, so that it can be checked without parsing HTML;
:func:`write_pareto_html` draws it.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from searchers import Constraint, Objective, feasible

from .results import candidates_frame, pareto_ids, plane_objectives

__all__ = ["Projection", "axis", "planes", "projections", "write_pareto_html"]

#: Axis title and divisor of the metrics with a unit; counts are shown in millions, as the tables show them.
_AXES: dict[str, tuple[str, float]] = {
    "latency_ms": ("latency (ms)", 1.0),
    "params": ("params (M)", 1e6),
    "madds": ("MAdds (M)", 1e6),
}
_GREY, _RED, _PURPLE = "#9e9e9e", "#d62728", "#9467bd"  # matplotlib's grey, tab:red, tab:purple, as the PNG
#: The legend entry of front candidates beaten in a plane: better in an objective that plane does not show.
HIDDEN_BETTER = "Pareto, better in an objective not shown here"


@dataclass(frozen=True)
class Projection:
    """One plane of the objectives as the page draws it; ``x``/``y`` are in the axis units (see :func:`axis`).

    Attributes:
        x_metric, y_metric: The plotted objectives; quality-like (``max``) ones go up the y axis.
        hidden: The objectives this plane does not show.
        ids: Every candidate, in the records' order; the arrays below follow it.
        on_front_all: On the front of all objectives (the ``pareto`` ids given).
        on_front_plane: No feasible candidate beats it in both plotted objectives.
        hover: Each point's hover text (HTML-escaped, ``<br>`` between lines).
        step_x, step_y, step_shape: The plane's front sorted along x, and the plotly line shape that draws
            its staircase (the border of the region it dominates).
    """

    x_metric: str
    y_metric: str
    x_label: str
    y_label: str
    hidden: tuple[str, ...]
    ids: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray
    on_front_all: np.ndarray
    on_front_plane: np.ndarray
    hover: tuple[str, ...]
    step_x: np.ndarray
    step_y: np.ndarray
    step_shape: str


def axis(metric: str, quality: str = "accuracy") -> tuple[str, float]:
    """A metric's axis title and the divisor from its recorded value to the plotted one."""
    if metric == quality:
        return f"supernet {quality}", 1.0  # candidates are scored with inherited supernet weights
    return _AXES.get(metric, (metric, 1.0))


def planes(objectives: Sequence[Objective], quality: str = "accuracy") -> list[tuple[Objective, Objective]]:
    """Every pair of objectives as ``(x, y)``, in the objectives' order; a single objective (nothing to
    pair) gets the static plot's plane, quality vs latency."""
    if len(objectives) < 2:
        y, x = plane_objectives(quality, objectives)
        return [(x, y)]
    # A maximised metric goes up, as accuracy does in every NAS paper's plot; otherwise the config's order.
    return [(b, a) if a.mode == "max" and b.mode != "max" else (a, b) for a, b in combinations(objectives, 2)]


def projections(records: Sequence[dict[str, Any]], objectives: Sequence[Objective], pareto: set[str], *,
                run_ids: Mapping[str, str] | None = None, quality: str = "accuracy",
                constraints: Sequence[Constraint] = ()) -> list[Projection]:
    """What :func:`write_pareto_html` draws: one :class:`Projection` per plane of :func:`planes`.

    Args:
        records: The journal's candidate records.
        objectives: The search's objectives (their directions decide each plane's front).
        pareto: Ids on the front of all objectives (:func:`orchestrator.results.pareto_ids`).
        run_ids: candidate_id -> MLflow run id, shown in the hover text where known.
        quality: The task's headline metric (``accuracy``, ``map``, ...): shown even when not an objective.
        constraints: The search's; an infeasible candidate is on no plane's front and says so on hover.
    """
    shown = list(dict.fromkeys([*(o.metric for o in objectives), quality]))
    base = [_hover_head(r, shown, quality, (run_ids or {}).get(str(r["candidate_id"])), constraints)
            for r in records]
    return [_projection(records, x, y, objectives, pareto, base, quality, constraints)
            for x, y in planes(objectives, quality)]


def _projection(records: Sequence[dict[str, Any]], x_obj: Objective, y_obj: Objective,
                objectives: Sequence[Objective], pareto: set[str], base: list[str], quality: str,
                constraints: Sequence[Constraint]) -> Projection:
    frame = candidates_frame(records)
    ids = tuple(str(r["candidate_id"]) for r in records)
    (x_label, x_div), (y_label, y_div) = axis(x_obj.metric, quality), axis(y_obj.metric, quality)
    x, y = _values(frame, x_obj.metric) / x_div, _values(frame, y_obj.metric) / y_div
    plane = pareto_ids(records, (x_obj, y_obj), constraints)
    on_all = np.array([i in pareto for i in ids], dtype=bool)
    on_plane = np.array([i in plane for i in ids], dtype=bool)
    hidden = tuple(o.metric for o in objectives if o.metric not in (x_obj.metric, y_obj.metric))
    hover = tuple(f"{head}<br>{_standing(a, p, hidden)}" for head, a, p in zip(base, on_all, on_plane))
    order = np.lexsort((y[on_plane], x[on_plane]))  # along x; ties in x (equal points) by y
    return Projection(x_obj.metric, y_obj.metric, x_label, y_label, hidden, ids, x, y, on_all, on_plane, hover,
                      x[on_plane][order], y[on_plane][order], "hv" if x_obj.mode == "min" else "vh")


def _values(frame: Any, metric: str) -> np.ndarray:
    """A metric's column as floats; NaN where a record lacks it (plotly leaves such points out)."""
    if metric not in getattr(frame, "columns", ()):
        return np.full(len(frame), np.nan)
    return frame[metric].to_numpy(dtype=float)


def _hover_head(record: dict[str, Any], metrics: Sequence[str], quality: str, run_id: str | None,
                constraints: Sequence[Constraint]) -> str:
    """The lines every plane shows for a candidate: who it is, its metrics, where its run is."""
    e = html.escape
    lines = [f"<b>{e(str(record['candidate_id']))}</b>  (generation {e(str(record.get('generation', '?')))})",
             f"encoding: {e(str(record.get('encoding', '')))}"]
    for metric in metrics:
        label, div = axis(metric, quality)
        lines.append(f"{e(label)}: {_number(record.get(metric), div)}")
    if run_id:
        lines.append(f"MLflow run: {e(run_id)}")
    if not _feasible(record, constraints):
        lines.append("infeasible: breaks " + e(", ".join(f"{c.metric} {c.op} {c.value:g}" for c in constraints
                                                           if not _feasible(record, (c,)))))
    return "<br>".join(lines)


def _feasible(record: dict[str, Any], constraints: Sequence[Constraint]) -> bool:
    try:
        return feasible(record, constraints)
    except (KeyError, TypeError, ValueError):  # a metric never recorded keeps no constraint
        return False


def _number(value: Any, div: float) -> str:
    try:
        v = float(value) / div
    except (TypeError, ValueError):
        return "n/a"
    return f"{v:.4g}" if math.isfinite(v) else "n/a"


def _standing(on_all: bool, on_plane: bool, hidden: Sequence[str]) -> str:
    """Why a point sits where it does relative to the two fronts drawn."""
    if on_all and on_plane:
        return "Pareto: on the front of all objectives and of this plane"
    if on_all:
        return f"Pareto, beaten in this plane: better in {html.escape(', '.join(hidden) or 'another objective')}"
    if on_plane:
        return "on this plane's front only: another candidate equals it here and beats it elsewhere"
    return "off both fronts"  # dominated, or infeasible (its hover says so above)


def write_pareto_html(records: Sequence[dict[str, Any]], objectives: Sequence[Objective], pareto: set[str],
                      path: Path, *, title: str, run_ids: Mapping[str, str] | None = None,
                      quality: str = "accuracy", constraints: Sequence[Constraint] = ()) -> None:
    """The candidates as a self-contained interactive HTML page (plotly.js embedded: it opens offline),
    written to a temp file and renamed, so that a reader (or MLflow's upload) never sees half a page.

    Arguments as :func:`projections`; ``title`` heads the page.
    """
    figure = _figure(projections(records, objectives, pareto, run_ids=run_ids, quality=quality,
                                 constraints=constraints), title, empty=not records)
    page = figure.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False, "responsive": True})
    path = Path(path)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)


def _figure(views: list[Projection], title: str, *, empty: bool) -> Any:
    from plotly.subplots import make_subplots  # imported here: only finalize draws, and plotly is slow to load

    # Two columns at most: MLflow shows the page in its artifact pane, about 700 px wide.
    cols = min(2, len(views))
    rows = math.ceil(len(views) / cols)
    figure = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.08, vertical_spacing=0.14 if rows > 1 else 0.1,
                           subplot_titles=[_subplot_title(v) for v in views])
    legend: set[str] = set()
    for k, view in enumerate(views):
        row, col = divmod(k, cols)
        for trace in _traces(view):
            trace.update(legendgroup=trace.name, showlegend=trace.name not in legend)
            legend.add(trace.name)
            figure.add_trace(trace, row=row + 1, col=col + 1)
        figure.update_xaxes(title_text=view.x_label, row=row + 1, col=col + 1)
        figure.update_yaxes(title_text=view.y_label, row=row + 1, col=col + 1)
    if empty:
        figure.add_annotation(text="no candidate was scored", showarrow=False, xref="paper", yref="paper",
                              x=0.5, y=0.5)
    figure.update_annotations(font_size=12)
    # The legend below the plots: beside them it takes half of a narrow pane.
    figure.update_layout(title=title, template="plotly_white", hovermode="closest", height=160 + 380 * rows,
                         legend={"orientation": "h", "yanchor": "top", "y": -0.18 / rows, "x": 0},
                         margin={"l": 60, "r": 20, "t": 80, "b": 60})
    return figure


def _subplot_title(view: Projection) -> str:
    """Short (a subplot is about 300 px wide): the axes say what is plotted, the title what is not."""
    return f"not shown: {', '.join(view.hidden)}" if view.hidden else ""


def _traces(view: Projection) -> list[Any]:
    """Plane front (a staircase), then the dominated, the Pareto and the Pareto-but-beaten-here points."""
    import plotly.graph_objects as go

    def points(mask: np.ndarray, name: str, marker: dict[str, Any]) -> Any:
        return go.Scatter(x=view.x[mask], y=view.y[mask], mode="markers", name=name, marker=marker,
                          text=[h for h, m in zip(view.hover, mask) if m], hovertemplate="%{text}<extra></extra>")

    on_all, on_plane = view.on_front_all, view.on_front_plane
    traces = [go.Scatter(x=view.step_x, y=view.step_y, mode="lines", name="front of this plane",
                         line={"shape": view.step_shape, "color": _RED, "width": 1.2}, opacity=0.6,
                         hoverinfo="skip"),
              points(~on_all, "evaluated", {"color": _GREY, "size": 6}),
              points(on_all & on_plane, "Pareto", {"color": _RED, "size": 9})]
    if np.any(on_all & ~on_plane):  # only when this plane hides an objective
        # One legend entry for every plane (the subplot title names what each one hides).
        traces.append(points(on_all & ~on_plane, HIDDEN_BETTER,
                             {"color": _PURPLE, "size": 10, "symbol": "circle-open", "line": {"width": 2}}))
    return traces
