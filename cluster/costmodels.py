"""Latency cost models: cheap surrogates of measured latency, fitted once per device.

Two kinds share one interface (:class:`CostModel`) and one JSON form:

* ``linear`` (:class:`LinearCostModel`, seed 000 section 4): per layer position, an indicator of the
  decoded block's full argument tuple (type, in/out channels, kernel, expansion, SE, stride, ...),
  plus an intercept, fitted by ridge least squares to whole-model measurements.
* ``lut`` (:class:`LookupTableCostModel`, seed 003 section 4.2): every (layer, choice) block measured
  alone on its fixed input, plus the fixed stem and tail once; a model's latency is the sum.

:func:`fidelity` compares a model's predictions with held-out whole-model measurements (r^2, RMSE,
Spearman and Kendall rank correlation).
"""
from __future__ import annotations

import abc
import dataclasses
import math
import os
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from spaces import get_space
from spaces.base import SearchSpace
from core.errors import HwnasError
from core.jsonio import canonical_json, read_json, write_json_atomic
from core.registry import Registry
from core.validation import check_number, invalid

from .measure import measure_onnx

__all__ = [
    "COST_MODELS",
    "COSTMODEL_SCHEMA",
    "CostModel",
    "LinearCostModel",
    "LookupTableCostModel",
    "MeasureFn",
    "block_key",
    "fidelity",
    "kendall_tau",
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


def _check_fit_inputs(space: SearchSpace, encodings: Sequence[Sequence[int]], latencies_ms: Sequence[float],
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


# ---------------------------------------------------------------------------------------- linear model
def block_key(args: Any) -> str:
    """The indicator key of one decoded block: its type name and every field, as canonical JSON."""
    return canonical_json([type(args).__name__, dataclasses.asdict(args)])


@COST_MODELS.register("linear")
class LinearCostModel(CostModel):
    """Ridge regression on per-layer block indicators (seed 000, section 4), plus op-level features.

    Columns:

    * one indicator per (layer position, :func:`block_key`) seen in training: the cross product of
      layer type, input / output channels, kernel, expansion, ... of seed 000's linear model;
    * where the space offers ``op_features(encoding)`` (MobileDet: MAdds, tensor traffic and count per
      conv kind), those sums too, standardised and almost unpenalised. They carry what indicators
      learn only from thousands of samples: that a wider or larger choice costs more, in proportion
      to its work, in every layer. The indicators then fit what is specific to a layer and a choice.

    Fitted in microseconds, predicted in ms, with an unpenalised intercept. The indicator penalty
    ``alpha`` (microsecond^2 units) is chosen by 5-fold cross-validation from a grid unless given. A
    block never seen at a position contributes 0 at predict time (counted in :attr:`unseen_blocks`).

    Args:
        alpha: Indicator ridge penalty (> 0), or ``None`` to choose it by cross-validation.
        op_features: Use the space's ``op_features`` when it has them.
    """

    kind = "linear"
    ALPHA_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
    #: Penalty of a standardised op feature, relative to ``alpha``: small, so they are used first.
    OP_PENALTY = 1e-6

    def __init__(self, *, alpha: float | None = None, op_features: bool = True) -> None:
        super().__init__()
        if alpha is not None:
            alpha = check_number("LinearCostModel argument 'alpha'", alpha, low=0.0, low_open=True,
                                 hint="leave it None to choose it by cross-validation")
        self.alpha = alpha
        self.use_op_features = bool(op_features)
        self._columns: dict[tuple[int, str], int] = {}
        self._op_names: list[str] = []
        self._op_scales = np.zeros(0)
        self._weights_us = np.zeros(0)
        self._intercept_us = 0.0
        #: Blocks met at predict time whose (position, key) had no training column.
        self.unseen_blocks = 0

    def fit(self, space: SearchSpace, encodings: Sequence[Sequence[int]], latencies_ms: Sequence[float]) -> LinearCostModel:
        encs, y = _check_fit_inputs(space, encodings, latencies_ms, minimum=2)
        keys = [list(enumerate(block_key(b) for b in space.block_args(e))) for e in encs]
        self._space = space
        self._columns = {col: i for i, col in enumerate(sorted({k for row in keys for k in row}))}
        ops = [self._raw_op_features(e) for e in encs]
        self._op_names = sorted({name for row in ops for name in row})
        raw = np.array([[row.get(name, 0.0) for name in self._op_names] for row in ops]).reshape(len(encs), -1)
        spread = raw.std(axis=0) if len(raw) else np.zeros(0)
        self._op_scales = np.where(spread > 0, spread, 1.0)
        x = np.stack([self._row(e) for e in encs])
        y_us = y * 1000.0
        alpha = self.alpha if self.alpha is not None else self._cross_validated_alpha(x, y_us)
        self.alpha = alpha
        self._weights_us, self._intercept_us = penalised_ridge(x, y_us, self._penalties(alpha))
        return self

    def _raw_op_features(self, encoding: Sequence[int]) -> dict[str, float]:
        return dict(self.space.op_features(encoding)) if self.use_op_features else {}

    def _penalties(self, alpha: float) -> np.ndarray:
        return np.concatenate([np.full(len(self._columns), alpha), np.full(len(self._op_names), alpha * self.OP_PENALTY)])

    def _cross_validated_alpha(self, x: np.ndarray, y_us: np.ndarray) -> float:
        """The grid alpha with the lowest 5-fold cross-validated squared error (fold order is fixed)."""
        n = len(y_us)
        if n < 10:
            return 1.0
        folds = np.arange(n) % 5
        best, best_error = 1.0, math.inf
        for alpha in self.ALPHA_GRID:
            error = 0.0
            for f in range(5):
                train, test = folds != f, folds == f
                w, b = penalised_ridge(x[train], y_us[train], self._penalties(alpha))
                error += float(np.sum((x[test] @ w + b - y_us[test]) ** 2))
            if error < best_error:
                best, best_error = alpha, error
        return best

    def _row(self, encoding: Sequence[int]) -> np.ndarray:
        row = np.zeros(len(self._columns) + len(self._op_names))
        for key in enumerate(block_key(b) for b in self.space.block_args(encoding)):
            if key in self._columns:
                row[self._columns[key]] = 1.0
        if self._op_names:
            ops = self._raw_op_features(encoding)
            row[len(self._columns):] = [ops.get(name, 0.0) for name in self._op_names]
            row[len(self._columns):] /= self._op_scales
        return row

    def features(self, encoding: Sequence[int]) -> np.ndarray:
        """The feature row of ``encoding``: indicators over the training columns, then scaled op features."""
        return self._row(encoding)

    def predict(self, encoding: Sequence[int]) -> float:
        row = self._row(encoding)
        self.unseen_blocks += len(self.space.block_args(encoding)) - int(row[: len(self._columns)].sum())
        return (self._intercept_us + float(row @ self._weights_us)) / 1000.0

    def _state(self) -> dict[str, Any]:
        ordered = sorted(self._columns.items(), key=lambda item: item[1])
        return {"alpha": self.alpha, "intercept_us": self._intercept_us, "op_features": self.use_op_features,
                "columns": [[pos, key] for (pos, key), _ in ordered], "op_names": list(self._op_names),
                "op_scales": self._op_scales.tolist(), "weights_us": self._weights_us.tolist()}

    @classmethod
    def _from_state(cls, state: Mapping[str, Any], space: SearchSpace) -> LinearCostModel:
        model = cls(alpha=float(state["alpha"]), op_features=bool(state.get("op_features", False)))
        model._columns = {(int(pos), str(key)): i for i, (pos, key) in enumerate(state["columns"])}
        model._op_names = [str(name) for name in state.get("op_names", [])]
        model._op_scales = np.asarray(state.get("op_scales", []), dtype=np.float64)
        model._weights_us = np.asarray(state["weights_us"], dtype=np.float64)
        model._intercept_us = float(state["intercept_us"])
        if len(model._weights_us) != len(model._columns) + len(model._op_names) or len(model._op_scales) != len(
            model._op_names
        ):
            raise HwnasError("linear cost model JSON has a different number of columns and weights.")
        model._space = space
        return model


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


# ---------------------------------------------------------------------------------- lookup-table model
def measure_median_ms(onnx_bytes: bytes, input_shape: tuple[int, ...]) -> float:
    """The default :data:`MeasureFn`: :func:`~cluster.measure.measure_onnx`'s median, default effort."""
    return measure_onnx(onnx_bytes, input_shape).median_ms


@COST_MODELS.register("lut")
class LookupTableCostModel(CostModel):
    """Per-layer latency lookup table (seed 003, section 4.2).

    :meth:`fit` measures every (layer, choice) block alone on its fixed input, and the fixed parts
    (stem with the first block; last conv with the head) once; the prediction is their sum plus a
    single additive ``bias_ms``. The bias is the mean of ``measured - sum`` over the ``encodings``
    given to :meth:`fit` (0 when none are given): it absorbs what summing parts misses, mostly
    per-session-run overhead counted once per part. Blocks with equal arguments and input shape
    are measured once.

    Needs a space with :meth:`~spaces.SearchSpace.layer_parts` (its layers keep their input and output
    shapes whatever the choice, so every block has a fixed input): MoGA, MobileNet and EdgeTPU.

    Args:
        measure: Times one ONNX model; defaults to :func:`measure_median_ms`. Only :meth:`fit` uses it.
    """

    kind = "lut"

    def __init__(self, *, measure: MeasureFn | None = None) -> None:
        super().__init__()
        self._measure = measure or measure_median_ms
        self._table: list[list[float]] = []
        self._fixed_ms = 0.0
        self.bias_ms = 0.0

    def fit(self, space: SearchSpace, encodings: Sequence[Sequence[int]], latencies_ms: Sequence[float]) -> LookupTableCostModel:
        encs, y = _check_fit_inputs(space, encodings, latencies_ms, minimum=0)
        parts = space.layer_parts()
        if parts is None:
            raise HwnasError(f"lookup-table cost model: space {space.name!r} has layers whose choices change their "
                             f"input or output shape, so a block cannot be timed alone on a fixed input. "
                             f"HINT: use the 'linear' cost model.")
        cache: dict[str, float] = {}
        table = [[self._time(lambda a=args: parts.block(a), shape, cache, key=block_key(args)) for args in choices]
                 for choices, shape in zip(parts.choices, parts.layer_inputs)]
        fixed = self._time(lambda: parts.prefix, parts.input_shape, cache) + self._time(
            lambda: parts.suffix, parts.suffix_input, cache)
        self._space, self._table, self._fixed_ms, self.bias_ms = space, table, fixed, 0.0
        if encs:
            self.bias_ms = float(np.mean(y - np.array([self.predict(e) for e in encs])))
        return self

    def _time(self, build: Callable[[], Any], shape: tuple[int, ...], cache: dict[str, float], *,
              key: str | None = None) -> float:
        """Latency of ``build()`` on ``shape``; measured once per (``key``, shape) when a key is given."""
        from spaces.export import export_onnx

        cache_key = canonical_json([key, list(shape)]) if key is not None else None
        if cache_key is not None and cache_key in cache:
            return cache[cache_key]
        ms = float(self._measure(export_onnx(build(), shape), shape))
        if not (math.isfinite(ms) and ms > 0):
            raise HwnasError(f"lookup-table cost model: measure() returned {ms!r} ms for a part with input "
                             f"{shape}; it must be finite and > 0.")
        if cache_key is not None:
            cache[cache_key] = ms
        return ms

    def predict(self, encoding: Sequence[int]) -> float:
        values = self.space.validate(encoding)
        return self._fixed_ms + self.bias_ms + sum(self._table[i][c] for i, c in enumerate(values))

    def _state(self) -> dict[str, Any]:
        return {"table_ms": self._table, "fixed_ms": self._fixed_ms, "bias_ms": self.bias_ms}

    @classmethod
    def _from_state(cls, state: Mapping[str, Any], space: SearchSpace) -> LookupTableCostModel:
        model = cls()
        model._table = [[float(v) for v in row] for row in state["table_ms"]]
        if [len(row) for row in model._table] != [d.size for d in space.dims]:
            raise HwnasError(f"lut cost model JSON has a table of another shape than space {space.name!r}'s layers.")
        model._fixed_ms, model.bias_ms = float(state["fixed_ms"]), float(state["bias_ms"])
        model._space = space
        return model
