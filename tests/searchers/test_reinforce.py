"""TuNAS's REINFORCE controller and searcher: rewards, the update, Adam, validation."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from searchers import ReinforceController, ReinforceSearcher, absolute_reward, mnas_reward
from searchers.testing import SPACE, TuneSim, make
from core.errors import ConfigError


# ---------------------------------------------------------------------- rewards
@pytest.mark.parametrize("quality, cost, expected", [
    (0.8, 5.0, 0.8),            # on budget: no penalty
    (0.8, 6.0, 0.8 - 0.5 * 0.2),  # over budget
    (0.8, 4.0, 0.8 - 0.5 * 0.2),  # under budget is penalised too (absolute value)
    (0.5, 10.0, 0.5 - 0.5 * 1.0),
])
def test_absolute_reward_values(quality, cost, expected) -> None:
    assert absolute_reward(quality, cost, cost_target=5.0, tau=-0.5) == pytest.approx(expected)


@pytest.mark.parametrize("quality, cost, expected", [
    (0.8, 5.0, 0.8),
    (0.8, 10.0, 0.8 * 2.0 ** -0.07),
    (0.8, 2.5, 0.8 * 0.5 ** -0.07),
])
def test_mnas_reward_values(quality, cost, expected) -> None:
    assert mnas_reward(quality, cost, cost_target=5.0, w=-0.07) == pytest.approx(expected)


def test_searcher_reward_uses_the_configured_formula_and_fails_infeasible() -> None:
    absolute = make("reinforce", cost_target=2.0, tau=-0.25, constraints=[("lat", "<=", 3.0)])
    assert absolute.reward({"acc": 1.0, "lat": 2.5}) == pytest.approx(1.0 - 0.25 * 0.25)
    assert absolute.reward({"acc": 1.0, "lat": 3.5}) is None  # violates the constraint
    assert absolute.reward(None) is None  # failed trial
    mnas = make("reinforce", cost_target=2.0, reward="mnas", w=-0.1)
    assert mnas.reward({"acc": 1.0, "lat": 4.0}) == pytest.approx(2.0 ** -0.1)
    assert mnas.reward({"acc": 1.0, "lat": 0.0}) is None  # no power of a zero cost


# ---------------------------------------------------------------------- controller
def test_update_moves_probability_toward_the_better_arm() -> None:
    controller = ReinforceController(sizes=[2], lr=0.05)
    rng = np.random.default_rng(0)
    history = [controller.probabilities()[0][1]]
    for _ in range(60):
        samples = [controller.sample(rng) for _ in range(8)]
        controller.update(samples, [1.0 if s[0] == 1 else 0.0 for s in samples])
        history.append(controller.probabilities()[0][1])
    assert history[0] == pytest.approx(0.5)
    assert history[10] > 0.6 and history[-1] > 0.9
    assert controller.argmax() == (1,)


def test_adam_step_matches_a_hand_computation() -> None:
    lr, eps, b2 = 5e-3, 1e-8, 0.999
    controller = ReinforceController(sizes=[3])  # TuNAS defaults: lr 5e-3, betas (0, 0.999), eps 1e-8
    controller.update([(0,), (1,)], [1.0, 0.0])
    # Baseline starts at the batch mean 0.5: advantages (0.5, -0.5); p = 1/3 each, so the loss
    # gradient -mean_i adv_i (onehot_i - p) is (-0.25, 0.25, 0). With beta1 = 0 and bias correction,
    # the first step is -lr * g / (|g| + eps).
    g1 = np.array([-0.25, 0.25, 0.0])
    z1 = -lr * g1 / (np.abs(g1) + eps)
    np.testing.assert_allclose(controller.logits[0], z1, rtol=1e-12, atol=0)
    assert controller.baseline == pytest.approx(0.5)
    assert controller.steps == 1

    controller.update([(2,)], [2.0])  # advantage 2 - 0.5 = 1.5
    p = np.exp(z1) / np.exp(z1).sum()
    g2 = -1.5 * (np.array([0.0, 0.0, 1.0]) - p)
    v2 = b2 * (1 - b2) * g1 ** 2 + (1 - b2) * g2 ** 2
    z2 = z1 - lr * g2 / (np.sqrt(v2 / (1 - b2 ** 2)) + eps)
    np.testing.assert_allclose(controller.logits[0], z2, rtol=1e-12, atol=1e-15)
    assert controller.baseline == pytest.approx(0.95 * 0.5 + 0.05 * 2.0)


def test_entropy_bonus_flattens_the_policy_when_rewards_are_equal() -> None:
    def entropy_after(weight: float) -> float:
        controller = ReinforceController(sizes=[3], entropy_weight=weight, lr=0.1)
        controller.load_state({**controller.state(), "logits": [[2.0, 0.0, -1.0]]})
        for _ in range(5):
            controller.update([(0,), (1,)], [1.0, 1.0])  # zero advantage: only the bonus acts
        p = controller.probabilities()[0]
        return float(-(p * np.log(p)).sum())

    assert entropy_after(0.0) == pytest.approx(entropy_after(0.0))
    assert entropy_after(0.1) > entropy_after(0.0) + 0.05


def test_sample_is_seeded_and_follows_the_probabilities() -> None:
    controller = ReinforceController(sizes=[2, 3])
    controller.load_state({**controller.state(), "logits": [[0.0, 0.0], [math.log(8), 0.0, 0.0]]})
    draws = [controller.sample(np.random.default_rng(5)) for _ in range(2)]
    assert draws[0] == draws[1]
    rng = np.random.default_rng(1)
    picks = np.array([controller.sample(rng) for _ in range(2000)])
    assert abs((picks[:, 1] == 0).mean() - 0.8) < 0.03
    assert set(picks[:, 0]) == {0, 1}


def test_controller_state_round_trips_through_json_exactly() -> None:
    controller = ReinforceController(sizes=[2, 3], entropy_weight=0.01)
    rng = np.random.default_rng(3)
    for _ in range(3):
        samples = [controller.sample(rng) for _ in range(4)]
        controller.update(samples, [float(sum(s)) for s in samples])
    twin = ReinforceController(sizes=[2, 3], entropy_weight=0.01)
    twin.load_state(json.loads(json.dumps(controller.state())))
    for c in (controller, twin):
        c.update([(1, 2), (0, 0)], [3.0, 0.5])
    assert twin.state() == controller.state()
    with pytest.raises(ValueError, match="do not match sizes"):
        ReinforceController(sizes=[2, 2]).load_state(controller.state())


def test_update_rejects_malformed_batches() -> None:
    controller = ReinforceController(sizes=[2, 3])
    for samples, rewards in [([], []), ([(0, 0)], [1.0, 2.0]), ([(0, 3)], [1.0]), ([(0, 0)], [math.nan])]:
        with pytest.raises(ValueError):
            controller.update(samples, rewards)
    assert controller.steps == 0


# ---------------------------------------------------------------------- searcher
def test_search_improves_the_reward_of_the_argmax(toy) -> None:
    searcher = make("reinforce", num_samples=120, batch_size=8, lr=0.2, cost_target=3.0)
    TuneSim(searcher, toy).run()
    best = searcher.best()
    reward_of_best = searcher.reward(toy(best["config"]))
    uniform = [searcher.reward(toy(e["config"])) for e in searcher.evaluated()[:8]]
    assert reward_of_best > np.mean(uniform)
    assert best["probability"] > (1 / 4) ** 6
    assert best["chromosome"] == list(searcher.controller.argmax())
    assert set(searcher.probabilities()) == set(SPACE)


def test_redrawn_candidates_are_rewarded_from_their_result_not_rerun(toy) -> None:
    space = {"g0": [0, 1], "g1": [0, 1, 2]}
    searcher = make("reinforce", space=space, num_samples=6, batch_size=4, lr=0.5)
    full = lambda c: toy({**c, **{f"g{i}": 0 for i in range(2, 6)}})  # noqa: E731
    sim = TuneSim(searcher, full).run()
    assert sorted(map(tuple, (e["chromosome"] for e in searcher.evaluated()))) == sorted(
        (a, b) for a in range(2) for b in range(3))
    assert len(sim.suggested) == 6
    assert searcher.controller.steps == 2  # both generations updated the policy


def test_all_failed_generation_leaves_the_controller_untouched() -> None:
    searcher = make("reinforce")
    TuneSim(searcher, lambda config: (None, True)).run()
    assert searcher.controller.steps == 0
    assert searcher.best()["metrics"] is None


_SETTING = "searcher reinforce setting "
BAD = [
    (dict(tau=0.0), _SETTING + r"'tau': must be a finite number < 0.*0\.0.*HINT:"),
    (dict(tau=0.3), _SETTING + r"'tau': must be a finite number < 0.*HINT:"),
    (dict(cost_target=0.0), _SETTING + r"'cost_target': must be a finite number > 0.*HINT:"),
    (dict(cost_target=math.inf), _SETTING + r"'cost_target': must be a finite number > 0.*inf.*HINT:"),
    (dict(reward="relative"), _SETTING + r"'reward': must be one of absolute, mnas, got 'relative'\. HINT:"),
    (dict(w=0.5), _SETTING + r"'w': must be a finite number <= 0.*HINT:"),
    (dict(lr=0), _SETTING + r"'lr': must be a finite number > 0.*HINT:"),
    (dict(batch_size=0), _SETTING + r"'batch_size': must be an integer in \[1, 10000\].*HINT:"),
    (dict(num_samples=0), _SETTING + r"'num_samples': must be an integer in \[1, 1000000\].*HINT:"),
    (dict(baseline_momentum=1.0),
     _SETTING + r"'baseline_momentum': must be a finite number in \[0, 1\).*HINT:"),
    (dict(entropy_weight=-0.1), _SETTING + r"'entropy_weight': must be a finite number >= 0.*HINT:"),
    (dict(quality_metric=""), _SETTING + r"'quality_metric': must be a non-empty metric name.*HINT:"),
    (dict(cost_metric="acc"), _SETTING + r"'cost_metric': must differ from quality_metric.*HINT:"),
    (dict(quality_metric="top1"),
     _SETTING + r"'quality_metric': must be one of the metrics, with mode 'max'.*'top1'.*HINT:"),
    (dict(mode=["min", "min"]),
     _SETTING + r"'quality_metric': must be one of the metrics, with mode 'max'.*HINT:"),
    (dict(mode=["max", "max"]),
     _SETTING + r"'cost_metric': must be a metric with mode 'min'.*'lat'.*HINT:"),
]


@pytest.mark.parametrize("overrides, message", BAD)
def test_bad_settings_raise_config_error(overrides, message) -> None:
    with pytest.raises(ConfigError, match=message):
        make("reinforce", **overrides)


def test_cost_may_be_a_constraint_only_metric(toy) -> None:
    searcher = make("reinforce", metric="acc", mode="max", constraints=[("lat", "<=", 4.0)])
    assert isinstance(searcher, ReinforceSearcher)
    assert TuneSim(searcher, toy).run().finished


def test_orchestrator_config_builds_a_reinforce_searcher() -> None:
    from orchestrator.config import config_from_dict
    from orchestrator.search import make_searcher

    settings = {"num_samples": 30, "batch_size": 5, "quality_metric": "accuracy",
                "cost_metric": "latency_ms", "cost_target": 1.5}
    cfg = config_from_dict({"name": "rl", "search": {"searcher": "reinforce", "settings": settings}})
    assert cfg.total_candidates == 30
    searcher = make_searcher(cfg.search, param_space={"x": [0, 1, 2]}, seed=0)
    assert isinstance(searcher, ReinforceSearcher)
