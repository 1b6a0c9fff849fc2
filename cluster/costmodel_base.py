"""The cost-model interface every kind implements, its JSON form, and how fidelity is scored.

:class:`CostModel` is the registered ABC (:data:`COST_MODELS`); :func:`fidelity` compares a model's
predictions with held-out whole-model measurements (r^2, RMSE, Spearman and Kendall rank correlation);
:func:`penalised_ridge` is the least-squares solver the regression kinds share. The kinds themselves
live in :mod:`cluster.costmodels` (``linear``, ``lut``) and :mod:`cluster.kernel_costmodel` (``kernels``).
"""
from __future__ import annotations

import abc
import math
import os
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from spaces import get_space
from spaces.base import SearchSpace
from core.errors import HwnasError
from core.jsonio import canonical_json, read_json, write_json_atomic
from core.registry import Registry
from core.validation import invalid

__all__ = [
    "COST_MODELS",
    "COSTMODEL_SCHEMA",
    "CostModel",
    "MeasureFn",
    "check_fit_inputs",
    "cross_validated_penalty",
    "fidelity",
    "kendall_tau",
    "penalised_ridge",
    "ridge",
    "spearman_rho",
]

#: Version of the JSON form written by :meth:`CostModel.to_dict`.
COSTMODEL_SCHEMA = 1

#: ``measure(onnx_bytes, input_shape) -> milliseconds``: how the lookup table times one part.
MeasureFn = Callable[[bytes, tuple[int, ...]], float]

COST_MODELS: Registry[type["CostModel"]] = Registry("cost model")


# ------------------------------------------------------------------------------------------ interface
class CostModel(abc.ABC):
    """A latency predictor for the architectures of one search space, in milliseconds.

    Lifecycle: construct, :meth:`fit` once (or :meth:`load`), then :meth:`predict` many times. The
    JSON form holds ``schema_version``, ``kind``, the space's ``identity`` and the kind's ``state``;
    a model is refused for any space whose identity differs from the one it was fitted on.
    """

    kind: ClassVar[str]

    def __init__(self) -> None:
        self._space: SearchSpace | None = None

    # ---------------------------------------------------------------------------- abstract members
    @abc.abstractmethod
    def fit(self, space: SearchSpace, encodings: Sequence[Sequence[int]], latencies_ms: Sequence[float]) -> CostModel:
        """Fit to ``space`` from measured whole models; called once, before any :meth:`predict`.

        Args:
            space: The space every encoding belongs to; the model is bound to its identity.
            encodings: Architectures of ``space``.
            latencies_ms: Their measured latencies (finite, > 0), in the same order.

        Returns:
            ``self``, fitted. Raises :class:`HwnasError` on invalid input, leaving ``self`` unfitted.
        """

    @abc.abstractmethod
    def predict(self, encoding: Sequence[int]) -> float:
        """Predicted latency of ``encoding`` in milliseconds; only after :meth:`fit` or :meth:`load`.

        Deterministic, no measurement: equal inputs give equal floats, also after save and load.
        """

    @abc.abstractmethod
    def _state(self) -> dict[str, Any]:
        """The kind-specific fitted state as JSON-serialisable data; called by :meth:`to_dict`."""

    @classmethod
    @abc.abstractmethod
    def _from_state(cls, state: Mapping[str, Any], space: SearchSpace) -> CostModel:
        """Rebuild a fitted model from :meth:`_state` output; called by :meth:`from_dict`."""

    # ---------------------------------------------------------------------------- shared behaviour
    @property
    def space(self) -> SearchSpace:
        """The space the model was fitted on; :class:`HwnasError` if it is not fitted."""
        if self._space is None:
            raise HwnasError(f"{self.kind} cost model is not fitted. HINT: call fit() or CostModel.load() first.")
        return self._space

    def predict_many(self, encodings: Sequence[Sequence[int]]) -> np.ndarray:
        """:meth:`predict` of each encoding, as a float array in milliseconds."""
        return np.array([self.predict(e) for e in encodings], dtype=np.float64)

    def fidelity(self, encodings: Sequence[Sequence[int]], measured_ms: Sequence[float]) -> dict[str, float]:
        """:func:`fidelity` of this model on held-out measurements."""
        return fidelity(self, encodings, measured_ms)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``schema_version``, ``kind``, ``space`` (identity) and ``state``."""
        return {"schema_version": COSTMODEL_SCHEMA, "kind": self.kind, "space": self.space.identity,
                "state": self._state()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, space: SearchSpace | None = None) -> CostModel:
        """Rebuild a model from :meth:`to_dict` output, dispatching on ``kind``.

        Args:
            data: The JSON form.
            space: The space the caller will use the model with; refused unless its identity equals the
                stored one. ``None`` rebuilds the space from the stored identity.

        Raises:
            HwnasError: Another schema version or kind, another space, or a damaged ``state``.
        """
        if not isinstance(data, Mapping) or data.get("schema_version") != COSTMODEL_SCHEMA:
            version = data.get("schema_version") if isinstance(data, Mapping) else type(data).__name__
            raise HwnasError(f"cost model JSON must have schema_version {COSTMODEL_SCHEMA}, got {version!r}. "
                             f"HINT: refit the cost model with this version of hwnas.")
        target = COST_MODELS.get(str(data.get("kind")))
        if cls is not CostModel and target is not cls:
            raise HwnasError(f"cost model JSON is of kind {data.get('kind')!r}, not {cls.kind!r}. "
                             f"HINT: load it with CostModel.from_dict / CostModel.load.")
        identity = data.get("space")
        if space is None:
            space = _space_from_identity(identity)
        elif canonical_json(space.identity) != canonical_json(identity):
            raise HwnasError(
                f"this {data.get('kind')} cost model was fitted for space {canonical_json(identity)}, "
                f"not for {canonical_json(space.identity)}. HINT: fit a cost model for this space and settings."
            )
        try:
            return target._from_state(data.get("state") or {}, space)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise HwnasError(f"damaged cost model of kind {target.kind!r} ({type(exc).__name__}: {exc}). "
                             f"HINT: fit it again (`hwnas costmodel fit ... --force`).") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_dict` to ``path`` atomically."""
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, space: SearchSpace | None = None) -> CostModel:
        """Read a model written by :meth:`save` (see :meth:`from_dict` for ``space``).

        Raises:
            OSError: The file cannot be read.
            HwnasError: It is not JSON, or :meth:`from_dict` refuses it.
        """
        try:
            data = read_json(path)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError: a torn or foreign file
            raise HwnasError(f"cost model file {os.fspath(path)!r} is not readable JSON ({exc}). "
                             f"HINT: fit it again (`hwnas costmodel fit ... --out FILE --force`).") from None
        return cls.from_dict(data, space=space)


def _space_from_identity(identity: Any) -> SearchSpace:
    if not (isinstance(identity, Mapping) and isinstance(identity.get("settings"), Mapping)):
        raise HwnasError(f"cost model JSON lacks a space identity ({{'space': name, 'settings': {{...}}}}), "
                         f"got {identity!r}. HINT: the file is not a cost model written by hwnas.")
    return get_space(str(identity.get("space")), **identity["settings"])


def check_fit_inputs(space: SearchSpace, encodings: Sequence[Sequence[int]], latencies_ms: Sequence[float],
                      *, minimum: int) -> tuple[list[tuple[int, ...]], np.ndarray]:
    if not isinstance(space, SearchSpace):
        raise invalid("fit() argument 'space'", "must be a SearchSpace", space, "pass the space the encodings "
                      "belong to, e.g. spaces.get_space('moga')", error=HwnasError)
    encs = [space.validate(e) for e in encodings]
    y = _milliseconds("fit() argument 'latencies_ms'", latencies_ms)
    if len(encs) != len(y):
        raise invalid("fit() argument 'latencies_ms'", f"must hold one latency per encoding ({len(encs)})",
                      y.tolist(), "pass one latency each", error=HwnasError)
    if len(encs) < minimum:
        raise invalid("fit() argument 'encodings'", f"must hold at least {minimum} measured architectures", encs,
                      "measure more architectures", error=HwnasError)
    bad = ~(np.isfinite(y) & (y > 0))
    if np.any(bad):
        raise invalid("fit() argument 'latencies_ms'", "must be finite and > 0", y[bad][:5].tolist(),
                      "drop failed measurements (and their encodings)", error=HwnasError)
    return encs, y


def _milliseconds(where: str, values: Sequence[float]) -> np.ndarray:
    """``values`` as a flat float array; a non-numeric entry is an :class:`HwnasError`, not numpy's ValueError."""
    try:
        return np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise invalid(where, "must be a sequence of numbers (milliseconds)", values, "pass one float per encoding",
                      error=HwnasError) from None


# ------------------------------------------------------------------------------------------- fidelity
def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse = np.unique(values, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / np.bincount(inverse)[inverse]


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson correlation of average ranks); NaN if either is constant."""
    rx, ry = _ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, dtype=np.float64))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(rx @ ry) / denom if denom > 0 else float("nan")


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties in either variable corrected); NaN if either is constant. O(n^2) memory."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    upper = np.triu_indices(len(xa), k=1)
    dx = np.sign(xa[:, None] - xa[None, :])[upper]
    dy = np.sign(ya[:, None] - ya[None, :])[upper]
    denom = math.sqrt(float(np.count_nonzero(dx)) * float(np.count_nonzero(dy)))
    return float(np.sum(dx * dy)) / denom if denom > 0 else float("nan")


def fidelity(model: CostModel, encodings: Sequence[Sequence[int]], measured_ms: Sequence[float]) -> dict[str, float]:
    """How well ``model`` predicts held-out whole-model measurements.

    Returns:
        ``r2`` (1 - SS_res / SS_tot; may be negative), ``rmse_ms``, ``spearman`` and ``kendall``
        (tau-b) in [-1, 1] (NaN when the measurements or predictions are constant), and ``n``.
    """
    measured = _milliseconds("fidelity() argument 'measured_ms'", measured_ms)
    if len(measured) != len(encodings) or len(measured) < 2:
        raise HwnasError(f"fidelity() needs >= 2 encodings with one measurement each, got {len(encodings)} "
                         f"encodings and {len(measured)} measurements.")
    if not np.all(np.isfinite(measured)):
        raise invalid("fidelity() argument 'measured_ms'", "must be finite", measured.tolist(),
                      "drop failed measurements (and their encodings)", error=HwnasError)
    predicted = model.predict_many(encodings)
    residual = float(np.sum((measured - predicted) ** 2))
    total = float(np.sum((measured - measured.mean()) ** 2))
    return {
        "r2": 1.0 - residual / total if total > 0 else float("nan"),
        "rmse_ms": math.sqrt(residual / len(measured)),
        "spearman": spearman_rho(predicted, measured),
        "kendall": kendall_tau(predicted, measured),
        "n": len(measured),
    }


def ridge(x: np.ndarray, y: np.ndarray, *, alpha: float) -> tuple[np.ndarray, float]:
    """Ridge least squares with an unpenalised intercept: ``argmin |x w + b - y|^2 + alpha |w|^2``."""
    return penalised_ridge(x, y, np.full(x.shape[1], float(alpha)))


def penalised_ridge(x: np.ndarray, y: np.ndarray, penalties: np.ndarray) -> tuple[np.ndarray, float]:
    """``argmin |x w + b - y|^2 + sum_j penalties_j w_j^2`` with an unpenalised intercept ``b``.

    Solved in the dual (an ``n x n`` system) when there are more columns than rows, as with thousands
    of indicators and a few hundred measured models.
    """
    x_mean, y_mean = x.mean(axis=0), float(y.mean())
    xc, yc = x - x_mean, y - y_mean
    inv = 1.0 / penalties
    if xc.shape[1] > xc.shape[0]:
        scaled = xc * inv  # x P^-1
        weights = scaled.T @ np.linalg.solve(scaled @ xc.T + np.eye(len(xc)), yc)
    else:
        weights = np.linalg.solve(xc.T @ xc + np.diag(penalties), xc.T @ yc)
    return weights, y_mean - float(x_mean @ weights)


def cross_validated_penalty(grid: Sequence[float], n: int, fold_error: Callable[[float, np.ndarray, np.ndarray], float],
                            *, default: float, folds: int = 5) -> float:
    """The ``grid`` value with the lowest summed ``fold_error(value, train_mask, test_mask)`` over ``folds``
    fixed folds (row ``i`` in fold ``i % folds``); ``default`` for fewer than 10 rows."""
    if n < 10:
        return default
    fold_of = np.arange(n) % folds
    best, best_error = default, math.inf
    for value in grid:
        error = sum(fold_error(value, fold_of != f, fold_of == f) for f in range(folds))
        if error < best_error:
            best, best_error = value, error
    return best
