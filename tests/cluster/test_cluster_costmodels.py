"""Cost models: a contract every registered kind passes on real ONNX Runtime measurements, plus unit
tests of the linear features, the ridge solve and the rank correlations."""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pytest
import torch

from cluster import COST_MODELS, CostModel, LinearCostModel, LookupTableCostModel, fidelity, measure_onnx
from cluster.costmodels import block_key, kendall_tau, ridge, spearman_rho
from spaces import SPACES, HwnasError, MogaSpace, export_onnx, get_space

N_FIT, N_HELD_OUT = 30, 10


def _measure(onnx_bytes: bytes, shape: tuple[int, ...]) -> float:
    return measure_onnx(onnx_bytes, shape, warmup=3, min_runs=15, max_runs=40, min_time_s=0.0, max_rounds=1).median_ms


# A factory per registered kind: a new kind without one fails test_every_kind_has_a_factory.
FACTORIES: dict[str, Callable[[], CostModel]] = {
    "linear": lambda: LinearCostModel(),
    "lut": lambda: LookupTableCostModel(measure=_measure),
}


@pytest.fixture(scope="module")
def space() -> MogaSpace:
    return MogaSpace(**MogaSpace.small_settings())


@pytest.fixture(scope="module")
def measured(space: MogaSpace) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """N_FIT + N_HELD_OUT distinct sampled architectures and their measured whole-model latencies."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    encodings = list(dict.fromkeys(space.sample(rng) for _ in range(N_FIT + N_HELD_OUT)))
    latencies = [_measure(export_onnx(space.build(e), space.input_shape), space.input_shape) for e in encodings]
    return encodings, np.array(latencies)


_FITTED: dict[str, CostModel] = {}


@pytest.fixture(params=sorted(FACTORIES))
def fitted(request: Any, space: MogaSpace, measured: tuple[list[tuple[int, ...]], np.ndarray]) -> CostModel:
    kind = request.param
    if kind not in _FITTED:  # fit each kind once per session: the lookup table measures ~110 blocks
        encodings, latencies = measured
        _FITTED[kind] = FACTORIES[kind]().fit(space, encodings[:N_FIT], latencies[:N_FIT])
    return _FITTED[kind]


# ---------------------------------------------------------------------------------------- contract
def test_every_kind_has_a_factory() -> None:
    assert set(COST_MODELS.names()) == set(FACTORIES)


@pytest.mark.integration
def test_predictions_are_finite_and_positive(fitted: CostModel, measured: Any) -> None:
    encodings, _ = measured
    predicted = fitted.predict_many(encodings)
    assert predicted.shape == (len(encodings),)
    assert np.all(np.isfinite(predicted)) and np.all(predicted > 0)
    assert fitted.predict(encodings[0]) == fitted.predict(list(encodings[0]))


@pytest.mark.integration
def test_save_load_gives_identical_predictions(fitted: CostModel, measured: Any, space: MogaSpace, tmp_path: Any) -> None:
    encodings, _ = measured
    path = tmp_path / "cost.json"
    fitted.save(path)
    for loaded in (CostModel.load(path), CostModel.load(path, space=space), type(fitted).load(path)):
        assert type(loaded) is type(fitted)
        np.testing.assert_array_equal(loaded.predict_many(encodings), fitted.predict_many(encodings))
    data = fitted.to_dict()
    assert data["schema_version"] == 1 and data["kind"] == fitted.kind and data["space"] == space.identity


@pytest.mark.integration
def test_refused_for_another_space(fitted: CostModel, tmp_path: Any) -> None:
    path = tmp_path / "cost.json"
    fitted.save(path)
    other = MogaSpace(**{**MogaSpace.small_settings(), "width_mult": 0.5})
    with pytest.raises(HwnasError, match="fitted for space"):
        CostModel.load(path, space=other)
    with pytest.raises(HwnasError, match="schema_version"):
        CostModel.from_dict({**fitted.to_dict(), "schema_version": 99})
    wrong = next(cls for name in COST_MODELS.names() if (cls := COST_MODELS.get(name)) is not type(fitted))
    with pytest.raises(HwnasError, match="kind"):
        wrong.from_dict(fitted.to_dict())


@pytest.mark.integration
def test_fidelity_report(fitted: CostModel, measured: Any) -> None:
    encodings, latencies = measured
    report = fitted.fidelity(encodings[N_FIT:], latencies[N_FIT:])
    assert set(report) == {"r2", "rmse_ms", "spearman", "kendall", "n"}
    assert report["n"] == len(encodings) - N_FIT
    assert report["r2"] <= 1.0 and report["rmse_ms"] >= 0.0
    assert -1.0 <= report["spearman"] <= 1.0 and -1.0 <= report["kendall"] <= 1.0
    print(f"\n{fitted.kind} held-out fidelity: {report}")  # shown with -s: the numbers the report quotes


def test_unfitted_model_refuses_to_predict(space: MogaSpace) -> None:
    for factory in FACTORIES.values():
        with pytest.raises(HwnasError, match="not fitted"):
            factory().predict(space.default_encoding())


# ---------------------------------------------------------------------------------- linear model
def _synthetic(space: Any, n: int, seed: int) -> tuple[list[tuple[int, ...]], np.ndarray, np.ndarray]:
    """Encodings with latencies exactly linear in the per-layer choices."""
    rng = np.random.default_rng(seed)
    table = rng.uniform(0.01, 0.1, size=(len(space.dims), max(d.size for d in space.dims)))
    encodings = [space.sample(rng) for _ in range(n)]
    return encodings, np.array([0.2 + sum(table[i, c] for i, c in enumerate(e)) for e in encodings]), table


def test_linear_fits_exactly_linear_latencies(space: MogaSpace) -> None:
    encodings, latencies, _ = _synthetic(space, 400, seed=1)
    model = LinearCostModel(alpha=1e-3).fit(space, encodings[:300], latencies[:300])
    report = fidelity(model, encodings[300:], latencies[300:])
    assert report["r2"] > 0.9999 and report["rmse_ms"] < 1e-3 and report["spearman"] > 0.999
    assert model.unseen_blocks == 0


def test_linear_features_one_column_per_position_and_block(space: MogaSpace) -> None:
    model = LinearCostModel().fit(space, [(0,) * 14, (1,) * 14], [1.0, 2.0])
    assert len(model.to_dict()["state"]["columns"]) == 28
    assert model.features((0,) * 14).sum() == 14 and model.features((1,) * 14).sum() == 14
    mixed = (0, 1) * 7
    assert model.features(mixed).sum() == 14
    assert model.features((2,) * 14).sum() == 0  # never seen: no column
    model.predict((2,) * 14)
    assert model.unseen_blocks == 14
    blocks = space.decode((0,) * 14).blocks
    assert block_key(blocks[0]) != block_key(blocks[1])  # same choice, different position args
    assert "MBBlockArgs" in block_key(blocks[0]) and '"kernel":3' in block_key(blocks[0])


def test_ridge_recovers_exact_coefficients() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 4))
    y = x @ np.array([1.0, -2.0, 0.5, 3.0]) + 7.0
    weights, intercept = ridge(x, y, alpha=1e-9)
    np.testing.assert_allclose(weights, [1.0, -2.0, 0.5, 3.0], atol=1e-6)
    assert intercept == pytest.approx(7.0, abs=1e-6)


@pytest.mark.parametrize("name", ["edgetpu", "mobileone"])
def test_linear_supports_the_other_spaces(name: str) -> None:
    other = get_space(name, **SPACES.get(name).small_settings())
    encodings, latencies, _ = _synthetic(other, 40, seed=3)
    model = LinearCostModel().fit(other, encodings, latencies)
    assert np.all(np.isfinite(model.predict_many(encodings)))


def test_linear_rejects_bad_inputs(space: MogaSpace) -> None:
    with pytest.raises(HwnasError, match="alpha"):
        LinearCostModel(alpha=0)
    with pytest.raises(HwnasError, match="latencies"):
        LinearCostModel().fit(space, [space.default_encoding()] * 2, [1.0])
    with pytest.raises(HwnasError, match="> 0"):
        LinearCostModel().fit(space, [space.default_encoding()] * 2, [1.0, float("nan")])


def test_lut_refuses_a_space_without_per_layer_blocks() -> None:
    mobileone = get_space("mobileone", **SPACES.get("mobileone").small_settings())
    with pytest.raises(HwnasError, match="'mobileone'.*linear"):
        LookupTableCostModel(measure=lambda b, s: 1.0).fit(mobileone, [], [])


def test_lut_sums_the_measured_parts_and_fits_a_bias(space: MogaSpace) -> None:
    # A fake timer (1 ms a part) checks the bookkeeping without ONNX Runtime: 14 blocks + 2 fixed parts.
    torch.set_num_threads(1)
    calls: list[tuple[int, ...]] = []

    def fake(onnx_bytes: bytes, shape: tuple[int, ...]) -> float:
        calls.append(shape)
        return 1.0

    model = LookupTableCostModel(measure=fake).fit(space, [space.default_encoding()], [20.0])
    assert model.bias_ms == pytest.approx(20.0 - 16.0)
    assert model.predict((11,) * 14) == pytest.approx(20.0)
    assert calls[-2][1] == 3 and len(calls) < 14 * 12  # stem input; equal blocks measured once


# ---------------------------------------------------------------------------------- correlations
def test_rank_correlations_against_hand_values() -> None:
    x, y = [1, 2, 3, 4], [1, 3, 2, 4]
    assert spearman_rho(x, y) == pytest.approx(0.8)  # 1 - 6 * 2 / (4 * 15)
    assert kendall_tau(x, y) == pytest.approx(4 / 6)  # 5 concordant, 1 discordant pair
    assert spearman_rho(x, x[::-1]) == pytest.approx(-1.0) and kendall_tau(x, x[::-1]) == pytest.approx(-1.0)
    assert math.isnan(spearman_rho(x, [1, 1, 1, 1])) and math.isnan(kendall_tau(x, [1, 1, 1, 1]))


def test_rank_correlations_with_ties_match_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(4)
    x, y = rng.integers(0, 5, size=30), rng.integers(0, 5, size=30)
    assert spearman_rho(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)


def test_linear_model_uses_op_features_where_the_space_has_them(tmp_path) -> None:
    """On a latency that is linear in MobileDet's per-op-kind work (plus per-layer quirks and noise),
    op features reach r^2 > 0.98 from 60 samples; indicators alone, with thousands of columns, do not."""
    from spaces.mobiledet import MobileDetSpace

    space = MobileDetSpace(**{**MobileDetSpace.small_settings(), "input_size": 64})
    rng = np.random.default_rng(3)
    encodings = list(dict.fromkeys(space.sample(rng) for _ in range(100)))
    cost_per_unit = {"madds": 2e-7, "traffic": 4e-6, "count": 0.01}
    quirks = {(i, c): rng.normal(0, 0.01) for i in range(len(space.dims)) for c in range(18)}

    def latency(e) -> float:
        work = sum(value * cost_per_unit[name.rsplit("_", 1)[1]] for name, value in space.op_features(e).items())
        return 0.2 + work + sum(quirks[i, c] for i, c in enumerate(e)) + rng.normal(0, 0.005)

    y = np.array([latency(e) for e in encodings])
    fit, held = slice(0, 60), slice(60, None)
    with_ops = LinearCostModel().fit(space, encodings[fit], y[fit])
    plain = LinearCostModel(op_features=False).fit(space, encodings[fit], y[fit])
    assert with_ops.fidelity(encodings[held], y[held])["r2"] > 0.98
    assert plain.fidelity(encodings[held], y[held])["r2"] < 0.9
    assert with_ops.alpha in LinearCostModel.ALPHA_GRID  # chosen by cross-validation
    path = tmp_path / "linear.json"
    with_ops.save(path)
    loaded = LinearCostModel.load(path)
    assert [loaded.predict(e) for e in encodings[held]] == pytest.approx([with_ops.predict(e) for e in encodings[held]])
