"""Fitting and checking cost models from measurements taken by the latency service.

A cost model is only as good as the measurements behind it, so everything here measures through a
device's :class:`~cluster.latency.LatencyClient`: on the node that carries the device, one model at
a time, into the persistent cache (a second fit or evaluation of the same architectures measures
nothing). The same code serves ``hwnas costmodel fit|eval`` and an experiment's calibration stage.

Protocol of a fit (documented in the README): ``samples`` distinct architectures are drawn from
``make_rng(seed, "costmodel", "fit")`` and measured whole; the last ``ceil(HOLDOUT_FRACTION *
samples)`` (at least 2) are held out and only used for the fidelity report, the rest fit the model
(for ``lut``: they fit its bias; its table is measured block by block). An evaluation draws from
the ``"eval"`` stream instead, so with the same seed it measures architectures other than the fit's.

``samples="auto"`` lets the fidelity choose the number: :data:`AUTO_HOLDOUT` architectures of the
``"holdout"`` stream are measured first and held out; the fit set grows from the ``"fit"`` stream by
:data:`AUTO_STEP` until its 5-fold cross-validated r^2 improves by less than :data:`AUTO_MIN_GAIN`
(or ``max_samples`` are measured in all).

The architectures a fit is scored on (held out, or drawn for an evaluation) are measured in
:data:`SCORE_PASSES` passes, one pass over the whole set after the other, and scored against the
geometric mean of their passes: on moga at 128 px, whose latencies differ by only ~10%, two single passes
agree at r^2 0.95, so even a perfect model scored against one pass would reach only ~0.975 (BENCHMARKS.md).
The fit set is measured once (the regression averages its noise over a hundred architectures). The report
gives how well two single passes agree (:func:`repeatability`).

Every measurement here is paired with the space's reference model (:class:`ServiceMeasurer`) and
asks the service for clean figures (:data:`~cluster.service.NOISY_RETRIES` retries); one that stays
noisy (taken while other processes kept the node busy) is left out of the fit and of the report, and
a fit with more than :data:`NOISY_LIMIT` of them refuses to go on.
"""
from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from spaces.base import Encoding, SearchSpace
from core.digest import SHORT
from core.errors import ConfigError, DeviceError, HwnasError
from core.jsonio import canonical_json, read_json, write_json_atomic
from core.seeding import make_rng
from core.validation import check_int

from .costmodels import COST_MODELS, CostModel, LookupTableCostModel
from .fit_statistics import bootstrap_interval, cross_validated, scores
from .service import NOISY_RETRIES

__all__ = [
    "AUTO_HOLDOUT",
    "AUTO_MAX_SAMPLES",
    "AUTO_MIN_GAIN",
    "AUTO_STEP",
    "NOISY_LIMIT",
    "HOLDOUT_FRACTION",
    "SCORE_PASSES",
    "MIN_SAMPLES",
    "CalibrationResult",
    "ServiceMeasurer",
    "evaluate_cost_model",
    "export_architecture",
    "fit_cost_model",
    "check_passes",
    "holdout_size",
    "load_cost_model",
    "reference_encoding",
    "repeatability",
    "sample_architectures",
    "save_cost_model",
]

#: Share of the sampled architectures held out of a fit to report its fidelity.
HOLDOUT_FRACTION = 0.25
#: Fewest samples of a fit: 2 held out (a correlation needs 2 points) and 2 to fit.
MIN_SAMPLES = 4
#: ``samples="auto"``: architectures held out (measured first), the step the fit set grows by, the most
#: measured in all, and the cross-validated r^2 gain below which growing stops.
AUTO_HOLDOUT = 50
AUTO_STEP = 50
AUTO_MAX_SAMPLES = 300
AUTO_MIN_GAIN = 0.005
#: Largest share of a fit's or evaluation's measurements that may be noisy before it refuses to go on.
NOISY_LIMIT = 0.25
#: Architectures drawn (stream ``(0, "costmodel", "reference")``) to pick a space's reference model from:
#: the one of median MAdds. Seed 0 always, so fits of any seed share the reference and the cache.
REFERENCE_DRAWS = 9
#: The reference's own latency (the scale of every paired figure) is the fastest of this many plain
#: measurements, a second apart: measured once, it was at times taken while the node was slow (right
#: after Ray started, 2.34 ms for a model that takes 1.33), and every latency of that cache with it.
REFERENCE_FASTEST_OF = 3
#: Passes over the architectures a fit is scored on; their latency is the geometric mean of the passes.
#: Three passes took moga at 128 px from held-out r2 0.958 (one pass) to 0.985 with the same model
#: (BENCHMARKS.md, "Scored on three passes").
SCORE_PASSES = 3
# Draws per wanted architecture before sampling gives up (small spaces run out of new ones).
_DRAWS_PER_SAMPLE = 50

Progress = Callable[[str], None]


def _silent(_line: str) -> None:
    pass


def sample_architectures(space: SearchSpace, n: int, *, seed: int, purpose: str,
                         exclude: Sequence[Encoding] = ()) -> list[Encoding]:
    """``n`` distinct architectures drawn from the stream ``(seed, "costmodel", purpose)``, none of ``exclude``.

    Raises:
        ConfigError: The space has fewer than ``n`` architectures to offer (bounded: no endless loop).
    """
    rng = make_rng(seed, "costmodel", purpose)
    found: dict[Encoding, None] = {}
    skip = set(exclude)
    for _ in range(_DRAWS_PER_SAMPLE * n):
        drawn = space.sample(rng)
        if drawn not in skip:
            found.setdefault(drawn, None)
        if len(found) == n:
            return list(found)
    raise ConfigError(f"could draw only {len(found)} distinct architectures of space {space.name!r}, not {n}. "
                      f"HINT: ask for fewer samples.")


def reference_encoding(space: SearchSpace) -> Encoding:
    """The architecture every model of ``space`` is timed against: a typical one, of median MAdds
    among :data:`REFERENCE_DRAWS` drawn with seed 0.

    Typical, not the space's default (published) architecture: a reference of the models' own size
    and mix of compute and memory traffic slows down as they do when the host's state changes (a
    neighbour's load, the shared caches), so their ratios to it hold. The default can be far from
    that: MobileNetEdgeTPUV2 at 128 px takes 2.3 ms where a sampled architecture of its space takes
    ~12, and ratios to it moved by 5-7% per model next to a busy or memory-streaming neighbour, against
    1-2.3% for a typical reference (BENCHMARKS.md, ``benchmarks/reference_choice.py``).
    """
    rng = make_rng(0, "costmodel", "reference")
    drawn = [space.sample(rng) for _ in range(REFERENCE_DRAWS)]  # repeats are fine: a tiny space has few
    by_madds = sorted(drawn, key=lambda encoding: (space.count(encoding)["madds"], encoding))
    return by_madds[len(by_madds) // 2]


def holdout_size(samples: int) -> int:
    """How many of ``samples`` a fit holds out: ``ceil(HOLDOUT_FRACTION * samples)``, at least 2."""
    return max(2, math.ceil(HOLDOUT_FRACTION * samples))


def structure_digest(onnx_bytes: bytes) -> str:
    """Hash of an ONNX graph without its weight values: equal structure, equal latency, one cache entry.

    Blocks built for a lookup table get fresh random weights every time; hashing the bytes would
    make every fit measure everything again.
    """
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    for tensor in model.graph.initializer:
        for name in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
            tensor.ClearField(name)
    return hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()[:SHORT]


class ServiceMeasurer:
    """Whole architectures and lookup-table parts measured through one device's latency service.

    **Paired with a reference** (``paired=True``, the default where the device runs ONNX Runtime): every
    model is timed in alternating blocks of runs with one reference model of the space (a typical
    architecture, :func:`reference_encoding`; :func:`~cluster.measure.measure_paired`), and its latency
    is ``relative * reference_ms``: the median ratio of its blocks to the reference's, times the
    reference's own cached latency. On a shared host the node's speed drifts by 5-10% within seconds,
    which moves every plain median with it and cancels in the ratio; blocks, not single runs in turn,
    because a model that fills the caches slows the reference's next runs (BENCHMARKS.md,
    ``benchmarks/measurement_drift.py``). The record's ``latency_ms`` is the figure a fit uses either way.

    Args:
        client: A :class:`~cluster.latency.LatencyClient` of the device.
        progress: Receives one line per part or model measured (``"[costmodel] ..."``).
        noisy_retries: Extra tries the service makes while a measurement is noisy.
        paired: Time every model against the space's reference model.
    """

    def __init__(self, client: Any, *, progress: Progress = _silent, noisy_retries: int = NOISY_RETRIES,
                 paired: bool | None = None) -> None:
        self.client = client
        self._retries = noisy_retries
        self.progress = progress
        self.parts_measured = 0
        device = getattr(client, "device", None)
        self.paired = (getattr(device, "runtime", "onnxruntime") == "onnxruntime") if paired is None else bool(paired)
        self._references: dict[str, tuple[tuple[str, bytes, list[int]], float]] = {}

    def reference(self, space: SearchSpace) -> tuple[tuple[str, bytes, list[int]], float] | None:
        """``((reference_id, onnx_bytes, input_shape), reference_ms)`` of ``space``, or ``None`` unpaired.

        The reference is :func:`reference_encoding`'s typical architecture; its own latency is measured
        plainly, the fastest of :data:`REFERENCE_FASTEST_OF` tries, and cached like any model's, so every
        fit and evaluation of the space shares one scale.
        """
        if not self.paired:
            return None
        key = canonical_json(space.identity)
        if key not in self._references:
            encoding = reference_encoding(space)
            reference_id = f"reference-{space.candidate_id(encoding)}"
            data = export_architecture(space, encoding)
            record = self.client.measure(reference_id, data, space.input_shape, noisy_retries=self._retries,
                                         fastest_of=REFERENCE_FASTEST_OF)
            self._references[key] = ((reference_id, data, list(space.input_shape)), float(record["median_ms"]))
        return self._references[key]

    def measure(self, space: SearchSpace, encoding: Sequence[int], *, repeat: int = 0) -> dict[str, Any]:
        """The service's record for ``encoding`` plus ``latency_ms`` (a cache hit skips building and
        exporting; a noisy record is no hit); ``repeat`` > 0 is an independent measurement, cached apart."""
        candidate_id = space.candidate_id(encoding)
        shape = space.input_shape
        reference = self.reference(space)
        # Unpaired first measurements name neither, so a bare LatencyService (no Ray) serves as the client too.
        extra: dict[str, Any] = {"repeat": repeat} if repeat else {}
        hit = (self.client.lookup(candidate_id, shape, **extra) if reference is None
               else self.client.lookup(candidate_id, shape, reference[0][0], **extra))
        if hit is None:
            hit = self._measure(candidate_id, export_architecture(space, encoding), shape, reference, repeat)
        return _with_latency(hit, reference)

    def _measure(self, candidate_id: str, data: bytes, shape: Sequence[int], reference: Any,
                 repeat: int = 0) -> dict[str, Any]:
        extra: dict[str, Any] = {} if reference is None else {"reference": reference[0]}
        if repeat:
            extra["repeat"] = repeat
        return self.client.measure(candidate_id, data, list(shape), noisy_retries=self._retries, **extra)

    def measure_passes(self, space: SearchSpace, encodings: Sequence[Encoding], *, passes: int,
                       what: str) -> list[dict[str, Any]]:
        """Each encoding measured in ``passes`` passes over the whole list (so its passes lie a whole pass
        apart), as its first clean pass's record with ``latency_ms`` the geometric mean of its clean passes
        and ``pass_latencies_ms`` each pass's figure (``None``: noisy). Noisy only if every pass is."""
        runs = [self.measure_records(space, encodings, repeat=k,
                                     what=what if passes == 1 else f"{what}, pass {k + 1} of {passes}")
                for k in range(passes)]
        return [_combined(list(records)) for records in zip(*runs)]

    def measure_records(self, space: SearchSpace, encodings: Sequence[Encoding], *, what: str,
                        repeat: int = 0) -> list[dict[str, Any]]:
        """The service's record of each encoding (with ``latency_ms``), with a progress line per model."""
        out: list[dict[str, Any]] = []
        started = time.perf_counter()
        for i, encoding in enumerate(encodings, 1):
            record = self.measure(space, encoding, repeat=repeat)
            out.append(record)
            rate = i / max(time.perf_counter() - started, 1e-9)
            latency = "cached" if record.get("cached") else f"{record['latency_ms']:.3f} ms"
            noisy = f", NOISY: {record['noisy']}" if record.get("noisy") else ""
            self.progress(f"[costmodel] {what}: measured {i}/{len(encodings)} architectures ({latency}{noisy}), "
                          f"ETA {(len(encodings) - i) / rate:.0f} s")
        return out

    def measure_many(self, space: SearchSpace, encodings: Sequence[Encoding], *, what: str) -> list[float]:
        """``latency_ms`` of each encoding (noisy ones included), with a progress line per model."""
        return [float(r["latency_ms"]) for r in self.measure_records(space, encodings, what=what)]

    def part_measure(self, space: SearchSpace) -> Callable[[bytes, tuple[int, ...]], float]:
        """A :data:`~cluster.costmodels.MeasureFn` for ``space``'s lookup table: parts cached by graph
        structure, paired with the space's reference like whole models."""
        def measure(onnx_bytes: bytes, input_shape: tuple[int, ...]) -> float:
            reference = self.reference(space)
            record = self._measure(f"part-{structure_digest(onnx_bytes)}", onnx_bytes, input_shape, reference)
            self.parts_measured += 1
            if self.parts_measured % 20 == 0:
                self.progress(f"[costmodel] lookup table: {self.parts_measured} blocks measured")
            return float(_with_latency(record, reference)["latency_ms"])

        return measure


def export_architecture(space: SearchSpace, encoding: Sequence[int]) -> bytes:
    """The ONNX model the latency service measures for ``encoding`` (weights seeded: they do not change latency)."""
    import torch

    from spaces import export_onnx

    with torch.random.fork_rng():  # weights do not change latency; keep the global RNG untouched
        torch.manual_seed(0)
        model = space.build(encoding).eval()
    return export_onnx(model, space.input_shape)


def _combined(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One architecture's passes as one record (:meth:`ServiceMeasurer.measure_passes`)."""
    clean = [r for r in records if r.get("noisy") is None]
    passes = [None if r.get("noisy") is not None else float(r["latency_ms"]) for r in records]
    if not clean:
        return {**records[0], "pass_latencies_ms": passes}
    mean_ms = math.exp(sum(math.log(float(r["latency_ms"])) for r in clean) / len(clean))
    return {**clean[0], "latency_ms": mean_ms, "pass_latencies_ms": passes}


def _with_latency(record: dict[str, Any], reference: tuple[Any, float] | None) -> dict[str, Any]:
    """``record`` plus ``latency_ms``: its median, or its ratio to the reference times the reference's latency."""
    latency = float(record["median_ms"]) if reference is None else float(record["relative"]) * reference[1]
    return {**record, "latency_ms": latency}


@dataclass(frozen=True)
class CalibrationResult:
    """A fitted model and where it came from (saved next to it by :func:`save_cost_model`)."""

    model: CostModel
    info: dict[str, Any]

    @property
    def fidelity(self) -> dict[str, Any]:
        """Held-out ``r2``, ``rmse_ms``, ``spearman``, ``kendall``, ``n`` (NaN read as ``None``)."""
        return self.info["fidelity"]


def fit_cost_model(kind: str, space: SearchSpace, *, samples: int | str, seed: int, measurer: ServiceMeasurer,
                   device: str, options: dict[str, Any] | None = None, max_samples: int = AUTO_MAX_SAMPLES,
                   score_passes: int = SCORE_PASSES) -> CalibrationResult:
    """Sample, measure, fit and report held-out fidelity (protocol in the module docstring).

    ``samples`` is a count, or ``"auto"`` (at most ``max_samples`` measured). ``options`` are keyword
    arguments of the model's constructor (e.g. ``{"op_features": False}``). The held-out architectures
    are measured in ``score_passes`` passes.

    Raises:
        ConfigError: ``samples`` is below :data:`MIN_SAMPLES`, ``score_passes`` below 1, or ``kind`` is not
            a cost model.
        DeviceError: A measurement failed, or more than :data:`NOISY_LIMIT` of them were noisy.
    """
    cls = COST_MODELS.get(kind)
    options = dict(options or {})
    score_passes = check_passes(score_passes, flag="score_passes")

    def make() -> CostModel:
        return cls(measure=measurer.part_measure(space), **options) if cls is LookupTableCostModel else cls(**options)

    if samples == "auto":
        check_samples(max_samples, flag="max_samples", minimum=AUTO_HOLDOUT + MIN_SAMPLES)
        sets, steps = _grown_sets(make, kind, space, seed=seed, measurer=measurer, max_samples=max_samples,
                                  passes=score_passes)
    else:
        samples = check_samples(samples, flag="samples")
        encodings = sample_architectures(space, samples, seed=seed, purpose="fit")
        held = holdout_size(samples)
        fit, holdout = encodings[:-held], encodings[-held:]
        sets = _MeasuredSets(fit, measurer.measure_records(space, fit, what=f"fitting {kind}"), holdout,
                             measurer.measure_passes(space, holdout, passes=score_passes, what="held-out set"))
        steps = None
    fit_encs, fit_ms = sets.quiet_fit()
    hold_encs, hold_ms = sets.quiet_holdout()
    model = make().fit(space, fit_encs, fit_ms)
    report = _report(model, hold_encs, hold_ms, seed=seed, records=sets.holdout_records, passes=score_passes)
    info = {"device": device, "input_shape": list(space.input_shape), "samples": sets.total,
            "fit_samples": len(fit_encs), "holdout": len(hold_encs), "noisy_excluded": sets.noisy, "seed": seed,
            "fidelity": report, "mean_holdout_ms": report["mean_ms"], "fitted_at": time.time()}
    if steps is not None:
        info["steps"] = steps
    return CalibrationResult(model=model, info=info)


@dataclass
class _MeasuredSets:
    """The fit and held-out architectures with their service records; noisy ones are left out of both."""

    fit: list[Encoding]
    fit_records: list[dict[str, Any]]
    holdout: list[Encoding]
    holdout_records: list[dict[str, Any]]

    @property
    def total(self) -> int:
        return len(self.fit) + len(self.holdout)

    @property
    def noisy(self) -> int:
        return sum(r.get("noisy") is not None for r in self.fit_records + self.holdout_records)

    def quiet_fit(self) -> tuple[list[Encoding], list[float]]:
        return _quiet(self.fit, self.fit_records, total=self.total, noisy=self.noisy)

    def quiet_holdout(self) -> tuple[list[Encoding], list[float]]:
        return _quiet(self.holdout, self.holdout_records, total=self.total, noisy=self.noisy)


def _quiet(encodings: Sequence[Encoding], records: Sequence[Mapping[str, Any]], *, total: int,
           noisy: int) -> tuple[list[Encoding], list[float]]:
    """The encodings whose measurement is not noisy, with their medians; refuses a mostly noisy set."""
    if noisy > NOISY_LIMIT * total:
        reason = next((r["noisy"] for r in records if r.get("noisy")), "see the records marked noisy in the cache")
        raise DeviceError(f"{noisy} of {total} measurements were noisy even after {NOISY_RETRIES} retries each "
                          f"(for example: {reason}); a cost model fitted to them would learn the load, not the "
                          f"device. HINT: stop other work on the device's node (or use a node with free cores) "
                          f"and run the fit again: noisy records are measured again, clean ones come from the cache.")
    kept = [(e, float(r["latency_ms"])) for e, r in zip(encodings, records) if r.get("noisy") is None]
    return [e for e, _ in kept], [ms for _, ms in kept]


def _grown_sets(make: Callable[[], CostModel], kind: str, space: SearchSpace, *, seed: int, measurer: ServiceMeasurer,
                max_samples: int, passes: int) -> tuple[_MeasuredSets, list[dict[str, Any]]]:
    """``samples="auto"``: the held-out set, then a fit set grown until cross-validation stops improving."""
    holdout = sample_architectures(space, AUTO_HOLDOUT, seed=seed, purpose="holdout")
    sets = _MeasuredSets([], [], holdout, measurer.measure_passes(space, holdout, passes=passes, what="held-out set"))
    pool = sample_architectures(space, max_samples - AUTO_HOLDOUT, seed=seed, purpose="fit", exclude=holdout)
    steps: list[dict[str, Any]] = []
    while len(sets.fit) < len(pool):
        grown = pool[len(sets.fit): len(sets.fit) + AUTO_STEP]
        sets.fit += grown
        sets.fit_records += measurer.measure_records(space, grown, what=f"fitting {kind}")
        if kind == "lut":  # whole models only fit the table's bias: one step is plenty
            break
        encs, ms = sets.quiet_fit()
        cv = _finite(cross_validated(make, space, encs, ms))
        steps.append({"fit_samples": len(sets.fit), "cv_r2": cv["r2"], "cv_kendall": cv["kendall"]})
        measurer.progress(f"[costmodel] {len(sets.fit)} fit architectures: cross-validated r2 "
                          f"{_number(cv['r2'])}, Kendall {_number(cv['kendall'])}")
        if len(steps) >= 2 and (steps[-1]["cv_r2"] or 0.0) - (steps[-2]["cv_r2"] or 0.0) < AUTO_MIN_GAIN:
            break
    return sets, steps


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _report(model: CostModel, encodings: Sequence[Encoding], measured: Sequence[float], *, seed: int,
            records: Sequence[Mapping[str, Any]], passes: int) -> dict[str, Any]:
    """Fidelity on ``encodings`` with 95% bootstrap intervals of r2 and Kendall, RMSE as % of the mean, the
    ``passes`` behind each measured figure and how well two of them agree (``records``: all, noisy too)."""
    report = _finite(model.fidelity(encodings, measured))
    mean_ms = sum(measured) / len(measured)
    interval = bootstrap_interval(model.predict_many(encodings), measured, rng=make_rng(seed, "costmodel", "interval"))
    report.update(mean_ms=mean_ms, rmse_pct=None if report["rmse_ms"] is None else 100.0 * report["rmse_ms"] / mean_ms,
                  r2_interval=interval["r2"], kendall_interval=interval["kendall"],
                  passes=passes, repeatability=repeatability(records))
    return report


def repeatability(records: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """How well a second pass reproduces the first: ``r2`` and ``kendall`` of pass 2's latencies against
    pass 1's, and ``n`` (architectures clean in both), or ``None`` (fewer than 2 passes or 3 such).

    It shows what one measurement per architecture costs a score: with noise independent from pass to pass,
    a perfect model scored on single passes carries one pass's noise where two passes carry two, and so
    reaches only about ``(1 + r2) / 2``.
    """
    pairs = [(r["pass_latencies_ms"][0], r["pass_latencies_ms"][1]) for r in records
             if len(r.get("pass_latencies_ms") or ()) >= 2 and None not in r["pass_latencies_ms"][:2]]
    if len(pairs) < 3:
        return None
    first, second = zip(*pairs)
    agreement = _finite(scores(second, first))
    return {"r2": agreement["r2"], "kendall": agreement["kendall"], "n": len(pairs)}


def evaluate_cost_model(model: CostModel, *, samples: int, seed: int, measurer: ServiceMeasurer,
                        score_passes: int = SCORE_PASSES) -> dict[str, Any]:
    """Fidelity of ``model`` on ``samples`` architectures drawn from the ``"eval"`` stream, each measured
    in ``score_passes`` passes (noisy measurements left out).

    Returns:
        ``r2``, ``rmse_ms``, ``spearman``, ``kendall``, ``n``, ``rmse_pct`` (RMSE as % of the mean
        measured latency), ``mean_ms``, 95% bootstrap ``r2_interval`` and ``kendall_interval``,
        ``passes``, ``repeatability`` (:func:`repeatability`) and ``noisy_excluded``; NaN statistics are ``None``.

    Raises:
        ConfigError: ``samples`` below 2 or ``score_passes`` below 1.
        DeviceError: A measurement failed, or more than :data:`NOISY_LIMIT` of them were noisy.
    """
    check_samples(samples, flag="samples", minimum=2)
    score_passes = check_passes(score_passes, flag="score_passes")
    encodings = sample_architectures(model.space, samples, seed=seed, purpose="eval")
    records = measurer.measure_passes(model.space, encodings, passes=score_passes, what="evaluating")
    sets = _MeasuredSets([], [], encodings, records)
    kept, measured = sets.quiet_holdout()
    if len(kept) < 2:
        raise DeviceError(f"only {len(kept)} of {samples} measurements were clean. HINT: measure on an idle node.")
    return {**_report(model, kept, measured, seed=seed, records=records, passes=score_passes),
            "noisy_excluded": sets.noisy}


def check_samples(samples: Any, *, flag: str, minimum: int = MIN_SAMPLES) -> int:
    """``samples`` as an int if a fit (or, with ``minimum=2``, an evaluation) can use it.

    Args:
        samples: The sample count given.
        flag: How the caller names it in messages (``"--samples"``, a config field).
        minimum: Fewest samples: :data:`MIN_SAMPLES` for a fit, 2 for an evaluation.

    Raises:
        ConfigError: Not an integer >= ``minimum``.
    """
    held = f"; {holdout_size(minimum)} of them are held out to report fidelity" if minimum == MIN_SAMPLES else ""
    return check_int(flag, samples, minimum=minimum, hint=f"e.g. {flag} 40 (more samples, better fidelity{held})")


def check_passes(passes: Any, *, flag: str) -> int:
    """``passes`` as an int if it is a number of measurement passes (1 to 10).

    Raises:
        ConfigError: Not an integer in 1..10.
    """
    return check_int(flag, passes, minimum=1, maximum=10,
                     hint=f"e.g. {flag} {SCORE_PASSES} (the default; 1 measures each scored architecture once)")


def _finite(report: Mapping[str, Any]) -> dict[str, Any]:
    """NaN (constant data) as ``None``: JSON has no NaN and the state files refuse it."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in report.items()}


# ------------------------------------------------------------------------------------------ files
def save_cost_model(path: str | os.PathLike[str], result: CalibrationResult) -> None:
    """Write the model's JSON plus a ``calibration`` record (device, samples, fidelity) atomically."""
    write_json_atomic(path, {**result.model.to_dict(), "calibration": result.info})


def load_cost_model(path: str | os.PathLike[str], *, kind: str | None = None,
                    space: SearchSpace | None = None, what: str = "--model") -> CalibrationResult:
    """Read a file written by :func:`save_cost_model` (or :meth:`CostModel.save`), checking it.

    Args:
        path: The JSON file.
        kind: Refuse a model of another kind.
        space: Refuse a model fitted for another space or settings; ``None`` rebuilds its own.
        what: How the caller names the file in messages (a CLI flag or a config field).

    Raises:
        ConfigError: The file is missing, unreadable, not a cost model, of another kind or space.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r}: no such file. HINT: write one with "
                          f"`hwnas costmodel fit --space NAME --kind kernels|linear|lut --samples N --out {path}`.")
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what} {str(path)!r} is not readable JSON ({exc}). HINT: fit it again with "
                          f"`hwnas costmodel fit ... --out {path} --force`.") from None
    found = data.get("kind") if isinstance(data, dict) else None
    if kind is not None and found is not None and found != kind:
        raise ConfigError(f"{what} {str(path)!r} holds a {found!r} cost model, not {kind!r}. HINT: fit a {kind} "
                          f"model (`hwnas costmodel fit --kind {kind} ...`) or set the kind to {found!r}.")
    stored = data.get("space") if isinstance(data, dict) else None
    if space is not None and isinstance(stored, dict) and canonical_json(stored) != canonical_json(space.identity):
        raise ConfigError(f"{what} {str(path)!r} was fitted for space {canonical_json(stored)}, not for "
                          f"{canonical_json(space.identity)}. HINT: fit one for this space: `hwnas costmodel fit "
                          f"{space_hint(space.identity)} --kind {found or 'linear'} --samples N --out FILE.json`.")
    try:
        model = CostModel.from_dict(data, space=space)
    except HwnasError as exc:
        raise ConfigError(f"{what} {str(path)!r}: {exc}") from None
    info = data.get("calibration") if isinstance(data.get("calibration"), dict) else {}
    return CalibrationResult(model=model, info=info)


def space_hint(identity: Mapping[str, Any]) -> str:
    """The ``hwnas costmodel fit`` arguments that reproduce a space identity."""
    settings = dict(identity.get("settings", {}))
    size = settings.pop("input_size", None)
    parts = [f"--space {identity.get('space')}"] + ([f"--input-size {size}"] if size is not None else [])
    parts += [f"--set {k}={canonical_json(v)}" for k, v in sorted(settings.items())]
    return " ".join(parts)
