"""Pareto fronts, result tables and the plot, computed from the journal's candidate records."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .config import Constraint, Objective

__all__ = ["pareto_ids", "front_table", "write_pareto_csv", "plot_front", "format_table"]


def _feasible(rec: dict[str, Any], constraints: Sequence[Constraint]) -> bool:
    for c in constraints:
        v = float(rec[c.metric])
        if (c.op == "<=" and v > c.value) or (c.op == ">=" and v < c.value):
            return False
    return True


def pareto_ids(records: Sequence[dict[str, Any]], objectives: Sequence[Objective],
               constraints: Sequence[Constraint] = ()) -> set[str]:
    """Ids of the feasible candidates that no other feasible candidate dominates."""
    from searchers import pareto_mask

    feasible = [r for r in records if _feasible(r, constraints)]
    if not feasible:
        return set()
    sign = np.array([-1.0 if o.mode == "max" else 1.0 for o in objectives])
    points = np.array([[float(r[o.metric]) for o in objectives] for r in feasible]) * sign
    mask = pareto_mask(points)
    return {r["candidate_id"] for r, keep in zip(feasible, mask) if keep}


COLUMNS = ("candidate_id", "generation", "accuracy", "latency_ms", "params", "madds", "encoding")


def front_table(records: Sequence[dict[str, Any]], ids: set[str]) -> list[dict[str, Any]]:
    """The front's records as rows, fastest first."""
    rows = [{k: r[k] for k in COLUMNS} for r in records if r["candidate_id"] in ids]
    return sorted(rows, key=lambda r: (r["latency_ms"], -r["accuracy"]))


def write_pareto_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
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


def plot_front(records: Sequence[dict[str, Any]], ids: set[str], path: Path, title: str) -> None:
    """Accuracy vs latency of every candidate, the Pareto candidates highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    if not records:
        ax.text(0.5, 0.5, "no candidate was scored", ha="center", va="center", transform=ax.transAxes)
        fig.savefig(path)
        plt.close(fig)
        return
    lat = np.array([r["latency_ms"] for r in records])
    acc = np.array([r["accuracy"] for r in records])
    on = np.array([r["candidate_id"] in ids for r in records])
    ax.scatter(lat[~on], acc[~on], s=14, c="0.65", label="evaluated")
    ax.scatter(lat[on], acc[on], s=28, c="tab:red", label="Pareto (all objectives)")
    order = np.argsort(lat, kind="stable")
    best = np.maximum.accumulate(acc[order])  # the accuracy-vs-latency front of all candidates
    ax.step(lat[order], best, where="post", c="tab:red", lw=1, alpha=0.6, label="accuracy-latency front")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("supernet accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
