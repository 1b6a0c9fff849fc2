"""TuNAS's REINFORCE controller in numpy: independent categorical logits per decision, Adam.

The controller is the part of TuNAS that both :class:`~searchers.ReinforceSearcher` (rewards from
finished Tune trials) and a supernet trainer (rewards from the shared weights, step by step) use:

    controller = ReinforceController(sizes=[3, 4, 2])
    samples = [controller.sample(rng) for _ in range(batch)]
    controller.update(samples, [reward_of(s) for s in samples])
    controller.argmax()  # the architecture to report

Its state (:meth:`ReinforceController.state`) is JSON data; floats survive a JSON round trip
exactly, so a restored controller continues bit for bit.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Mapping, Sequence

import numpy as np

from core.settings import Setting, number, resolve_settings, settings_signature
from core.validation import check_number, invalid

__all__ = ["ReinforceController", "absolute_reward", "mnas_reward"]


def absolute_reward(quality: float, cost: float, *, cost_target: float, tau: float) -> float:
    """TuNAS's absolute reward ``quality + tau * |cost / cost_target - 1|`` (``tau < 0``)."""
    return float(quality + tau * abs(cost / cost_target - 1.0))


def mnas_reward(quality: float, cost: float, *, cost_target: float, w: float) -> float:
    """MnasNet's soft reward ``quality * (cost / cost_target) ** w`` (``w < 0`` penalises cost)."""
    return float(quality * (cost / cost_target) ** w)


class ReinforceController:
    """A policy of independent categorical distributions, one per decision, trained by REINFORCE.

    Each update minimises ``-mean_i (r_i - b) * log p(a_i) - entropy_weight * H(p)`` with Adam,
    where ``b`` is a moving average of past batch-mean rewards (the first batch's mean before any).

    Args:
        sizes: Number of choices per decision (each ``>= 1``).
        lr: Adam learning rate (TuNAS: 5e-3).
        betas: Adam's ``(beta1, beta2)`` (TuNAS: ``(0, 0.999)``).
        eps: Adam's epsilon.
        baseline_momentum: Weight of the old baseline in each update, in ``[0, 1)``.
        entropy_weight: Weight of the entropy bonus (``>= 0``; 0 disables it).

    Raises:
        ConfigError: an argument breaks its rule.
    """

    #: The hyperparameters a searcher exposes as its own settings: their rules are declared once, here.
    SETTINGS: tuple[Setting, ...] = (
        Setting("lr", 5e-3, number(low=0.0, low_open=True), "TuNAS uses 5e-3"),
        Setting("baseline_momentum", 0.95, number(low=0.0, high=1.0, high_open=True),
                "0.95 is a usual value"),
        Setting("entropy_weight", 0.0, number(low=0.0), "0 disables the bonus; try 1e-3"),
    )

    def __init__(self, *, sizes: Sequence[int], betas: tuple[float, float] = (0.0, 0.999),
                 eps: float = 1e-8, **settings: Any) -> None:
        self.sizes = _check_sizes(sizes)
        self.betas = _check_betas(betas)
        self.eps = check_number("eps", eps, low=0.0, low_open=True, hint="1e-8 is usual")
        hyper = resolve_settings(self.SETTINGS, settings, owner="ReinforceController", where=str)
        self.lr, self.baseline_momentum = hyper["lr"], hyper["baseline_momentum"]
        self.entropy_weight = hyper["entropy_weight"]
        self.logits = [np.zeros(n) for n in self.sizes]
        self._m = [np.zeros(n) for n in self.sizes]
        self._v = [np.zeros(n) for n in self.sizes]
        self.steps = 0
        self.baseline: float | None = None

    # ------------------------------------------------------------------ step API
    def probabilities(self) -> list[np.ndarray]:
        """The choice probabilities of every decision (softmax of its logits)."""
        return [_softmax(z) for z in self.logits]

    def sample(self, rng: np.random.Generator) -> tuple[int, ...]:
        """One architecture drawn from the policy: a choice index per decision.

        Uses one ``rng.random()`` draw per decision, so the stream consumed is fixed.
        """
        draws = rng.random(len(self.sizes))
        picks = []
        for p, u in zip(self.probabilities(), draws):
            picks.append(min(int(np.searchsorted(np.cumsum(p), u, side="right")), len(p) - 1))
        return tuple(picks)

    def argmax(self) -> tuple[int, ...]:
        """The most likely architecture (ties: the lowest index)."""
        return tuple(int(np.argmax(z)) for z in self.logits)

    def most_probable(self, k: int) -> list[tuple[int, ...]]:
        """The ``k`` most likely architectures, most likely first (:meth:`argmax` leads), by best-first search
        over the product of the independent decisions (ties: the lower choice indices first)."""
        import heapq

        order = [np.argsort(-z, kind="stable") for z in self.logits]  # each decision's choices, best first
        logp = [np.log(np.maximum(p, 1e-300))[o] for p, o in zip(self.probabilities(), order)]
        start = (0,) * len(order)
        heap, seen, out = [(-sum(lp[0] for lp in logp), start)], {start}, []
        while heap and len(out) < k:
            neg, ranks = heapq.heappop(heap)
            out.append(tuple(int(o[r]) for o, r in zip(order, ranks)))
            for d, r in enumerate(ranks):
                if r + 1 < len(order[d]):
                    nxt = ranks[:d] + (r + 1,) + ranks[d + 1:]
                    if nxt not in seen:
                        seen.add(nxt)
                        heapq.heappush(heap, (neg + logp[d][r] - logp[d][r + 1], nxt))
        return out

    def observe(self, rewards: Sequence[float]) -> None:
        """Move the baseline with ``rewards`` and nothing else: a step at learning rate zero (TuNAS's warm-up),
        so that the first real update already has a baseline of the warm-up's rewards.

        Raises:
            ValueError: no rewards, or a non-finite one.
        """
        r = np.array(list(rewards), dtype=float)
        if len(r) == 0 or not np.isfinite(r).all():
            raise ValueError("rewards must be a non-empty sequence of finite numbers")
        m = self.baseline_momentum
        self.baseline = float(r.mean()) if self.baseline is None else float(m * self.baseline + (1.0 - m) * r.mean())

    def entropy(self) -> float:
        """The policy's entropy in nats, summed over decisions (0 when it has converged)."""
        return float(sum(-(p * np.log(np.maximum(p, 1e-300))).sum() for p in self.probabilities()))

    def update(self, samples: Sequence[Sequence[int]], rewards: Sequence[float]) -> None:
        """One REINFORCE + Adam step from ``samples`` and their ``rewards`` (finite numbers).

        Raises:
            ValueError: no samples, lengths differ, an index out of range, or a non-finite reward.
        """
        actions, r = self._check_batch(samples, rewards)
        if self.baseline is None:
            self.baseline = float(r.mean())
        advantage = r - self.baseline
        grads = self._gradients(actions, advantage)
        self._adam(grads)
        m = self.baseline_momentum
        self.baseline = float(m * self.baseline + (1.0 - m) * r.mean())

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """JSON-able state: logits, Adam moments and step count, baseline."""
        return {"logits": [z.tolist() for z in self.logits], "m": [a.tolist() for a in self._m],
                "v": [a.tolist() for a in self._v], "steps": self.steps, "baseline": self.baseline}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state` output (validated before anything changes).

        Raises:
            ValueError: shapes that do not match ``sizes``, or non-finite values.
        """
        arrays = {key: [np.array(row, dtype=float) for row in state[key]] for key in ("logits", "m", "v")}
        for key, rows in arrays.items():
            if [len(a) for a in rows] != list(self.sizes) or not all(np.isfinite(a).all() for a in rows):
                raise ValueError(f"controller {key} do not match sizes {list(self.sizes)}")
        steps, baseline = int(state["steps"]), state["baseline"]
        if steps < 0 or (baseline is not None and not math.isfinite(float(baseline))):
            raise ValueError("controller steps/baseline are invalid")
        self.logits, self._m, self._v = arrays["logits"], arrays["m"], arrays["v"]
        self.steps, self.baseline = steps, None if baseline is None else float(baseline)

    # ------------------------------------------------------------------ internals
    def _check_batch(self, samples: Sequence[Sequence[int]],
                     rewards: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        actions = np.array([list(s) for s in samples], dtype=np.int64).reshape(len(samples), -1)
        r = np.array(list(rewards), dtype=float)
        if len(actions) == 0 or len(actions) != len(r):
            raise ValueError(f"need one reward per sample (got {len(actions)} samples, {len(r)} rewards)")
        if actions.shape[1] != len(self.sizes) or (actions < 0).any() or (actions >= self.sizes).any():
            raise ValueError(f"samples must hold one index per decision within sizes {list(self.sizes)}")
        if not np.isfinite(r).all():
            raise ValueError("rewards must be finite")
        return actions, r

    def _gradients(self, actions: np.ndarray, advantage: np.ndarray) -> list[np.ndarray]:
        """Gradient of the loss w.r.t. each decision's logits."""
        grads = []
        for d, p in enumerate(self.probabilities()):
            onehot = np.zeros((len(actions), len(p)))
            onehot[np.arange(len(actions)), actions[:, d]] = 1.0
            g = -(advantage[:, None] * (onehot - p)).mean(axis=0)
            if self.entropy_weight:
                logp = np.log(np.maximum(p, 1e-300))
                entropy = -float(p @ logp)
                g = g + self.entropy_weight * p * (logp + entropy)  # minus d(entropy)/d(logits)
            grads.append(g)
        return grads

    def _adam(self, grads: list[np.ndarray]) -> None:
        b1, b2 = self.betas
        self.steps += 1
        c1, c2 = 1.0 - b1 ** self.steps, 1.0 - b2 ** self.steps
        for z, m, v, g in zip(self.logits, self._m, self._v, grads):
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * g * g
            z -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


# help() and IDEs show every keyword, the settings' defaults included.
ReinforceController.__signature__ = settings_signature(  # type: ignore[attr-defined]
    ReinforceController.SETTINGS,
    leading=[inspect.Parameter("sizes", inspect.Parameter.KEYWORD_ONLY),
             inspect.Parameter("betas", inspect.Parameter.KEYWORD_ONLY, default=(0.0, 0.999)),
             inspect.Parameter("eps", inspect.Parameter.KEYWORD_ONLY, default=1e-8)])


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _check_betas(betas: Any) -> tuple[float, float]:
    if not isinstance(betas, Sequence) or len(betas) != 2:
        raise invalid("betas", "must be a pair (beta1, beta2)", betas, "TuNAS uses (0, 0.999)")
    return (check_number("betas[0]", betas[0], low=0.0, high=1.0, high_open=True, hint="TuNAS uses 0"),
            check_number("betas[1]", betas[1], low=0.0, high=1.0, high_open=True, hint="TuNAS uses 0.999"))


def _check_sizes(sizes: Any) -> np.ndarray:
    hint = "pass the number of choices of each decision, e.g. sizes=[3, 4, 2]."
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, (Sequence, np.ndarray)) or len(sizes) == 0:
        raise invalid("sizes", "must be a non-empty sequence of integers", sizes, hint)
    for i, n in enumerate(sizes):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise invalid(f"sizes[{i}]", "must be an integer >= 1", n, hint)
    return np.array([int(n) for n in sizes], dtype=np.int64)
