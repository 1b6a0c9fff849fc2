"""The vocabulary of an experiment's goals: objectives, constraints, feasibility, and reading a trial's
result into minimisation form.

:class:`Objective` and :class:`Constraint` are defined here once; the orchestrator's config and its
Pareto code use these very classes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from core.validation import invalid

__all__ = ["Constraint", "Objective", "Objectives", "feasible", "parse_constraints"]

_OPS = ("<=", ">=")


@dataclass(frozen=True)
class Objective:
    """One objective of a multi-objective search, e.g. ``Objective("latency_ms", "min", 0.4)``.

    Attributes:
        metric: The reported metric.
        mode: ``"max"`` or ``"min"``.
        weight: Its share in MoGA's weighted crowding distance (weights sum to 1); searchers that do
            not weigh objectives ignore it.
    """

    metric: str
    mode: str
    weight: float


@dataclass(frozen=True)
class Constraint:
    """``metric op value``, e.g. ``Constraint("latency_ms", "<=", 5.0)``.

    Attributes:
        metric: The constrained metric.
        op: ``"<="`` (an upper bound) or ``">="`` (a lower bound).
        value: The bound.
    """

    metric: str
    op: str
    value: float

    def satisfied(self, value: float) -> bool:
        """Whether a metric value keeps the constraint (``NaN`` never does)."""
        return self.violation(value) <= 0.0

    def violation(self, value: float) -> float:
        """pymoo's inequality form: ``<= 0`` when satisfied, the excess otherwise."""
        return value - self.value if self.op == "<=" else self.value - value

    def as_json(self) -> list[Any]:
        """``[metric, op, value]``: the form searcher states store (and :func:`parse_constraints` reads)."""
        return [self.metric, self.op, self.value]


def feasible(metrics: Mapping[str, float], constraints: Iterable[Constraint]) -> bool:
    """Whether ``metrics`` keep every constraint.

    Raises:
        KeyError: a constraint's metric is missing from ``metrics``.
    """
    return all(c.satisfied(float(metrics[c.metric])) for c in constraints)


def parse_constraints(constraints: Any) -> tuple[Constraint, ...]:
    """Validate a sequence of :class:`Constraint` or ``(metric, op, value)`` triples.

    Raises:
        ConfigError: not a triple, an op other than ``<=``/``>=``, or a non-finite value.
    """
    if isinstance(constraints, (str, bytes)) or not isinstance(constraints, Sequence):
        raise invalid("constraints", "must be a sequence of (metric, op, value) triples", constraints,
                      "pass e.g. [('latency_ms', '<=', 5.0)] or ()")
    return tuple(_parse_constraint(f"constraints[{i}]", item) for i, item in enumerate(constraints))


def _parse_constraint(where: str, item: Any) -> Constraint:
    if isinstance(item, Constraint):
        item = (item.metric, item.op, item.value)
    if isinstance(item, (str, bytes)) or not isinstance(item, Sequence) or len(item) != 3:
        raise invalid(where, "must be a (metric, op, value) triple", item,
                      "write e.g. ('latency_ms', '<=', 5.0)")
    metric, op, value = item
    if not isinstance(metric, str) or not metric:
        raise invalid(where, "the metric must be a non-empty string", metric,
                      "name a metric your trainable reports")
    if op not in _OPS:
        raise invalid(where, f"the op must be one of {list(_OPS)} (unknown op)", op,
                      "write '<=' for an upper bound or '>=' for a lower bound")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise invalid(where, "the value must be a finite number", value, "write e.g. 5.0")
    return Constraint(metric, op, float(value))


@dataclass(frozen=True)
class Objectives:
    """What a searcher reads from results: objective metrics with directions, and constraints."""

    metrics: tuple[str, ...]
    modes: tuple[str, ...]
    constraints: tuple[Constraint, ...] = ()

    @classmethod
    def build(cls, *, metric: Any, mode: Any, constraints: tuple[Constraint, ...]) -> Objectives:
        """Validate ``metric``/``mode`` (a string each, or equal-length lists).

        Raises:
            ConfigError: missing, mismatched lengths, duplicate metrics, or a mode not max/min.
        """
        metrics = _as_names("metric", metric)
        modes = _as_names("mode", mode)
        if len(metrics) != len(modes):
            raise invalid("mode", f"must have one entry per metric ({len(metrics)} metrics)",
                          list(modes), "give one of 'max'/'min' for each metric, in order")
        if len(set(metrics)) != len(metrics):
            raise invalid("metric", "must not repeat a metric", list(metrics), "list each metric once")
        for i, m in enumerate(modes):
            if m not in ("max", "min"):
                raise invalid(f"mode[{i}]", "must be 'max' or 'min'", m,
                              "use 'max' for accuracy-like and 'min' for cost-like metrics")
        return cls(metrics=metrics, modes=modes, constraints=constraints)

    @property
    def tracked(self) -> tuple[str, ...]:
        """Every metric read from a result: objectives first, then constraint-only metrics."""
        extra = [c.metric for c in self.constraints if c.metric not in self.metrics]
        return self.metrics + tuple(dict.fromkeys(extra))

    def read(self, result: Mapping[str, Any] | None, error: bool) -> dict[str, float] | None:
        """The tracked metrics of a finished trial, or ``None`` when it failed.

        Failed means: ``error``, no result, or a tracked metric missing, non-numeric or not finite.
        A failed candidate is infeasible, never a crash.
        """
        if error or not isinstance(result, Mapping):
            return None
        values = {}
        for name in self.tracked:
            value = _number(_lookup(result, name))
            if value is None:
                return None
            values[name] = value
        return values

    def minimised(self, values: Mapping[str, float]) -> np.ndarray:
        """Objective vector with ``max`` metrics negated."""
        return np.array([-values[m] if d == "max" else values[m]
                         for m, d in zip(self.metrics, self.modes)], dtype=float)

    def violations(self, values: Mapping[str, float]) -> np.ndarray:
        return np.array([c.violation(values[c.metric]) for c in self.constraints], dtype=float)

    def feasible(self, values: Mapping[str, float] | None) -> bool:
        """Whether a trial succeeded (``values`` is not ``None``) and keeps every constraint."""
        return values is not None and feasible(values, self.constraints)


def _as_names(argument: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Sequence) or not items or not all(isinstance(v, str) and v for v in items):
        raise invalid(argument, "must be a non-empty string or list of strings", value,
                      "pass e.g. metric=['accuracy', 'latency_ms'], mode=['max', 'min']")
    return tuple(items)


def _lookup(result: Mapping[str, Any], name: str) -> Any:
    if name in result:
        return result[name]
    node: Any = result  # Tune may report nested dicts; "a/b" names their flattened path
    for part in name.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
