"""Latency cost models: cheap surrogates of measured latency, fitted once per device.

Three kinds share one interface (:class:`~cluster.costmodel_base.CostModel`) and one JSON form:

* ``linear`` (:class:`LinearCostModel`, seed 000 section 4): per layer position, an indicator of the
  decoded block's full argument tuple (type, in/out channels, kernel, expansion, SE, stride, ...),
  plus an intercept, fitted by ridge least squares to whole-model measurements.
* ``lut`` (:class:`LookupTableCostModel`, seed 003 section 4.2): every (layer, choice) block measured
  alone on its fixed input, plus the fixed stem and tail once; a model's latency is the sum.
* ``kernels`` (:class:`~cluster.kernel_costmodel.KernelCostModel`, nn-Meter's kernel-level idea):
  a fixed cost, a compute rate and a memory rate per kernel kind, over the space's op census,
  fitted for relative error.

Importing this module registers all three; :func:`fidelity` scores any of them on held-out
measurements.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from spaces.base import SearchSpace
from core.errors import HwnasError
from core.jsonio import canonical_json
from core.validation import check_number

from .costmodel_base import (COST_MODELS, COSTMODEL_SCHEMA, CostModel, MeasureFn, check_fit_inputs,
                             cross_validated_penalty, fidelity, kendall_tau, penalised_ridge, ridge, spearman_rho)
from .kernel_costmodel import KernelCostModel
from .measure import measure_onnx

__all__ = [
    "COST_MODELS",
    "COSTMODEL_SCHEMA",
    "CostModel",
    "KernelCostModel",
    "LinearCostModel",
    "LookupTableCostModel",
    "MeasureFn",
    "block_key",
    "fidelity",
    "kendall_tau",
    "penalised_ridge",
    "ridge",
    "spearman_rho",
]


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
        encs, y = check_fit_inputs(space, encodings, latencies_ms, minimum=2)
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
        def fold_error(alpha: float, train: np.ndarray, test: np.ndarray) -> float:
            w, b = penalised_ridge(x[train], y_us[train], self._penalties(alpha))
            return float(np.sum((x[test] @ w + b - y_us[test]) ** 2))

        return cross_validated_penalty(self.ALPHA_GRID, len(y_us), fold_error, default=1.0)

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
        encs, y = check_fit_inputs(space, encodings, latencies_ms, minimum=0)
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
