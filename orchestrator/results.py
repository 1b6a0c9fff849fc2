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

__all__ = ["COLUMNS", "candidates_frame", "columns", "format_table", "front_plot_data", "front_table", "pareto_ids",
           "plot_front", "write_pareto_csv"]

COLUMNS = ("candidate_id", "generation", "accuracy", "latency_ms", "params", "madds", "encoding")


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
        quality = next((k for k in rows[0] if k not in COLUMNS), "accuracy")
    return quality or "accuracy"


def write_pareto_csv(rows: Sequence[dict[str, Any]], path: Path, quality: str | None = None) -> None:
    """The front table as CSV (header: :func:`columns`), written to a temp file and renamed."""
    tmp = path.with_suffix(".csv.tmp")
    pd.DataFrame(list(rows), columns=list(columns(_quality_of(rows, quality)))).to_csv(tmp, index=False)
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


def front_plot_data(records: Sequence[dict[str, Any]], ids: set[str], quality: str = "accuracy") -> dict[str, np.ndarray]:
    """What :func:`plot_front` draws: every candidate's latency and ``quality`` (its task's headline
    score), which are on the front of all objectives, and the quality-vs-latency staircase (best quality at
    or below each latency)."""
    frame = candidates_frame(records)
    if not len(frame):
        empty = np.zeros(0)
        return {"latency": empty, "quality": empty, "pareto": empty.astype(bool), "step_latency": empty,
                "step_quality": empty}
    frame = frame.sort_values("latency_ms", kind="stable")
    latency, score = frame["latency_ms"].to_numpy(float), frame[quality].to_numpy(float)
    return {"latency": latency, "quality": score, "pareto": frame["candidate_id"].isin(ids).to_numpy(),
            "step_latency": latency, "step_quality": np.maximum.accumulate(score)}


def plot_front(records: Sequence[dict[str, Any]], ids: set[str], path: Path, title: str,
               quality: str = "accuracy") -> None:
    """``quality`` vs latency of every candidate, the Pareto candidates highlighted (see :func:`front_plot_data`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = front_plot_data(records, ids, quality)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    if not len(data["latency"]):
        ax.text(0.5, 0.5, "no candidate was scored", ha="center", va="center", transform=ax.transAxes)
    else:
        on = data["pareto"]
        ax.scatter(data["latency"][~on], data["quality"][~on], s=14, c="0.65", label="evaluated")
        ax.scatter(data["latency"][on], data["quality"][on], s=28, c="tab:red", label="Pareto (all objectives)")
        ax.step(data["step_latency"], data["step_quality"], where="post", c="tab:red", lw=1, alpha=0.6,
                label=f"{quality}-latency front")
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel(f"supernet {quality}")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
