"""The cost-model contract: a pytest suite that every kind registered in ``COST_MODELS`` must pass.

Shipped with the package (as Optuna ships ``optuna.testing``) so a new kind is tested without anyone
writing a test. In a test module::

    from cluster.testing import *  # noqa: F401,F403

runs the unit contract once per registered kind (the kinds are read when this module is imported:
import the module that registers a new kind first). The same contract on real ONNX Runtime
measurements starts ONNX Runtime, so it belongs in a ``*_integration.py`` module::

    from cluster.testing import cost_model_kind, test_contract_on_onnx_runtime  # noqa: F401

A kind tells the suite how to build it for tests with :func:`register_contract_factory`; a kind without
a factory fails :func:`test_kind_has_a_contract_factory` and every test that needs one, naming the fix.

**The known answer.** :class:`SyntheticDevice` is a device whose latency is exactly
``base_ms + ms_per_madd * MAdds`` of the model it is given, MAdds counted from the ONNX graph
(:func:`onnx_madds`). Every kind is fitted on :func:`known_answer_problem` (MoGA architectures timed on
that device) and must predict held-out architectures with r^2 > :data:`MIN_R2` and Kendall's tau >
:data:`MIN_KENDALL`. The right answer is known: a lookup table sums the parts' MAdds and its bias
removes the per-part ``base_ms``, so it is exact; a per-layer linear model is exact too, since each
layer's MAdds depend only on that layer's choice; the kernel model's per-kind MAdds sum to the total. A kind below the floors is wrong, not unlucky.

The suite needs pytest and ``onnx``; it is imported by tests only, never by hwnas itself.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Sequence

import numpy as np
import pytest

from core.errors import HwnasError
from core.registry import Registry
from spaces import MogaSpace, export_onnx, get_space
from spaces.base import Encoding, SearchSpace

from .calibration import sample_architectures
from .costmodels import (COST_MODELS, COSTMODEL_SCHEMA, CostModel, KernelCostModel, LinearCostModel,
                         LookupTableCostModel, MeasureFn)
from .measure import MeasureOptions, measure_onnx

__all__ = [
    "CONTRACT_FACTORIES",
    "MIN_KENDALL",
    "MIN_R2",
    "ONNX_RUNTIME_OPTIONS",
    "KnownAnswer",
    "SyntheticDevice",
    "contract_model",
    "cost_model_kind",
    "fitted_on_known_answer",
    "known_answer",
    "known_answer_model",
    "known_answer_problem",
    "onnx_madds",
    "onnx_runtime_ms",
    "onnx_runtime_problem",
    "register_contract_factory",
    "test_kind_has_a_contract_factory",
    "test_known_answer_fidelity_floors",
    "test_known_answer_is_consistent",
    "test_predictions_are_finite_positive_and_deterministic",
    "test_refused_for_another_space_version_or_kind",
    "test_save_load_gives_identical_predictions",
    "test_unfitted_model_refuses_to_predict",
]

#: Held-out r^2 every kind must exceed on the known-answer problem.
MIN_R2 = 0.95
#: Held-out Kendall's tau every kind must exceed on the known-answer problem.
MIN_KENDALL = 0.8

#: ``factory(measure) -> an unfitted model``; ``measure`` times parts for kinds that measure them.
ContractFactory = Callable[[MeasureFn], CostModel]

#: How the contract builds each kind; see :func:`register_contract_factory`.
CONTRACT_FACTORIES: Registry[ContractFactory] = Registry("cost-model contract factory")

#: The kinds the suite runs for: those registered when this module was imported.
KINDS = COST_MODELS.names()


def register_contract_factory(kind: str) -> Callable[[ContractFactory], ContractFactory]:
    """Decorator: how the contract suite builds an unfitted ``kind`` model.

    Register it in the test module (or ``conftest.py``) that imports the suite; any time before the
    tests run will do (only the kind itself must be in ``COST_MODELS`` before the import)::

        @register_contract_factory("mine")
        def _build_mine(measure: MeasureFn) -> CostModel:
            return MyCostModel(measure=measure)

    Raises:
        HwnasError: A different factory is already registered for ``kind``.
    """
    return CONTRACT_FACTORIES.register(kind)


def contract_model(kind: str, measure: MeasureFn) -> CostModel:
    """An unfitted ``kind`` model from its contract factory; fails the test if the kind has none."""
    if kind not in CONTRACT_FACTORIES:
        pytest.fail(f"cost model kind {kind!r} is registered in COST_MODELS but has no contract factory. HINT: "
                    f"register one: @cluster.testing.register_contract_factory({kind!r}) on a function "
                    f"(measure) -> an unfitted model.", pytrace=False)
    return CONTRACT_FACTORIES.get(kind)(measure)


register_contract_factory("linear")(lambda measure: LinearCostModel())
register_contract_factory("lut")(lambda measure: LookupTableCostModel(measure=measure))
register_contract_factory("kernels")(lambda measure: KernelCostModel())


# ------------------------------------------------------------------------------------ known answer
def onnx_madds(onnx_bytes: bytes) -> int:
    """Multiply-adds of an ONNX graph's ``Conv``, ``Gemm`` and ``MatMul`` nodes, shapes by inference.

    The convention of ``reference/architectures.md`` (MAdds of Conv2d and Linear): one multiply-add per
    output element and reduced input element; other operators count nothing.
    """
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load_from_string(onnx_bytes), strict_mode=True)
    graph = model.graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*graph.value_info, *graph.input, *graph.output]}
    shapes.update({t.name: list(t.dims) for t in graph.initializer})
    total = 0
    for node in graph.node:
        if node.op_type == "Conv":  # weight (out, in / groups, kh, kw): each output reduces in / groups * kh * kw
            total += math.prod(shapes[node.output[0]]) * math.prod(shapes[node.input[1]][1:])
        elif node.op_type in ("Gemm", "MatMul"):
            a = shapes[node.input[0]]
            trans_a = any(attr.name == "transA" and attr.i for attr in node.attribute)
            total += math.prod(shapes[node.output[0]]) * (a[-2] if trans_a else a[-1])
    return total


@dataclasses.dataclass
class SyntheticDevice:
    """A deterministic device: any model takes ``base_ms + ms_per_madd * MAdds`` milliseconds.

    Callable as a :data:`~cluster.costmodels.MeasureFn` (parts of a lookup table); ``calls`` counts
    the models it was given.
    """

    base_ms: float = 0.05
    ms_per_madd: float = 2e-6
    calls: int = 0

    def latency_ms(self, madds: int) -> float:
        """What the device takes for a model of ``madds`` multiply-adds."""
        return self.base_ms + self.ms_per_madd * madds

    def __call__(self, onnx_bytes: bytes, input_shape: tuple[int, ...]) -> float:
        self.calls += 1
        return self.latency_ms(onnx_madds(onnx_bytes))


@dataclasses.dataclass(frozen=True)
class KnownAnswer:
    """Architectures of ``space`` timed on ``device``: the ones to fit on and the held-out ones."""

    space: SearchSpace
    device: SyntheticDevice
    fit_encodings: list[Encoding]
    fit_ms: np.ndarray
    held_encodings: list[Encoding]
    held_ms: np.ndarray


@functools.lru_cache(maxsize=None)
def known_answer_problem(fit: int = 200, held_out: int = 60, seed: int = 0) -> KnownAnswer:
    """MoGA (small settings) architectures timed on a :class:`SyntheticDevice`; built once per process.

    Whole models are timed from the space's analytic MAdds (exporting hundreds of models would take
    minutes); :func:`test_known_answer_is_consistent` checks that they equal the MAdds
    :func:`onnx_madds` counts in the exported models, which is what the device sees of a part. 200
    architectures to fit: a per-layer linear model of MoGA has 14 x 12 indicator columns.
    """
    space = MogaSpace(**MogaSpace.small_settings())
    device = SyntheticDevice()
    encodings = sample_architectures(space, fit + held_out, seed=seed, purpose="known-answer")
    ms = np.array([device.latency_ms(space.count(e)["madds"]) for e in encodings])
    return KnownAnswer(space=space, device=device, fit_encodings=encodings[:fit], fit_ms=ms[:fit],
                       held_encodings=encodings[fit:], held_ms=ms[fit:])


@functools.lru_cache(maxsize=None)
def fitted_on_known_answer(kind: str) -> CostModel:
    """A ``kind`` model fitted on :func:`known_answer_problem`, parts timed on its device; once per process."""
    problem = known_answer_problem()
    return contract_model(kind, problem.device).fit(problem.space, problem.fit_encodings, problem.fit_ms)


@pytest.fixture(params=KINDS)
def cost_model_kind(request: Any) -> str:
    """Each kind registered in ``COST_MODELS`` (when :mod:`cluster.testing` was imported)."""
    return request.param


@pytest.fixture
def known_answer() -> KnownAnswer:
    """:func:`known_answer_problem` with its defaults."""
    return known_answer_problem()


@pytest.fixture
def known_answer_model(cost_model_kind: str) -> CostModel:
    """:func:`fitted_on_known_answer` of each kind."""
    return fitted_on_known_answer(cost_model_kind)


# ---------------------------------------------------------------------------------------- contract
def test_kind_has_a_contract_factory(cost_model_kind: str) -> None:
    model = contract_model(cost_model_kind, SyntheticDevice())
    assert isinstance(model, COST_MODELS.get(cost_model_kind)) and model.kind == cost_model_kind


def test_known_answer_is_consistent(known_answer: KnownAnswer) -> None:
    """The whole models' MAdds (analytic) are the MAdds the device counts in their ONNX graphs."""
    space = known_answer.space
    for encoding in known_answer.held_encodings[:2]:
        onnx_bytes = export_onnx(space.build(encoding).eval(), space.input_shape)
        assert onnx_madds(onnx_bytes) == space.count(encoding)["madds"]


def test_unfitted_model_refuses_to_predict(cost_model_kind: str, known_answer: KnownAnswer) -> None:
    model = contract_model(cost_model_kind, known_answer.device)
    with pytest.raises(HwnasError, match="not fitted"):
        model.predict(known_answer.space.default_encoding())


def test_known_answer_fidelity_floors(known_answer_model: CostModel, known_answer: KnownAnswer) -> None:
    report = known_answer_model.fidelity(known_answer.held_encodings, known_answer.held_ms)
    assert set(report) == {"r2", "rmse_ms", "spearman", "kendall", "n"}
    assert report["n"] == len(known_answer.held_encodings)
    assert report["r2"] > MIN_R2, report
    assert report["kendall"] > MIN_KENDALL, report


def test_predictions_are_finite_positive_and_deterministic(known_answer_model: CostModel,
                                                           known_answer: KnownAnswer) -> None:
    encodings = known_answer.held_encodings
    predicted = known_answer_model.predict_many(encodings)
    assert predicted.shape == (len(encodings),)
    assert np.all(np.isfinite(predicted)) and np.all(predicted > 0)
    assert known_answer_model.predict(encodings[0]) == known_answer_model.predict(list(encodings[0]))
    np.testing.assert_array_equal(known_answer_model.predict_many(encodings), predicted)


def test_save_load_gives_identical_predictions(known_answer_model: CostModel, known_answer: KnownAnswer,
                                               tmp_path: Any) -> None:
    _assert_save_load_identical(known_answer_model, known_answer.space, known_answer.held_encodings, tmp_path)


def test_refused_for_another_space_version_or_kind(known_answer_model: CostModel, known_answer: KnownAnswer,
                                                   tmp_path: Any) -> None:
    _assert_refused_elsewhere(known_answer_model, known_answer.space, tmp_path)


def _assert_save_load_identical(model: CostModel, space: SearchSpace, encodings: Sequence[Encoding],
                                tmp_path: Any) -> None:
    path = tmp_path / "cost.json"
    model.save(path)
    for loaded in (CostModel.load(path), CostModel.load(path, space=space), type(model).load(path)):
        assert type(loaded) is type(model)
        np.testing.assert_array_equal(loaded.predict_many(encodings), model.predict_many(encodings))
    data = model.to_dict()
    assert data["schema_version"] == COSTMODEL_SCHEMA and data["kind"] == model.kind
    assert data["space"] == space.identity


def _assert_refused_elsewhere(model: CostModel, space: SearchSpace, tmp_path: Any) -> None:
    path = tmp_path / "cost.json"
    model.save(path)
    other = get_space(space.name, **{**space.settings, "input_size": 2 * space.input_shape[-1]})
    with pytest.raises(HwnasError, match="fitted for space"):
        CostModel.load(path, space=other)
    with pytest.raises(HwnasError, match="schema_version"):
        CostModel.from_dict({**model.to_dict(), "schema_version": COSTMODEL_SCHEMA + 98})
    for name in COST_MODELS.names():
        if COST_MODELS.get(name) is not type(model):
            with pytest.raises(HwnasError, match="kind"):
                COST_MODELS.get(name).from_dict(model.to_dict())


# -------------------------------------------------------------------------- on real ONNX Runtime
#: Light effort: the integration contract checks plumbing on real timings, not their precision.
ONNX_RUNTIME_OPTIONS = MeasureOptions(warmup=2, min_runs=10, max_runs=30, min_time_s=0.0, max_rounds=1)


def onnx_runtime_ms(onnx_bytes: bytes, input_shape: tuple[int, ...]) -> float:
    """A :data:`~cluster.costmodels.MeasureFn` on this machine's ONNX Runtime, light effort."""
    return measure_onnx(onnx_bytes, input_shape, options=ONNX_RUNTIME_OPTIONS).median_ms


@functools.lru_cache(maxsize=None)
def onnx_runtime_problem(samples: int = 8) -> tuple[SearchSpace, list[Encoding], np.ndarray]:
    """``samples`` MoGA (small settings) architectures measured whole on ONNX Runtime; once per process."""
    import torch

    space = MogaSpace(**MogaSpace.small_settings())
    encodings = sample_architectures(space, samples, seed=0, purpose="onnx-runtime")
    with torch.random.fork_rng():  # weights do not change latency; keep the global RNG untouched
        torch.manual_seed(0)
        models = [export_onnx(space.build(e).eval(), space.input_shape) for e in encodings]
    return space, encodings, np.array([onnx_runtime_ms(m, space.input_shape) for m in models])


@pytest.mark.integration
def test_contract_on_onnx_runtime(cost_model_kind: str, tmp_path: Any) -> None:
    space, encodings, measured = onnx_runtime_problem()
    model = contract_model(cost_model_kind, onnx_runtime_ms).fit(space, encodings, measured)
    predicted = model.predict_many(encodings)
    assert np.all(np.isfinite(predicted)) and np.all(predicted > 0)
    _assert_save_load_identical(model, space, encodings, tmp_path)
    _assert_refused_elsewhere(model, space, tmp_path)
