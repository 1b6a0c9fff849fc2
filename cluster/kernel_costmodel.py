"""The ``kernels`` cost model: latency as a sum over the kernels a network runs (nn-Meter's idea).

Per kernel kind (``pw``, ``dw5s2``, ``gconv3``, ``hardswish``, ``add``, ...) the space's op census
(:meth:`~spaces.SearchSpace.op_census`) counts kernels, multiply-adds and elements moved. A CPU
spends on each kind a fixed time per kernel (dispatch, a pass over the threads), a time per
multiply-add (compute-bound) and a time per element (memory-bound), at its own rates; the model is
that sum, plus an intercept:

    latency = b + sum over kinds k of (c_k * count_k + m_k * madds_k + e_k * elems_k)

What the seed 000 per-layer indicators need thousands of samples to learn, these few dozen rates
learn from a hundred: they are shared by every layer and every choice, and they extrapolate to
blocks never measured. Three choices make it hold on settings nobody tuned it for:

* **relative error**: every row is weighted by 1 / latency, so a 3 ms model counts as much as a
  30 ms one (an absolute fit lets the largest models decide, and a search ranks all of them);
* **non-negative rates**: no kind of work makes a network faster; the constraint keeps collinear
  kinds (a depthwise conv always followed by its pointwise) from trading signs, which is what
  breaks a linear fit on an input size or width it was not fitted at;
* **a ridge penalty chosen by 5-fold cross-validation** on standardised columns.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from spaces.base import SearchSpace
from core.errors import HwnasError
from core.validation import check_number

from .costmodel_base import COST_MODELS, CostModel, check_fit_inputs, cross_validated_penalty

__all__ = ["KernelCostModel", "relative_ridge"]


@COST_MODELS.register("kernels")
class KernelCostModel(CostModel):
    """Per-kernel-kind fixed, compute and memory costs over the op census, fitted for relative error.

    Columns are the census features (``"<kind>.count"``, ``".madds"``, ``".elems"``) seen in
    training that vary across the training set (a constant one is the intercept's); a kind never
    seen in training contributes 0 at predict time (each one met is counted in :attr:`unseen_kinds`).

    Args:
        alpha: Ridge penalty on the standardised rates (> 0), or ``None`` to choose it by 5-fold
            cross-validation of the relative error.
        nonnegative: Constrain every rate to be >= 0 (the intercept is free).
    """

    kind = "kernels"
    ALPHA_GRID: tuple[float, ...] = (1e-8, 1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)

    def __init__(self, *, alpha: float | None = None, nonnegative: bool = True) -> None:
        super().__init__()
        if alpha is not None:
            alpha = check_number("KernelCostModel argument 'alpha'", alpha, low=0.0, low_open=True,
                                 hint="leave it None to choose it by cross-validation")
        self.alpha = alpha
        self.nonnegative = bool(nonnegative)
        self._names: list[str] = []
        self._kinds: set[str] = set()
        self._scales = np.zeros(0)
        self._rates = np.zeros(0)
        self._intercept_ms = 0.0
        #: Census features met at predict time that had no training column.
        self.unseen_kinds = 0

    def fit(self, space: SearchSpace, encodings: Sequence[Sequence[int]], latencies_ms: Sequence[float]) -> KernelCostModel:
        encs, y = check_fit_inputs(space, encodings, latencies_ms, minimum=2)
        censuses = [space.op_census(e) for e in encs]
        names = sorted({name for census in censuses for name in census})
        self._kinds = {name.rsplit(".", 1)[0] for name in names}
        raw = np.array([[census.get(name, 0.0) for name in names] for census in censuses]).reshape(len(encs), -1)
        varies = raw.std(axis=0) > 0
        self._names = [name for name, keep in zip(names, varies) if keep]
        raw = raw[:, varies]
        self._scales = raw.std(axis=0) if raw.size else np.zeros(0)
        x = raw / self._scales if raw.size else raw
        alpha = self.alpha if self.alpha is not None else self._cross_validated_alpha(x, y)
        self.alpha = alpha
        standardised, self._intercept_ms = relative_ridge(x, y, alpha=alpha, nonnegative=self.nonnegative)
        self._rates = standardised / self._scales if len(standardised) else standardised
        self._space = space
        return self

    def _cross_validated_alpha(self, x: np.ndarray, y: np.ndarray) -> float:
        """The grid alpha with the lowest 5-fold cross-validated relative squared error."""
        def fold_error(alpha: float, train: np.ndarray, test: np.ndarray) -> float:
            w, b = relative_ridge(x[train], y[train], alpha=alpha, nonnegative=self.nonnegative)
            return float(np.sum(((x[test] @ w + b - y[test]) / y[test]) ** 2))

        return cross_validated_penalty(self.ALPHA_GRID, len(y), fold_error, default=1e-3)

    def features(self, encoding: Sequence[int]) -> np.ndarray:
        """The raw census row of ``encoding`` over the training columns."""
        census = self.space.op_census(encoding)
        self.unseen_kinds += len({name.rsplit(".", 1)[0] for name in census} - self._kinds)
        return np.array([census.get(name, 0.0) for name in self._names])

    def predict(self, encoding: Sequence[int]) -> float:
        return self._intercept_ms + float(self.features(encoding) @ self._rates)

    def rates(self) -> dict[str, float]:
        """The fitted rate of every column (ms per kernel, per multiply-add, per element)."""
        return dict(zip(self._names, self._rates.tolist()))

    def _state(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "nonnegative": self.nonnegative, "intercept_ms": self._intercept_ms,
                "kinds": sorted(self._kinds), "columns": list(self._names), "scales": self._scales.tolist(), "rates": self._rates.tolist()}

    @classmethod
    def _from_state(cls, state: Mapping[str, Any], space: SearchSpace) -> KernelCostModel:
        model = cls(alpha=float(state["alpha"]), nonnegative=bool(state["nonnegative"]))
        model._names = [str(name) for name in state["columns"]]
        model._kinds = {str(kind) for kind in state["kinds"]}
        model._scales = np.asarray(state["scales"], dtype=np.float64)
        model._rates = np.asarray(state["rates"], dtype=np.float64)
        model._intercept_ms = float(state["intercept_ms"])
        if not len(model._names) == len(model._scales) == len(model._rates):
            raise HwnasError("kernels cost model JSON has a different number of columns, scales and rates.")
        model._space = space
        return model


def relative_ridge(x: np.ndarray, y: np.ndarray, *, alpha: float, nonnegative: bool) -> tuple[np.ndarray, float]:
    """``argmin sum_i ((x_i w + b - y_i) / y_i)^2 + alpha |w|^2`` with a free intercept ``b``, and
    ``w >= 0`` when ``nonnegative``. Returns ``(w, b)``.

    Solved as a least-squares problem on rows scaled by ``1 / y`` with ``sqrt(alpha) I`` appended; the
    non-negative case by non-negative least squares with the intercept split into two signed parts.
    """
    n, p = x.shape
    scale = 1.0 / y
    design = np.hstack([x * scale[:, None], scale[:, None]])
    design = np.vstack([design, np.hstack([math.sqrt(alpha) * np.eye(p), np.zeros((p, 1))])])
    target = np.concatenate([np.ones(n), np.zeros(p)])
    if not nonnegative:
        solution = np.linalg.lstsq(design, target, rcond=None)[0]
        return solution[:p], float(solution[p])
    from scipy.optimize import nnls

    signed = np.hstack([design, -design[:, p:]])  # b = b_plus - b_minus, both >= 0
    solution = nnls(signed, target, maxiter=50 * (p + 2))[0]
    return solution[:p], float(solution[p] - solution[p + 1])
