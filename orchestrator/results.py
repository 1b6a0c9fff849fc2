"""Pareto fronts, result tables and the plot, computed from the journal's candidate records.

The records become a :class:`pandas.DataFrame` once (:func:`candidates_frame`); the front, the table,
``pareto.csv`` and the plot are read from it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from searchers import Constraint, Objective, feasible, pareto_mask

__all__ = ["COLUMNS", "candidates_frame", "columns", "format_table", "front_plot_data", "front_table",
           "hidden_front_label", "pareto_ids", "plane_objectives", "plot_front", "write_pareto_csv"]

COLUMNS = ("candidate_id", "generation", "accuracy", "latency_ms", "params", "madds", "encoding")
RUN_ID_COLUMN = "mlflow_run_id"


def columns(quality: str = "accuracy") -> tuple[str, ...]:
    """The table's columns, with the task's headline score (``accuracy``, a detector's ``map``) third."""
    return tuple(quality if c == "accuracy" else c for c in COLUMNS)


def candidates_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The candidate records as a table, one row per candidate, indexed by ``candidate_id``."""
    frame = pd.DataFrame.from_records(list(records))
    return frame.set_index("candidate_id", drop=False) if len(frame) else frame


def pareto_ids(records: Sequence[dict[str, Any]], objectives: Sequence[Objective],
               constraints: Sequence[Constraint] = ()) -> set[str]:
    """Ids of the feasible candidates that no other feasible candidate dominates."""
    kept = [r for r in records if feasible(r, constraints)]
    if not kept:
        return set()
    sign = np.array([-1.0 if o.mode == "max" else 1.0 for o in objectives])
    points = candidates_frame(kept)[[o.metric for o in objectives]].to_numpy(dtype=float) * sign
    return {r["candidate_id"] for r, keep in zip(kept, pareto_mask(points)) if keep}


def front_table(records: Sequence[dict[str, Any]], ids: set[str], quality: str = "accuracy") -> list[dict[str, Any]]:
    """The front's records as rows of :func:`columns`, fastest first (ties: best ``quality`` first)."""
    frame = candidates_frame(records)
    if not len(frame):
        return []
    front = frame[frame["candidate_id"].isin(ids)].loc[:, list(columns(quality))]
    front = front.sort_values(["latency_ms", quality], ascending=[True, False], kind="stable")
    return [{k: _plain(v) for k, v in row.items()} for row in front.to_dict(orient="records")]


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers: rows go to JSON (summary.json, ``hwnas status --json``)."""
    return value.item() if isinstance(value, np.generic) else value


def _quality_of(rows: Sequence[dict[str, Any]], quality: str | None) -> str:
    """The rows' headline column: given, or the one column of a row that :data:`COLUMNS` lacks."""
    if quality is None and rows:
        quality = next((k for k in rows[0] if k not in COLUMNS and k != RUN_ID_COLUMN), "accuracy")
    return quality or "accuracy"


def write_pareto_csv(rows: Sequence[dict[str, Any]], path: Path, quality: str | None = None) -> None:
    """The front table as CSV (header: :func:`columns`), written to a temp file and renamed."""
    tmp = path.with_suffix(".csv.tmp")
    # Each row's MLflow run id last, where the rows carry one (finalize adds them once MLflow holds the runs).
    extra = [RUN_ID_COLUMN] if any(RUN_ID_COLUMN in row for row in rows) else []
    pd.DataFrame(list(rows), columns=list(columns(_quality_of(rows, quality))) + extra).to_csv(tmp, index=False)
    tmp.replace(path)


def format_table(rows: Sequence[dict[str, Any]], quality: str | None = None) -> str:
    quality = _quality_of(rows, quality)
    header = f"{'candidate_id':<16}  {'gen':>3}  {quality:>8}  {'latency_ms':>10}  {'params':>9}  {'MAdds':>9}  encoding"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['candidate_id']:<16}  {r['generation']:>3}  {r[quality]:>8.4f}  {r['latency_ms']:>10.4f}  "
            f"{r['params'] / 1e6:>8.3f}M  {r['madds'] / 1e6:>8.2f}M  {r['encoding']}"
        )
    return "\n".join(lines)


def front_plot_data(records: Sequence[dict[str, Any]], ids: set[str], quality: str = "accuracy", *,
                    objectives: Sequence[Objective] | None = None,
                    constraints: Sequence[Constraint] = ()) -> dict[str, np.ndarray]:
    """What :func:`plot_front` draws, fastest first: every candidate's ``ids``, ``latency`` and ``quality`` (its
    task's headline score); ``pareto``, which are on the front of all objectives (``ids``); ``plane``, which no
    feasible candidate beats in quality *and* latency; and the staircase of that plane's front (best feasible
    quality at or below each latency).

    With a third objective (e.g. params) a candidate can be on the front of all objectives yet beaten in this
    plane: what makes it Pareto-optimal is not plotted. ``pareto & ~plane`` are those candidates; the plot
    draws them apart so that they do not read as points below the front. ``objectives`` gives the two plotted
    quantities' directions (default: quality up, latency down); ``constraints`` are the search's, so that an
    infeasible candidate neither raises the staircase nor beats anyone.
    """
    frame = candidates_frame(records)
    if not len(frame):
        empty = np.zeros(0)
        return {"ids": empty.astype(str), "latency": empty, "quality": empty, "pareto": empty.astype(bool),
                "plane": empty.astype(bool), "step_latency": empty, "step_quality": empty}
    frame = frame.sort_values("latency_ms", kind="stable")
    latency, score = frame["latency_ms"].to_numpy(float), frame[quality].to_numpy(float)
    plane = pareto_ids(records, plane_objectives(quality, objectives), constraints)
    fits = np.array([feasible(r, constraints) for r in frame.to_dict(orient="records")], dtype=bool)
    best = np.fmax if _mode(quality, objectives, "max") == "max" else np.fmin
    cid = frame["candidate_id"].astype(str)
    # fmax/fmin skip NaN, so an infeasible (NaN-ed) or unscored candidate leaves the staircase where it was.
    return {"ids": cid.to_numpy(), "latency": latency, "quality": score, "pareto": cid.isin(ids).to_numpy(),
            "plane": cid.isin(plane).to_numpy(), "step_latency": latency,
            "step_quality": best.accumulate(np.where(fits, score, np.nan))}


def _mode(metric: str, objectives: Sequence[Objective] | None, default: str) -> str:
    return next((o.mode for o in objectives or () if o.metric == metric), default)


def plane_objectives(quality: str, objectives: Sequence[Objective] | None = None) -> tuple[Objective, Objective]:
    """The plot's two quantities as objectives (``quality`` and ``latency_ms``), directed as the search's
    ``objectives`` direct them, else quality up and latency down (whether or not the search optimised them)."""
    return (Objective(quality, _mode(quality, objectives, "max"), 0.5),
            Objective("latency_ms", _mode("latency_ms", objectives, "min"), 0.5))


def hidden_front_label(hidden: Sequence[str]) -> str:
    """The legend entry of front candidates beaten in a plot's plane: they are better in ``hidden``."""
    if not hidden:  # the objectives are unknown (an old caller): say so rather than guess
        return "Pareto, better in an objective not plotted"
    return f"Pareto, better in {'another objective' if len(hidden) == 1 else 'other objectives'} " \
           f"({', '.join(hidden)})"


def plot_front(records: Sequence[dict[str, Any]], ids: set[str], path: Path, title: str,
               quality: str = "accuracy", *, objectives: Sequence[Objective] | None = None,
               constraints: Sequence[Constraint] = ()) -> None:
    """``quality`` vs latency of every candidate, the Pareto candidates highlighted (see :func:`front_plot_data`).

    ``objectives`` (the search's) name the objectives the plot hides, in the legend entry of the front
    candidates that are beaten in this plane; without them the entry says only that one is hidden.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = front_plot_data(records, ids, quality, objectives=objectives, constraints=constraints)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    if not len(data["latency"]):
        ax.text(0.5, 0.5, "no candidate was scored", ha="center", va="center", transform=ax.transAxes)
    else:
        hidden = [o.metric for o in objectives or () if o.metric not in (quality, "latency_ms")]
        _draw_front(ax, data, quality, hidden_front_label(hidden))
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _draw_front(ax: Any, data: dict[str, np.ndarray], quality: str, hidden_label: str) -> None:
    on, plane = data["pareto"], data["plane"]
    ax.scatter(data["latency"][~on], data["quality"][~on], s=14, c="0.65", label="evaluated")
    ax.scatter(data["latency"][on & plane], data["quality"][on & plane], s=28, c="tab:red", label="Pareto")
    if np.any(on & ~plane):  # only with an objective the plot hides; an empty legend entry would puzzle
        ax.scatter(data["latency"][on & ~plane], data["quality"][on & ~plane], s=34, facecolors="none",
                   edgecolors="tab:purple", linewidths=1.4, label=hidden_label)
    ax.step(data["step_latency"], data["step_quality"], where="post", c="tab:red", lw=1, alpha=0.6,
            label=f"{quality}-latency front")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel(f"supernet {quality}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")  # dominated candidates crowd the lower right
