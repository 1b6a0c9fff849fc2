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

__all__ = ["COLUMNS", "candidates_frame", "format_table", "front_plot_data", "front_table", "pareto_ids",
           "plot_front", "write_pareto_csv"]

COLUMNS = ("candidate_id", "generation", "accuracy", "latency_ms", "params", "madds", "encoding")


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


def front_table(records: Sequence[dict[str, Any]], ids: set[str]) -> list[dict[str, Any]]:
    """The front's records as rows of :data:`COLUMNS`, fastest first (ties: most accurate first)."""
    frame = candidates_frame(records)
    if not len(frame):
        return []
    front = frame[frame["candidate_id"].isin(ids)].loc[:, list(COLUMNS)]
    front = front.sort_values(["latency_ms", "accuracy"], ascending=[True, False], kind="stable")
    return [{k: _plain(v) for k, v in row.items()} for row in front.to_dict(orient="records")]


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers: rows go to JSON (summary.json, ``hwnas status --json``)."""
    return value.item() if isinstance(value, np.generic) else value


def write_pareto_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """The front table as CSV (header: :data:`COLUMNS`), written to a temp file and renamed."""
    tmp = path.with_suffix(".csv.tmp")
    pd.DataFrame(list(rows), columns=list(COLUMNS)).to_csv(tmp, index=False)
    tmp.replace(path)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    header = f"{'candidate_id':<16}  {'gen':>3}  {'accuracy':>8}  {'latency_ms':>10}  {'params':>9}  {'MAdds':>9}  encoding"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['candidate_id']:<16}  {r['generation']:>3}  {r['accuracy']:>8.4f}  {r['latency_ms']:>10.4f}  "
            f"{r['params'] / 1e6:>8.3f}M  {r['madds'] / 1e6:>8.2f}M  {r['encoding']}"
        )
    return "\n".join(lines)


def front_plot_data(records: Sequence[dict[str, Any]], ids: set[str]) -> dict[str, np.ndarray]:
    """What :func:`plot_front` draws: every candidate's latency and accuracy, which are on the front of
    all objectives, and the accuracy-vs-latency staircase (best accuracy at or below each latency)."""
    frame = candidates_frame(records)
    if not len(frame):
        empty = np.zeros(0)
        return {"latency": empty, "accuracy": empty, "pareto": empty.astype(bool), "step_latency": empty,
                "step_accuracy": empty}
    frame = frame.sort_values("latency_ms", kind="stable")
    latency, accuracy = frame["latency_ms"].to_numpy(float), frame["accuracy"].to_numpy(float)
    return {"latency": latency, "accuracy": accuracy, "pareto": frame["candidate_id"].isin(ids).to_numpy(),
            "step_latency": latency, "step_accuracy": np.maximum.accumulate(accuracy)}


def plot_front(records: Sequence[dict[str, Any]], ids: set[str], path: Path, title: str) -> None:
    """Accuracy vs latency of every candidate, the Pareto candidates highlighted (see :func:`front_plot_data`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = front_plot_data(records, ids)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    if not len(data["latency"]):
        ax.text(0.5, 0.5, "no candidate was scored", ha="center", va="center", transform=ax.transAxes)
    else:
        on = data["pareto"]
        ax.scatter(data["latency"][~on], data["accuracy"][~on], s=14, c="0.65", label="evaluated")
        ax.scatter(data["latency"][on], data["accuracy"][on], s=28, c="tab:red", label="Pareto (all objectives)")
        ax.step(data["step_latency"], data["step_accuracy"], where="post", c="tab:red", lw=1, alpha=0.6,
                label="accuracy-latency front")
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("supernet accuracy")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
