"""What a latency measurement is and how hard it works: :class:`LatencyStats` and :class:`MeasureOptions`.

Shared by every runtime (:mod:`cluster.measure` for ONNX Runtime, :mod:`cluster.torch_runtime` for
PyTorch) and free of both, so neither runtime module imports the other.
"""
from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from core.errors import DeviceError, HwnasError
from core.validation import check_int, check_number, invalid

__all__ = ["LatencyStats", "MeasureOptions", "best_round", "check_input_shape", "check_options"]


@dataclass(frozen=True)
class LatencyStats:
    """Robust statistics of one measurement, in milliseconds per inference.

    ``median_ms``, ``min_ms``, ``p90_ms``, ``mean_ms`` and ``cv`` (standard deviation / mean) are
    computed over the runs at or below ``median + 5 * MAD`` of the kept round: those above are
    interruptions (preemption, page faults, a neighbour's burst), not the model's latency, and a
    single one would otherwise dominate the mean and the CV. ``runs`` counts every timed run of
    that round, outliers included.
    """

    median_ms: float
    min_ms: float
    p90_ms: float
    mean_ms: float
    cv: float
    runs: int

    @classmethod
    def from_samples_ns(cls, samples_ns: Sequence[float] | np.ndarray) -> LatencyStats:
        """The statistics of per-run wall times in nanoseconds (timed here or on another device).

        Raises:
            HwnasError: ``samples_ns`` is empty or holds a value that is not finite and >= 0.
        """
        try:
            ms = np.asarray(samples_ns, dtype=np.float64).reshape(-1) / 1e6
        except (TypeError, ValueError):
            ms = np.empty(0)
        if ms.size == 0 or not np.all(np.isfinite(ms) & (ms >= 0)):
            raise invalid("samples_ns", "must be a non-empty sequence of finite run times >= 0", samples_ns,
                          "pass one wall time per timed run, in nanoseconds", error=HwnasError)
        median = float(np.median(ms))
        mad = float(np.median(np.abs(ms - median)))
        kept = ms[ms <= median + 5.0 * mad]  # never empty: at least half the runs are <= median
        mean = float(kept.mean())
        return cls(
            median_ms=float(np.median(kept)),
            min_ms=float(kept.min()),
            p90_ms=float(np.percentile(kept, 90)),
            mean_ms=mean,
            cv=float(kept.std() / mean) if mean > 0 else 0.0,
            runs=int(ms.size),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form that :meth:`from_dict` reads back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyStats:
        """Read the statistics out of a mapping that may hold other keys (a measurement record).

        Raises:
            HwnasError: A statistic is missing or not a number.
        """
        try:
            return cls(**{f.name: (int if f.name == "runs" else float)(data[f.name]) for f in fields(cls)})
        except (KeyError, TypeError, ValueError) as exc:
            names = ", ".join(f.name for f in fields(cls))
            raise invalid("latency record", f"must hold the numbers {names} ({type(exc).__name__}: {exc})",
                          data, "measure the model again", error=HwnasError) from None


@dataclass(frozen=True)
class MeasureOptions:
    """How hard :func:`measure_onnx` works for one measurement, and the one place its defaults live.

    After ``warmup`` untimed runs, each round times single inferences, at least ``min_runs`` of them
    and until ``min_time_s`` has passed, at most ``max_runs``. While a round's CV exceeds
    ``cv_threshold`` another round is timed, at most ``max_rounds`` in all. The input is drawn from
    ``seed``. Class attributes hold the defaults (``MeasureOptions.warmup == 10``) for configs and CLI
    flags to read.

    Attributes:
        warmup: Untimed runs first (allocations, caches, lazy kernel selection).
        min_runs: Fewest timed runs per round.
        max_runs: Most timed runs per round (bounds a slow model's round).
        min_time_s: Shortest timed duration per round (fast models get many runs).
        cv_threshold: A round with a CV at or below this is stable and ends the measurement.
        max_rounds: Most rounds.
        seed: Seed of the input tensor.

    Raises:
        ConfigError: An option is out of range; the message names it.
    """

    warmup: int = 10
    min_runs: int = 30
    max_runs: int = 300
    min_time_s: float = 0.2
    cv_threshold: float = 0.05
    max_rounds: int = 3
    seed: int = 0

    def settings(self) -> dict[str, Any]:
        """Every option as plain data: what a cached measurement was taken with, part of its cache key."""
        return asdict(self)

    def __post_init__(self) -> None:
        # Normalised values (a numpy int becomes an int) so records and Ray messages hold plain types.
        checked = {
            "warmup": check_int(_where("warmup"), self.warmup, minimum=0, maximum=100_000, hint=_example("warmup")),
            "min_runs": check_int(_where("min_runs"), self.min_runs, minimum=1, maximum=1_000_000,
                                  hint=_example("min_runs")),
            "max_rounds": check_int(_where("max_rounds"), self.max_rounds, minimum=1, maximum=100,
                                    hint=_example("max_rounds")),
            "seed": check_int(_where("seed"), self.seed, minimum=0, hint=_example("seed")),
            "min_time_s": check_number(_where("min_time_s"), self.min_time_s, low=0.0, high=3600.0, hint=_example("min_time_s")),
            "cv_threshold": check_number(_where("cv_threshold"), self.cv_threshold, low=0.0, low_open=True,
                                         hint=_example("cv_threshold")),
        }
        checked["max_runs"] = check_int(
            _where("max_runs"), self.max_runs, minimum=checked["min_runs"], maximum=10_000_000,
            hint="max_runs must be at least min_runs (and at most 10,000,000); raise it or lower min_runs")
        for name, value in checked.items():
            object.__setattr__(self, name, value)


def _where(name: str) -> str:
    return f"measurement option '{name}'"


def _example(name: str) -> str:
    return f"e.g. {name}={getattr(MeasureOptions, name)!r} (the default)"


def check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """``input_shape`` as a tuple of Python ints; numpy integers pass, 1.5 or True does not.

    Raises:
        DeviceError: Not a non-empty sequence of positive integers.
    """
    try:
        dims = tuple(input_shape)
    except TypeError:
        dims = ()
    if not dims or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in dims):
        raise invalid("input_shape", "must be a non-empty sequence of positive integers, batch first", input_shape,
                      "e.g. (1, 3, 224, 224)", error=DeviceError)
    return tuple(int(d) for d in dims)


def check_options(options: MeasureOptions | None, *, where: str) -> MeasureOptions:
    """``options``, or the defaults for ``None``; anything else is refused, named as ``where``."""
    if options is None:
        return MeasureOptions()
    if not isinstance(options, MeasureOptions):
        raise invalid(where, "must be a MeasureOptions or None", options, "e.g. options=MeasureOptions(min_runs=50)")
    return options


def best_round(time_round: Callable[[], np.ndarray], options: MeasureOptions) -> LatencyStats:
    """The statistics of the most stable of up to ``options.max_rounds`` rounds (per-run nanoseconds from
    ``time_round``): the first round whose CV is at most ``options.cv_threshold`` ends the measurement."""
    best = LatencyStats.from_samples_ns(time_round())
    for _ in range(options.max_rounds - 1):
        if best.cv <= options.cv_threshold:
            break
        stats = LatencyStats.from_samples_ns(time_round())
        if stats.cv < best.cv:
            best = stats
    return best
