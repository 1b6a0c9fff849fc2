"""Deterministic multi-objective problems over categorical spaces, to measure how well searchers search.

Two families, both presented to a searcher exactly as a user's Tune experiment would: a param space
of ``tune.choice`` dimensions, metric names with ``max``/``min`` modes, and a result dict per config.

* :class:`DiscreteZDT`: pymoo's ZDT1/2/3 with each of ``n_var`` variables restricted to ``levels``
  evenly spaced values in [0, 1] (0 and 1 included), as categorical dimensions. The true front is
  known: pymoo's ``pareto_front()`` of the continuous problem, and, exactly for the discretised one,
  every ``x1`` level with all other variables 0 (``g`` is minimal there and every ZDT ``f2`` grows
  with ``g``). Its hypervolume is the ceiling no searcher can pass.
* :class:`MogaLutProblem`: the MoGA space (seed 003) at the paper's settings (224x224, 1000 classes).
  Latency is the per-layer lookup table measured once with ONNX Runtime and stored in
  ``benchmarks/data/moga_lut_cpu.json`` (regenerate with ``python benchmarks/measure_moga_lut.py``);
  MAdds and params are the space's analytic counts; accuracy is a fixed proxy (see
  :func:`proxy_accuracy`), deterministic and documented, not a trained network. ``choices`` can
  restrict every layer to a few choices, small enough to enumerate: that is where the REINFORCE
  benchmark knows the best architecture under a latency target (:meth:`MogaLutProblem.best_reward`).

Hypervolume (:meth:`NasProblem.hypervolume`) is pymoo's HV on objectives in minimisation form,
normalised to the problem's fixed box ``[ideal, nadir] -> [0, 1]``, with the reference point
``1.1`` in every normalised objective; points outside the reference box add nothing. The box is a
property of the problem, never of a run, so every searcher is measured with the same yardstick.

:func:`drive` is the plain Tune-Searcher loop (``suggest -> evaluate -> on_trial_complete``, one
trial at a time, no Ray cluster) used for every searcher alike.
"""
from __future__ import annotations

import abc
import itertools
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = [
    "DEFAULT_LUT",
    "REFERENCE",
    "DiscreteZDT",
    "MogaLutProblem",
    "NasProblem",
    "ProblemError",
    "Run",
    "drive",
    "make_problem",
    "PROBLEM_NAMES",
]

#: Reference point of the hypervolume, in every normalised (minimisation) objective.
REFERENCE = 1.1
DEFAULT_LUT = Path(__file__).resolve().parent / "data" / "moga_lut_cpu.json"
_ZDT = ("zdt1", "zdt2", "zdt3")


class ProblemError(ValueError):
    """A benchmark problem was asked for with a bad argument; the message names it and the fix."""


# ------------------------------------------------------------------------------------------ base
class NasProblem(abc.ABC):
    """A deterministic problem: ordered categorical dimensions, objectives with modes, a fixed box.

    Subclasses fill :attr:`choices` (values per dimension), :attr:`metrics`, :attr:`modes`,
    :attr:`ideal` and :attr:`nadir` (objective box in minimisation form), and implement
    :meth:`evaluate_chromosome`.
    """

    name: str
    names: tuple[str, ...]
    choices: tuple[tuple[Any, ...], ...]
    metrics: tuple[str, ...]
    modes: tuple[str, ...]
    ideal: np.ndarray
    nadir: np.ndarray

    @abc.abstractmethod
    def evaluate_chromosome(self, chromosome: Sequence[int]) -> dict[str, float]:
        """The metrics of the candidate with these choice indices (pure, deterministic)."""

    def param_space(self) -> dict[str, list[Any]]:
        """``{name: [choices]}`` in dimension order (hwnas searchers take it as ``param_space``)."""
        return {n: list(c) for n, c in zip(self.names, self.choices)}

    def tune_space(self) -> dict[str, Any]:
        """``{name: tune.choice([...])}``: the form any Tune searcher (OptunaSearch too) accepts."""
        from ray import tune

        return {n: tune.choice(list(c)) for n, c in zip(self.names, self.choices)}

    @property
    def volume(self) -> int:
        return math.prod(len(c) for c in self.choices)

    def chromosome(self, config: Mapping[str, Any]) -> tuple[int, ...]:
        """Choice indices of a suggested config (extra keys such as the generation are ignored)."""
        try:
            return tuple(self._index[i][config[n]] for i, n in enumerate(self.names))
        except KeyError as exc:
            raise ProblemError(f"{self.name}: config {dict(config)!r} has no valid value for {exc}. "
                               "HINT: suggest configs from this problem's param space.") from None

    def evaluate(self, config: Mapping[str, Any]) -> dict[str, float]:
        """The metrics of a suggested config: what a trainable would report to Tune."""
        return self.evaluate_chromosome(self.chromosome(config))

    def minimised(self, results: Sequence[Mapping[str, float]]) -> np.ndarray:
        """``(n, n_obj)`` objectives in minimisation form (``max`` metrics negated)."""
        sign = np.array([-1.0 if m == "max" else 1.0 for m in self.modes])
        rows = [[r[m] for m in self.metrics] for r in results]
        return np.array(rows, dtype=float).reshape(len(rows), len(self.metrics)) * sign

    def normalise(self, F: np.ndarray) -> np.ndarray:
        """Minimisation-form objectives mapped by the problem's fixed box to [0, 1] (ideal -> 0)."""
        return (np.asarray(F, dtype=float) - self.ideal) / (self.nadir - self.ideal)

    def hypervolume(self, results: Sequence[Mapping[str, float]]) -> float:
        """Normalised hypervolume of the results' non-dominated set w.r.t. :data:`REFERENCE`."""
        return normalised_hypervolume(self.normalise(self.minimised(results)))

    def describe(self) -> dict[str, Any]:
        """JSON description for reports: the objectives, the box, the reference point."""
        return {"name": self.name, "dimensions": len(self.names),
                "choices_per_dimension": sorted({len(c) for c in self.choices}),
                "metrics": list(self.metrics), "modes": list(self.modes),
                "ideal": self.ideal.tolist(), "nadir": self.nadir.tolist(),
                "reference_normalised": [REFERENCE] * len(self.metrics)}

    def _index_choices(self) -> None:
        self._index = [{v: i for i, v in enumerate(c)} for c in self.choices]


def normalised_hypervolume(F: np.ndarray) -> float:
    """pymoo's HV of normalised minimisation-form points, reference :data:`REFERENCE` everywhere."""
    from pymoo.indicators.hv import HV

    F = np.asarray(F, dtype=float)
    if F.size == 0:
        return 0.0
    inside = F[np.all(F < REFERENCE, axis=1)]
    if len(inside) == 0:
        return 0.0
    return float(HV(ref_point=np.full(F.shape[1], REFERENCE))(inside))


# ------------------------------------------------------------------------------------------ ZDT
class DiscreteZDT(NasProblem):
    """pymoo's ZDT1/ZDT2/ZDT3, each variable one of ``levels`` evenly spaced values in [0, 1].

    Metrics ``f1`` and ``f2``, both minimised. The normalisation box is the true (continuous)
    front's ideal and nadir point, the usual choice for ZDT, so HV 1.0-ish means "on the front".

    Args:
        which: ``"zdt1"``, ``"zdt2"`` or ``"zdt3"``.
        n_var: Variables (``>= 2``); ZDT's standard is 30.
        levels: Values per variable (``>= 2``), ``linspace(0, 1, levels)``.
    """

    metrics = ("f1", "f2")
    modes = ("min", "min")

    def __init__(self, which: str = "zdt1", *, n_var: int = 30, levels: int = 11) -> None:
        from pymoo.problems import get_problem

        if which not in _ZDT:
            raise ProblemError(f"DiscreteZDT: which must be one of {list(_ZDT)}, got {which!r}. "
                               "HINT: e.g. DiscreteZDT('zdt1').")
        self.n_var = _check_int("n_var", n_var, 2, "ZDT's standard is 30.")
        self.levels = _check_int("levels", levels, 2, "e.g. 11 gives 0.0, 0.1, ..., 1.0.")
        self.name = f"{which}-n{self.n_var}-k{self.levels}"
        self._pymoo = get_problem(which, n_var=self.n_var)
        self._values = np.linspace(0.0, 1.0, self.levels)
        self.names = tuple(f"x{i:02d}" for i in range(self.n_var))
        self.choices = tuple(tuple(float(v) for v in self._values) for _ in range(self.n_var))
        self._index_choices()
        # Positional: pymoo names this argument differently for ZDT3 than for ZDT1/2.
        self.true_front = self._pymoo.pareto_front(10_000, use_cache=False)
        self.ideal, self.nadir = self.true_front.min(axis=0), self.true_front.max(axis=0)

    def evaluate_chromosome(self, chromosome: Sequence[int]) -> dict[str, float]:
        x = self._values[np.asarray(chromosome, dtype=np.int64)]
        f = self._pymoo.evaluate(x[None, :], return_as_dictionary=True)["F"][0]
        return {"f1": float(f[0]), "f2": float(f[1])}

    def discrete_front(self) -> np.ndarray:
        """The discretised problem's exact Pareto front (minimisation form), from its ``levels``."""
        X = np.zeros((self.levels, self.n_var))
        X[:, 0] = self._values
        F = self._pymoo.evaluate(X, return_as_dictionary=True)["F"]
        return _non_dominated(F)

    def ceiling(self) -> float:
        """HV of the discretised problem's true front: the most any searcher can reach."""
        return normalised_hypervolume(self.normalise(self.discrete_front()))

    def continuous_ceiling(self) -> float:
        """HV of pymoo's (sampled) continuous true front, for reference (>= :meth:`ceiling`)."""
        return normalised_hypervolume(self.normalise(self.true_front))


def _non_dominated(F: np.ndarray) -> np.ndarray:
    keep = [i for i, f in enumerate(F)
            if not np.any(np.all(F <= f, axis=1) & np.any(F < f, axis=1))]
    return F[keep]


# ------------------------------------------------------------------------------------------ MoGA
#: Constants of :func:`proxy_accuracy` (documented in BENCHMARKS.md; change them and every
#: number of the benchmark changes).
PROXY_BASE, PROXY_GAIN, PROXY_CURVATURE = 0.62, 0.15, 3.0
PROXY_MADDS_SHARE = 0.7  # capacity = 0.7 * log-MAdds share + 0.3 * log-params share
PROXY_EFFECT_STD, PROXY_SE_BONUS, PROXY_SEED = 0.0015, 0.0015, 2020


@dataclass(frozen=True)
class _Additive:
    """Per-(layer, choice) terms that add up to a whole model's value, plus the fixed part."""

    base: float
    table: np.ndarray  # (layers, choices)

    def total(self, x: np.ndarray) -> np.ndarray:
        """Totals of rows of choice indices ``x`` (``(n, layers)``)."""
        return self.base + self.table[np.arange(self.table.shape[0]), x].sum(axis=-1)

    @property
    def low(self) -> float:
        return self.base + float(self.table.min(axis=1).sum())

    @property
    def high(self) -> float:
        return self.base + float(self.table.max(axis=1).sum())


def proxy_accuracy(madds: np.ndarray, params: np.ndarray, effects: np.ndarray, *,
                   madds_range: tuple[float, float], params_range: tuple[float, float]) -> np.ndarray:
    """The benchmark's accuracy proxy (top-1-like, about 0.6-0.8).

    ``capacity = 0.7 * s(MAdds) + 0.3 * s(params)`` where ``s`` is a quantity's position between
    the space's smallest and largest model on a log scale; accuracy is
    ``0.62 + 0.15 * (1 - exp(-3 c)) / (1 - exp(-3)) + effects`` - saturating, so the last MAdds buy
    little - where ``effects`` is the sum over layers of a fixed per-(layer, choice) effect (see
    :class:`MogaLutProblem`). Vectorised over arrays of totals.
    """
    def share(v: np.ndarray, lo_hi: tuple[float, float]) -> np.ndarray:
        lo, hi = np.log(lo_hi[0]), np.log(lo_hi[1])
        return (np.log(v) - lo) / (hi - lo)

    capacity = PROXY_MADDS_SHARE * share(madds, madds_range) + (1 - PROXY_MADDS_SHARE) * share(
        params, params_range)
    saturated = (1.0 - np.exp(-PROXY_CURVATURE * capacity)) / (1.0 - math.exp(-PROXY_CURVATURE))
    return PROXY_BASE + PROXY_GAIN * saturated + effects


class MogaLutProblem(NasProblem):
    """MoGA's 14-layer space at 224x224 / 1000 classes: proxy accuracy, LUT latency, params.

    Per-(layer, choice) accuracy effects are fixed: a normal draw (std 0.0015) from seed 2020,
    centred per layer, plus 0.0015 for squeeze-excite in the hard-swish layers (5-13, where
    MobileNetV3 puts SE). So equal MAdds do not mean equal accuracy, SE is cheap in MAdds but not in
    measured latency, and the accuracy-latency front is not simply "more MAdds is better".

    Metrics: ``accuracy`` (max), ``latency_ms`` (min) and, with ``objectives=3`` (MoGA's setting),
    ``params_m`` (min, millions). Results also carry ``madds_m``. The box: latency, params and MAdds
    from their exact extremes over the space (every term is additive over layers); accuracy from
    the proxy's bounds (base + sum of smallest effects .. base + gain + sum of largest effects).

    Args:
        objectives: 2 (accuracy, latency) or 3 (plus params).
        choices: MoGA choice indices (0-11) allowed in every layer; ``None``: all 12.
        lut: Path of the stored lookup table.
    """

    def __init__(self, *, objectives: int = 2, choices: Sequence[int] | None = None,
                 lut: str | Path = DEFAULT_LUT) -> None:
        from spaces.moga import CHOICES

        if objectives not in (2, 3) or isinstance(objectives, bool):
            raise ProblemError(f"MogaLutProblem: objectives must be 2 or 3, got {objectives!r}. "
                               "HINT: 2 = accuracy + latency, 3 = MoGA's accuracy + latency + params.")
        allowed = _check_choices(choices, len(CHOICES))
        self.space, self.lut = load_lut(lut)
        n_layers = len(self.space.dims)
        self.allowed = allowed
        self.name = f"moga{objectives}" + ("" if choices is None else "-c" + ".".join(map(str, allowed)))
        self.names = tuple(d.name for d in self.space.dims)
        self.choices = tuple(allowed for _ in range(n_layers))
        self._index_choices()
        self.metrics = ("accuracy", "latency_ms", "params_m")[:objectives]
        self.modes = ("max", "min", "min")[:objectives]
        self._build_terms(np.array(allowed))

    def _build_terms(self, allowed: np.ndarray) -> None:
        madds, params = _count_terms(self.space)
        state = self.lut.to_dict()["state"]
        lat = np.array(state["table_ms"])
        self.full_madds = madds
        self.full_params = params
        self.full_latency = _Additive(float(state["fixed_ms"]) + float(state["bias_ms"]), lat)
        self.full_effects = _Additive(0.0, _effects(len(self.space.dims)))
        full = {"madds": madds, "params": params, "latency": self.full_latency,
                "effects": self.full_effects}
        self.terms = {k: _Additive(a.base, a.table[:, allowed]) for k, a in full.items()}
        # Normalisation uses the whole 12-choice space, so restricted variants share the yardstick.
        acc_lo = PROXY_BASE + self.full_effects.low
        acc_hi = PROXY_BASE + PROXY_GAIN + self.full_effects.high
        box = [(-acc_hi, -acc_lo), (self.full_latency.low, self.full_latency.high),
               (params.low / 1e6, params.high / 1e6)][:len(self.metrics)]
        self.ideal, self.nadir = np.array([b[0] for b in box]), np.array([b[1] for b in box])

    def evaluate_chromosome(self, chromosome: Sequence[int]) -> dict[str, float]:
        m = self.evaluate_many(np.asarray(chromosome, dtype=np.int64)[None, :])
        return {k: float(v[0]) for k, v in m.items()}

    def evaluate_many(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Metrics of rows of choice indices (positions in :attr:`allowed`), vectorised."""
        t = {k: v.total(X) for k, v in self.terms.items()}
        return self._metrics(t["madds"], t["params"], t["latency"], t["effects"])

    def _metrics(self, madds: np.ndarray, params: np.ndarray, latency: np.ndarray,
                 effects: np.ndarray) -> dict[str, np.ndarray]:
        accuracy = proxy_accuracy(madds, params, effects,
                                  madds_range=(self.full_madds.low, self.full_madds.high),
                                  params_range=(self.full_params.low, self.full_params.high))
        return {"accuracy": accuracy, "latency_ms": latency, "params_m": params / 1e6,
                "madds_m": madds / 1e6}

    def encoding(self, chromosome: Sequence[int]) -> tuple[int, ...]:
        """The MoGA encoding (choice indices 0-11) of a chromosome of this problem."""
        return tuple(int(self.allowed[i]) for i in chromosome)

    def best_reward(self, reward: Callable[[np.ndarray, np.ndarray], np.ndarray], *,
                    limit: int = 20_000_000) -> tuple[tuple[int, ...], float]:
        """The chromosome maximising ``reward(accuracy, latency_ms)``, by exhaustive enumeration.

        Meet in the middle: the first half of the layers' totals against the second half's, in
        chunks, so 3^14 candidates take about a second. Ties go to the first in lexicographic order.

        Raises:
            ProblemError: the space has more than ``limit`` candidates.
        """
        if self.volume > limit:
            raise ProblemError(f"{self.name}: {self.volume} candidates are too many to enumerate "
                               f"(limit {limit}). HINT: restrict choices=, e.g. choices=(0, 8, 11).")
        left, right, parts = self._halves()
        best, best_value = None, -np.inf
        for start in range(0, len(left), 256):
            m = self._chunk_metrics(parts, slice(start, start + 256))
            value = reward(m["accuracy"], m["latency_ms"])
            i = int(np.argmax(value))
            if value.flat[i] > best_value:
                best_value = float(value.flat[i])
                r, c = divmod(i, len(right))
                best = tuple(int(v) for v in np.concatenate([left[start + r], right[c]]))
        return best, best_value  # type: ignore[return-value]  # the loop ran at least once

    def median_latency(self, *, limit: int = 20_000_000) -> float:
        """Median latency over every candidate of this problem (exhaustive, like :meth:`best_reward`)."""
        if self.volume > limit:
            raise ProblemError(f"{self.name}: {self.volume} candidates are too many to enumerate "
                               f"(limit {limit}). HINT: restrict choices=, e.g. choices=(0, 8, 11).")
        _, _, parts = self._halves()
        a, b = parts["latency"]
        return float(np.median(self.terms["latency"].base + a[:, None] + b[None, :]))

    def _halves(self) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """Every choice combination of the first and of the second half of the layers, and each
        additive term's partial sums over them (the whole space is their sum, pairwise)."""
        n = len(self.names)
        half = n // 2
        left, right = (np.array(list(itertools.product(range(len(self.allowed)), repeat=k)))
                       for k in (half, n - half))
        parts = {k: (v.table[np.arange(half), left].sum(axis=1),
                     v.table[np.arange(half, n), right].sum(axis=1))
                 for k, v in self.terms.items()}
        return left, right, parts

    def _chunk_metrics(self, parts: dict[str, tuple[np.ndarray, np.ndarray]],
                       rows: slice) -> dict[str, np.ndarray]:
        totals = {k: self.terms[k].base + a[rows, None] + b[None, :] for k, (a, b) in parts.items()}
        return self._metrics(totals["madds"], totals["params"], totals["latency"], totals["effects"])


def load_lut(path: str | Path = DEFAULT_LUT) -> tuple[Any, Any]:
    """The MoGA space at the paper's settings and the stored lookup-table cost model.

    Raises:
        ProblemError: the file is missing or not a lookup table of that space.
    """
    from cluster.costmodels import LookupTableCostModel
    from spaces import get_space
    from core.errors import HwnasError
    from core.jsonio import read_json

    try:
        data = read_json(path)
        space = get_space("moga", **data["cost_model"]["space"]["settings"])
        model = LookupTableCostModel.from_dict(data["cost_model"], space=space)
    except FileNotFoundError:
        raise ProblemError(f"no lookup table at {str(path)!r}. HINT: regenerate it with "
                           "`python benchmarks/measure_moga_lut.py`.") from None
    except (HwnasError, KeyError, TypeError, ValueError) as exc:
        raise ProblemError(f"{str(path)!r} is not a MoGA lookup table ({exc}). HINT: regenerate it "
                           "with `python benchmarks/measure_moga_lut.py`.") from None
    return space, model


def _count_terms(space: Any) -> tuple[_Additive, _Additive]:
    """Per-(layer, choice) MAdds and params from the space's analytic counts (exactly additive:
    every layer's input shape and output channels are fixed, whatever the other layers choose)."""
    default = list(space.default_encoding())
    base = space.count(default)
    madds, params = np.zeros((len(default), 12)), np.zeros((len(default), 12))
    for layer, choice in itertools.product(range(len(default)), range(12)):
        counts = space.count(default[:layer] + [choice] + default[layer + 1:])
        madds[layer, choice] = counts["madds"] - base["madds"]
        params[layer, choice] = counts["params"] - base["params"]
    return _Additive(float(base["madds"]), madds), _Additive(float(base["params"]), params)


def _effects(n_layers: int) -> np.ndarray:
    """The fixed per-(layer, choice) accuracy effects (see :class:`MogaLutProblem`)."""
    from spaces.moga import CHOICE_PARAMS

    rng = np.random.default_rng(PROXY_SEED)  # a fixed local generator: part of the problem
    effects = rng.normal(0.0, PROXY_EFFECT_STD, size=(n_layers, len(CHOICE_PARAMS)))
    effects -= effects.mean(axis=1, keepdims=True)
    se = np.array([se for _, _, se in CHOICE_PARAMS], dtype=float)
    effects[5:] += PROXY_SE_BONUS * se[None, :]
    return effects


def _check_choices(choices: Any, n: int) -> tuple[int, ...]:
    if choices is None:
        return tuple(range(n))
    hint = f"pass distinct MoGA choice indices in 0..{n - 1}, e.g. choices=(0, 8, 11), or None."
    if isinstance(choices, (str, bytes)) or not isinstance(choices, Sequence) or len(choices) < 2:
        raise ProblemError(f"MogaLutProblem: choices must be a sequence of at least 2 indices, "
                           f"got {choices!r}. HINT: {hint}")
    if any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < n
           for c in choices) or len(set(choices)) != len(choices):
        raise ProblemError(f"MogaLutProblem: choices {list(choices)!r} are not distinct indices in "
                           f"0..{n - 1}. HINT: {hint}")
    return tuple(int(c) for c in choices)


def _check_int(name: str, value: Any, minimum: int, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ProblemError(f"{name} must be an integer >= {minimum}, got {value!r}. HINT: {hint}")
    return int(value)


# ------------------------------------------------------------------------------------------ registry
#: Named problems of the benchmark; :func:`make_problem` builds them.
PROBLEM_NAMES: dict[str, Callable[[], NasProblem]] = {
    "zdt1": lambda: DiscreteZDT("zdt1"),
    "zdt2": lambda: DiscreteZDT("zdt2"),
    "zdt3": lambda: DiscreteZDT("zdt3"),
    "moga2": lambda: MogaLutProblem(objectives=2),
    "moga3": lambda: MogaLutProblem(objectives=3),
}


def make_problem(name: str) -> NasProblem:
    """The benchmark problem registered as ``name``.

    Raises:
        ProblemError: unknown name (the message lists the known ones).
    """
    if name not in PROBLEM_NAMES:
        raise ProblemError(f"unknown benchmark problem {name!r}. HINT: choose one of "
                           f"{sorted(PROBLEM_NAMES)}.")
    return PROBLEM_NAMES[name]()


# ------------------------------------------------------------------------------------------ driver
@dataclass
class Run:
    """What one searcher did on one problem: results in evaluation order, and its own time."""

    configs: list[dict[str, Any]]
    results: list[dict[str, float]]
    searcher_seconds: float  # inside suggest + on_trial_complete only, evaluation excluded

    @property
    def overhead_us(self) -> float:
        """Mean searcher time per evaluated trial (suggest + on_trial_complete), microseconds."""
        return 1e6 * self.searcher_seconds / max(len(self.results), 1)


def drive(searcher: Any, problem: NasProblem, evaluations: int) -> Run:
    """Tune's protocol, one trial at a time: ``suggest``, evaluate, ``on_trial_complete``.

    Stops after ``evaluations`` trials or at ``FINISHED``. A sequential driver never has a trial in
    flight when it asks, so a ``None`` from ``suggest`` would mean the searcher is stuck: an error.
    """
    from ray.tune.search import Searcher

    evaluations = _check_int("evaluations", evaluations, 1, "e.g. 500.")
    run = Run([], [], 0.0)
    clock = time.perf_counter
    for i in range(evaluations):
        trial_id = f"trial-{i:05d}"
        start = clock()
        config = searcher.suggest(trial_id)
        run.searcher_seconds += clock() - start
        if config == Searcher.FINISHED:
            break
        if config is None:
            raise RuntimeError(f"{type(searcher).__name__}.suggest returned None with no trial running")
        result = problem.evaluate(config)
        start = clock()
        searcher.on_trial_complete(trial_id, result=dict(result))
        run.searcher_seconds += clock() - start
        run.configs.append(config)
        run.results.append(result)
    return run
