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
from core.errors import ConfigError, HwnasError
from core.jsonio import canonical_json, read_json, write_json_atomic
from core.seeding import make_rng
from core.validation import check_int

from .costmodels import COST_MODELS, CostModel, LookupTableCostModel

__all__ = [
    "HOLDOUT_FRACTION",
    "MIN_SAMPLES",
    "CalibrationResult",
    "ServiceMeasurer",
    "evaluate_cost_model",
    "fit_cost_model",
    "holdout_size",
    "load_cost_model",
    "sample_architectures",
    "save_cost_model",
]

#: Share of the sampled architectures held out of a fit to report its fidelity.
HOLDOUT_FRACTION = 0.25
#: Fewest samples of a fit: 2 held out (a correlation needs 2 points) and 2 to fit.
MIN_SAMPLES = 4
# Draws per wanted architecture before sampling gives up (small spaces run out of new ones).
_DRAWS_PER_SAMPLE = 50

Progress = Callable[[str], None]


def _silent(_line: str) -> None:
    pass


def sample_architectures(space: SearchSpace, n: int, *, seed: int, purpose: str) -> list[Encoding]:
    """``n`` distinct architectures drawn from the stream ``(seed, "costmodel", purpose)``.

    Raises:
        ConfigError: The space has fewer than ``n`` architectures to offer (bounded: no endless loop).
    """
    rng = make_rng(seed, "costmodel", purpose)
    found: dict[Encoding, None] = {}
    for _ in range(_DRAWS_PER_SAMPLE * n):
        found.setdefault(space.sample(rng), None)
        if len(found) == n:
            return list(found)
    raise ConfigError(f"could draw only {len(found)} distinct architectures of space {space.name!r}, not {n}. "
                      f"HINT: ask for fewer samples.")


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

    Args:
        client: A :class:`~cluster.latency.LatencyClient` of the device.
        progress: Receives one line per part or model measured (``"[costmodel] ..."``).
    """

    def __init__(self, client: Any, *, progress: Progress = _silent) -> None:
        self.client = client
        self._progress = progress
        self.parts_measured = 0

    def measure(self, space: SearchSpace, encoding: Sequence[int]) -> dict[str, Any]:
        """The service's record for ``encoding`` (a cache hit skips building and exporting)."""
        import torch

        from spaces import export_onnx

        candidate_id = space.candidate_id(encoding)
        shape = space.input_shape
        hit = self.client.lookup(candidate_id, shape)
        if hit is not None:
            return hit
        with torch.random.fork_rng():  # weights do not change latency; keep the global RNG untouched
            torch.manual_seed(0)
            model = space.build(encoding).eval()
        return self.client.measure(candidate_id, export_onnx(model, shape), shape)

    def measure_many(self, space: SearchSpace, encodings: Sequence[Encoding], *, what: str) -> list[float]:
        """Median milliseconds of each encoding, with a progress line per model."""
        out: list[float] = []
        started = time.perf_counter()
        for i, encoding in enumerate(encodings, 1):
            record = self.measure(space, encoding)
            out.append(float(record["median_ms"]))
            rate = i / max(time.perf_counter() - started, 1e-9)
            latency = "cached" if record.get("cached") else f"{record['median_ms']:.3f} ms"
            self._progress(f"[costmodel] {what}: measured {i}/{len(encodings)} architectures ({latency}), "
                           f"ETA {(len(encodings) - i) / rate:.0f} s")
        return out

    def part_ms(self, onnx_bytes: bytes, input_shape: tuple[int, ...]) -> float:
        """A :data:`~cluster.costmodels.MeasureFn` for the lookup table, cached by graph structure."""
        record = self.client.measure(f"part-{structure_digest(onnx_bytes)}", onnx_bytes, list(input_shape))
        self.parts_measured += 1
        if self.parts_measured % 20 == 0:
            self._progress(f"[costmodel] lookup table: {self.parts_measured} blocks measured")
        return float(record["median_ms"])


@dataclass(frozen=True)
class CalibrationResult:
    """A fitted model and where it came from (saved next to it by :func:`save_cost_model`)."""

    model: CostModel
    info: dict[str, Any]

    @property
    def fidelity(self) -> dict[str, Any]:
        """Held-out ``r2``, ``rmse_ms``, ``spearman``, ``kendall``, ``n`` (NaN read as ``None``)."""
        return self.info["fidelity"]


def fit_cost_model(kind: str, space: SearchSpace, *, samples: int, seed: int, measurer: ServiceMeasurer,
                   device: str, options: dict[str, Any] | None = None) -> CalibrationResult:
    """Sample, measure, fit and report held-out fidelity (protocol in the module docstring).

    ``options`` are keyword arguments of the model's constructor (e.g. ``{"op_features": False}``).

    Raises:
        ConfigError: ``samples`` is below :data:`MIN_SAMPLES`, or ``kind`` is not a cost model.
        DeviceError: A measurement failed.
    """
    cls = COST_MODELS.get(kind)
    check_samples(samples, flag="samples")
    encodings = sample_architectures(space, samples, seed=seed, purpose="fit")
    measured = measurer.measure_many(space, encodings, what=f"fitting {kind}")
    held = holdout_size(samples)
    fit_encs, fit_ms = encodings[:-held], measured[:-held]
    options = dict(options or {})
    model = cls(measure=measurer.part_ms, **options) if cls is LookupTableCostModel else cls(**options)
    model.fit(space, fit_encs, fit_ms)
    mean_ms = sum(measured[-held:]) / held
    report = _finite(model.fidelity(encodings[-held:], measured[-held:]))
    report["rmse_pct"] = None if report["rmse_ms"] is None else 100.0 * report["rmse_ms"] / mean_ms
    info = {"device": device, "input_shape": list(space.input_shape), "samples": samples,
            "fit_samples": len(fit_encs), "holdout": held, "seed": seed, "fidelity": report,
            "mean_holdout_ms": mean_ms, "fitted_at": time.time()}
    return CalibrationResult(model=model, info=info)


def evaluate_cost_model(model: CostModel, *, samples: int, seed: int, measurer: ServiceMeasurer) -> dict[str, Any]:
    """Fidelity of ``model`` on ``samples`` architectures drawn from the ``"eval"`` stream.

    Returns:
        ``r2``, ``rmse_ms``, ``spearman``, ``kendall``, ``n``, ``rmse_pct`` (RMSE as % of the mean
        measured latency) and ``mean_ms``; NaN statistics are ``None``.
    """
    check_samples(samples, flag="samples", minimum=2)
    encodings = sample_architectures(model.space, samples, seed=seed, purpose="eval")
    measured = measurer.measure_many(model.space, encodings, what="evaluating")
    report = _finite(model.fidelity(encodings, measured))
    mean_ms = sum(measured) / len(measured)
    report.update(mean_ms=mean_ms, rmse_pct=None if report["rmse_ms"] is None else 100.0 * report["rmse_ms"] / mean_ms)
    return report


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
                          f"`hwnas costmodel fit --space NAME --kind linear|lut --samples N --out {path}`.")
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
