"""The categorical parameter space a searcher explores: names, choices, and chromosome <-> config."""
from __future__ import annotations

import json

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from ray.tune.search.sample import Categorical, Domain

from core.validation import invalid

__all__ = ["GENERATION_KEY", "Chromosome", "ParamSpace"]

#: Extra key in every suggested config: the generation the candidate belongs to.
GENERATION_KEY = "hwnas_generation"

Chromosome = tuple[int, ...]


@dataclass(frozen=True)
class ParamSpace:
    """Ordered categorical dimensions; a chromosome is the tuple of choice indices in this order."""

    names: tuple[str, ...]
    choices: tuple[tuple[Any, ...], ...]

    @classmethod
    def from_mapping(cls, param_space: Any, *, argument: str = "param_space") -> ParamSpace:
        """Validate ``{name: [choices...] | tune.choice([...])}``.

        Raises:
            ConfigError: the mapping is empty, a name is not a string or is reserved, or a
                dimension is not a non-empty list/tuple/``tune.choice``.
        """
        if not isinstance(param_space, Mapping) or len(param_space) == 0:
            raise invalid(
                argument, "must be a non-empty mapping of parameter name -> choices", param_space,
                "pass e.g. {'layer_00': [0, 1, 2], 'layer_01': tune.choice([0, 1])}.",
            )
        names, choices = [], []
        for name, dimension in param_space.items():
            names.append(_check_name(argument, name))
            choices.append(_choices_of(f"{argument}[{name!r}]", dimension))
        return cls(names=tuple(names), choices=tuple(choices))

    @classmethod
    def from_tune_config(cls, config: Mapping[str, Any]) -> ParamSpace:
        """The ``tune.choice`` entries of a Tuner ``param_space``; constants pass through untouched.

        Raises:
            ConfigError: another kind of search domain (``tune.uniform``, grid search, nested
                domains) is present, or there is no ``tune.choice`` at all.
        """
        categorical = {}
        for name, value in config.items():
            if isinstance(value, Categorical):
                categorical[name] = value
            elif _contains_domain(value):
                raise invalid(
                    f"param_space[{name!r}]", "must be tune.choice(...) or a constant at the top "
                    "level (this searcher explores categorical spaces only)", value,
                    "replace it with tune.choice([...]) over a few values.",
                )
        return cls.from_mapping(categorical, argument="param_space (tune.choice entries)")

    @property
    def sizes(self) -> np.ndarray:
        return np.array([len(c) for c in self.choices], dtype=np.int64)

    @property
    def volume(self) -> int:
        """How many distinct chromosomes exist (a Python int: it may exceed 2**63)."""
        return math.prod(len(c) for c in self.choices)

    def values(self, chromosome: Sequence[int]) -> dict[str, Any]:
        """The parameter values a chromosome stands for."""
        return {name: options[i] for name, options, i in zip(self.names, self.choices, chromosome)}

    def config(self, chromosome: Sequence[int], generation: int) -> dict[str, Any]:
        """The config handed to Tune: parameter values plus :data:`GENERATION_KEY`."""
        config = self.values(chromosome)
        config[GENERATION_KEY] = int(generation)
        return config

    def describe(self) -> dict[str, Any]:
        """JSON identity used to refuse a state saved for another space: the names and every choice's
        value (a value JSON cannot hold by its ``repr``), so that a space of the same shape but other
        values is refused too, and a bare searcher can rebuild the space from a saved state."""
        return {"names": list(self.names),
                "choices": json.loads(json.dumps([list(c) for c in self.choices], default=repr))}

    def same_as(self, saved: Any) -> bool:
        """Whether ``saved`` (a :meth:`describe` of a state) is this space. States written before the
        values were recorded hold ``names`` and ``sizes``: those match on the shape alone."""
        if isinstance(saved, Mapping) and "sizes" in saved and "choices" not in saved:
            return saved == {"names": list(self.names), "sizes": [len(c) for c in self.choices]}
        return saved == self.describe()

    @classmethod
    def from_description(cls, saved: Mapping[str, Any]) -> ParamSpace:
        """The space a :meth:`describe` stands for (values JSON could not hold come back as their repr)."""
        return cls.from_mapping(dict(zip(saved["names"], saved["choices"])), argument="saved param_space")


def _check_name(argument: str, name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise invalid(argument, "parameter names must be non-empty strings", name,
                           "use names such as 'layer_00'.")
    if name == GENERATION_KEY:
        raise invalid(argument, f"{GENERATION_KEY!r} is reserved for the generation number",
                           name, "rename the parameter.")
    return name


def _choices_of(argument: str, dimension: Any) -> tuple[Any, ...]:
    if isinstance(dimension, Categorical):
        dimension = dimension.categories
    if isinstance(dimension, (str, bytes)) or not isinstance(dimension, Sequence) or not dimension:
        raise invalid(argument, "must be a non-empty list, tuple or tune.choice of choices",
                           dimension, "pass e.g. [3, 5, 7] or tune.choice([3, 5, 7]).")
    return tuple(dimension)


def _contains_domain(value: Any) -> bool:
    if isinstance(value, Domain):
        return True
    if isinstance(value, Mapping):
        return "grid_search" in value or any(_contains_domain(v) for v in value.values())
    return False
