"""The ranking check: do the supernet's scores order architectures as stand-alone training does?

Kendall tau (tau-b, ties counted) and Spearman between the supernet score and the retrained score of
every retrained architecture that the search scored. Below 3 architectures neither says anything, and
both are reported as missing rather than as a number.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

__all__ = ["MIN_PAIRS", "ranking_check", "plot_ranking", "format_ranking"]

MIN_PAIRS = 3


def ranking_check(pairs: Sequence[tuple[str, float, float]]) -> dict[str, Any]:
    """``pairs`` of (candidate id, supernet score, retrained score) -> ``{n, kendall_tau, kendall_p,
    spearman, spearman_p}`` (the statistics ``None`` below :data:`MIN_PAIRS` or when a side is constant)."""
    import math

    from scipy import stats

    out: dict[str, Any] = {"n": len(pairs), "kendall_tau": None, "kendall_p": None, "spearman": None,
                           "spearman_p": None}
    if len(pairs) < MIN_PAIRS:
        return out
    supernet = [p[1] for p in pairs]
    retrained = [p[2] for p in pairs]
    if len(set(supernet)) < 2 or len(set(retrained)) < 2:
        return out  # a constant side has no order to agree with
    tau = stats.kendalltau(supernet, retrained)
    rho = stats.spearmanr(supernet, retrained)
    for key, value in (("kendall_tau", tau.statistic), ("kendall_p", tau.pvalue), ("spearman", rho.statistic),
                       ("spearman_p", rho.pvalue)):
        out[key] = None if value is None or math.isnan(float(value)) else float(value)
    return out


def format_ranking(check: dict[str, Any], quality: str) -> str:
    if check["kendall_tau"] is None:
        why = (f"needs >= {MIN_PAIRS} retrained architectures the search scored, has {check['n']}"
               if check["n"] < MIN_PAIRS else "one side's scores are all equal")
        return f"ranking check ({quality}): not computed ({why})"
    return (f"ranking check ({quality}, supernet vs retrained, n={check['n']}): Kendall tau {check['kendall_tau']:.3f} "
            f"(p {check['kendall_p']:.3g}), Spearman {check['spearman']:.3f} (p {check['spearman_p']:.3g})")


def plot_ranking(pairs: Sequence[tuple[str, float, float]], check: dict[str, Any], path: Path, *, quality: str,
                 title: str) -> None:
    """Supernet score against retrained score, one point per architecture, labelled by candidate id."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 4.6), dpi=120)
    if pairs:
        ax.scatter([p[1] for p in pairs], [p[2] for p in pairs], s=30, c="tab:blue")
        for cid, x, y in pairs:
            ax.annotate(cid[:8], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    else:
        ax.text(0.5, 0.5, "no retrained candidate of the search", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"supernet {quality}")
    ax.set_ylabel(f"retrained {quality}")
    stat = (f"Kendall tau {check['kendall_tau']:.3f}, Spearman {check['spearman']:.3f}, n={check['n']}"
            if check.get("kendall_tau") is not None else f"n={check['n']}: too few for a rank correlation")
    ax.set_title(f"{title}\n{stat}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
