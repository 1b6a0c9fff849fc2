"""Cost models: the contract every registered kind passes (:mod:`cluster.testing`, imported below), plus
unit tests of the lookup table's exactness, the linear features, the ridge solve and the rank correlations."""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
import torch

from cluster import CostModel, LinearCostModel, LookupTableCostModel, fidelity
from cluster.costmodels import block_key, kendall_tau, ridge, spearman_rho
from cluster.testing import *  # noqa: F401,F403  (the contract, run for every registered kind)
from cluster.testing import KnownAnswer, fitted_on_known_answer
from spaces import SPACES, HwnasError, MogaSpace, get_space


@pytest.fixture(scope="module")
def space() -> MogaSpace:
    return MogaSpace(**MogaSpace.small_settings())


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
    with pytest.raises(HwnasError, match=r"'alpha': must be a finite number > 0, got 0\. HINT: leave it None"):
        LinearCostModel(alpha=0)
    two = [space.default_encoding()] * 2
    with pytest.raises(HwnasError, match=r"'latencies_ms': must hold one latency per encoding \(2\), got \[1\.0\]"):
        LinearCostModel().fit(space, two, [1.0])
    with pytest.raises(HwnasError, match=r"'latencies_ms': must be finite and > 0, got \[nan\]"):
        LinearCostModel().fit(space, two, [1.0, float("nan")])
    with pytest.raises(HwnasError, match=r"'latencies_ms': must be a sequence of numbers"):
        LinearCostModel().fit(space, two, [1.0, "fast"])
    with pytest.raises(HwnasError, match=r"'encodings': must hold at least 2 measured architectures"):
        LinearCostModel().fit(space, two[:1], [1.0])
    fitted = LinearCostModel().fit(space, two, [1.0, 2.0])
    with pytest.raises(HwnasError, match=r"'measured_ms': must be a sequence of numbers"):
        fitted.fidelity(two, ["fast", 1.0])
    with pytest.raises(HwnasError, match=r"'measured_ms': must be finite, got \[nan, 1\.0\]"):
        fitted.fidelity(two, [None, 1.0])


def test_damaged_model_files_are_hwnas_errors(space: MogaSpace, tmp_path: Any) -> None:
    model = LinearCostModel().fit(space, [(0,) * 14, (1,) * 14], [1.0, 2.0])
    torn = tmp_path / "torn.json"
    torn.write_text('{"kind": "lin')
    with pytest.raises(HwnasError, match="is not readable JSON"):
        CostModel.load(torn)
    data = model.to_dict()
    del data["state"]["weights_us"]
    damaged = tmp_path / "damaged.json"
    damaged.write_text(json.dumps(data))
    with pytest.raises(HwnasError, match=r"damaged cost model of kind 'linear' \(KeyError: 'weights_us'\)"):
        CostModel.load(damaged)


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


def test_lut_is_exact_on_the_known_answer(known_answer: KnownAnswer) -> None:
    """The parts' sum plus the fitted bias is the whole model's latency: the synthetic device charges
    its base latency once per model, the table once per part (stem, 14 blocks, tail), and the bias
    takes the 15 extra ones back."""
    model = fitted_on_known_answer("lut")
    np.testing.assert_allclose(model.predict_many(known_answer.held_encodings), known_answer.held_ms, rtol=1e-9)
    assert model.bias_ms == pytest.approx(-15 * known_answer.device.base_ms)


def test_linear_is_almost_exact_on_the_known_answer(known_answer: KnownAnswer) -> None:
    """Each MoGA layer's MAdds depend on its own choice only: indicators of 200 architectures pin them down."""
    report = fitted_on_known_answer("linear").fidelity(known_answer.held_encodings, known_answer.held_ms)
    assert report["r2"] > 0.999 and report["kendall"] > 0.99


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
