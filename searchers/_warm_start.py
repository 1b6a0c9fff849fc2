"""Warm start, in Ray Tune's vocabulary: configs to evaluate first (``points_to_evaluate``) and results
evaluated elsewhere (``add_evaluated_point`` / ``add_evaluated_trials``), turned into chromosomes and
metrics a :class:`~searchers.GenerationalSearcher` files like its own.

MoGA seeds its search with MobileNetV3's architecture; a NAS user seeds with the architectures they
already know. These helpers only read and check what a user hands over; where the points go (the
first generation, the archive) is the searcher's business.
"""
from __future__ import annotations

import math
from typing import Any, Iterator, Mapping, Sequence

from core.validation import invalid

from ._objectives import Objectives
from ._space import Chromosome, ParamSpace

__all__ = ["check_points", "chromosome_of", "evaluated_metrics", "finished_trials"]


def check_points(points: Any) -> list[dict[str, Any]]:
    """``points_to_evaluate`` as given: a list of configs (mappings); ``None`` is no points.

    Raises:
        ConfigError: not a list of mappings.
    """
    if points is None:
        return []
    if isinstance(points, (str, bytes, Mapping)) or not isinstance(points, Sequence):
        raise invalid("points_to_evaluate", "must be a list of configs (dicts of parameter values)", points,
                      "pass e.g. [{'layer_00': 3, 'layer_01': 1}] (one dict per architecture)")
    for i, point in enumerate(points):
        if not isinstance(point, Mapping):
            raise invalid(f"points_to_evaluate[{i}]", "must be a dict of parameter values", point,
                          "give every parameter of the space its value")
    return [dict(p) for p in points]


def chromosome_of(space: ParamSpace, config: Mapping[str, Any], where: str) -> Chromosome:
    """The chromosome of a full config over ``space`` (keys outside the space, such as
    ``hwnas_generation`` or a Tuner's constants, are ignored).

    Raises:
        ConfigError: a parameter is missing, or its value is not one of its choices.
    """
    missing = [n for n in space.names if n not in config]
    if missing:
        raise invalid(where, f"must give every parameter of the space (missing: {missing})", dict(config),
                      "warm-start points are whole architectures: give each parameter one of its choices")
    genes = []
    for name, choices in zip(space.names, space.choices):
        value = config[name]
        index = next((i for i, c in enumerate(choices) if _same(c, value)), None)
        if index is None:
            raise invalid(f"{where}[{name!r}]", f"must be one of its choices {list(choices)}", value,
                          "use a value of the searcher's param_space")
        genes.append(index)
    return tuple(genes)


def evaluated_metrics(objectives: Objectives, value: Any, *, error: bool, pruned: bool) -> dict[str, float] | None:
    """The tracked metrics of a point evaluated elsewhere, as a finished trial would give them.

    ``value`` is a dict of metric values (every tracked metric: objectives and constraint metrics),
    one number when exactly one metric is tracked, or a list with one number per objective when no
    constraint reads another metric. ``error``/``pruned``, or a missing or non-finite value, make the
    point failed (``None``), as for a trial.

    Raises:
        ConfigError: ``value`` has none of these forms.
    """
    if error or pruned:
        return None
    tracked = objectives.tracked
    if isinstance(value, Mapping):
        return objectives.read(value, False)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and len(tracked) == 1:
        return objectives.read({tracked[0]: value}, False)
    if (isinstance(value, Sequence) and not isinstance(value, (str, bytes))
            and len(value) == len(tracked)):
        return objectives.read(dict(zip(tracked, value)), False)
    raise invalid("value", f"must be a dict of the tracked metrics {list(tracked)}", value,
                  f"pass e.g. value={{{', '.join(f'{m!r}: ...' for m in tracked)}}}")


def finished_trials(trials_or_results: Any) -> Iterator[tuple[Mapping[str, Any], Mapping[str, Any] | None, bool]]:
    """``(config, last result, errored)`` of each finished trial in a Tune ``Trial``, a list of them,
    a ``Result``, a ``ResultGrid`` or an ``ExperimentAnalysis``; trials still running are skipped.

    Raises:
        ConfigError: something else was passed.
    """
    from ray.tune import ExperimentAnalysis, Result, ResultGrid
    from ray.tune.experiment import Trial
    from ray.tune.result import DONE

    if isinstance(trials_or_results, (Trial, Result)):
        items: Sequence[Any] = [trials_or_results]
    elif isinstance(trials_or_results, ResultGrid):
        items = list(trials_or_results)
    elif isinstance(trials_or_results, ExperimentAnalysis):
        items = trials_or_results.trials
    elif isinstance(trials_or_results, (list, tuple)):
        items = trials_or_results
    else:
        raise invalid("trials_or_analysis", "must be a Trial, a list of Trials, a Result, a ResultGrid or "
                      "an ExperimentAnalysis", type(trials_or_results).__name__,
                      "pass the ResultGrid that Tuner.fit() returned, or tuner.get_results()")
    for item in items:
        if isinstance(item, Result):
            yield item.config or {}, item.metrics, item.error is not None
        elif isinstance(item, Trial):
            if item.status == Trial.ERROR:
                yield item.config, item.last_result, True
            elif item.status == Trial.TERMINATED:
                # Stopped before its end (a scheduler pruned it): no final result to judge it by.
                yield item.config, item.last_result, not item.last_result.get(DONE, False)
        else:
            raise invalid("trials_or_analysis", "must hold Tune Trials or Results", type(item).__name__,
                          "pass the ResultGrid that Tuner.fit() returned")


def _same(choice: Any, value: Any) -> bool:
    """A value matches a choice when equal, with 3 and 3.0 alike but never True and 1."""
    if isinstance(choice, bool) or isinstance(value, bool):
        return choice is value
    if isinstance(choice, float) and isinstance(value, float) and math.isnan(choice):
        return math.isnan(value)
    try:
        return bool(choice == value)
    except Exception:  # an exotic value whose == raises or is ambiguous (e.g. an array)
        return False
