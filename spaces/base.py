"""The search-space plugin interface.

A space is data: an *encoding* (a tuple of choice indices, one per searched dimension) decodes into
typed block arguments, and a builder turns block arguments into an ``nn.Module``. Model classes never
see encodings. A space instance is configured by keyword *settings* (width multiplier, input size,
classes, ...) that are part of every candidate's identity.
"""
from __future__ import annotations

import abc
import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np

from core.errors import InvalidEncodingError
from core.jsonio import canonical_json

__all__ = ["Dimension", "SearchSpace", "Encoding"]

Encoding = tuple[int, ...]


@dataclass(frozen=True)
class Dimension:
    """One searched decision: a name (e.g. ``layer_03``) and the labels of its choices."""

    name: str
    choices: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.choices)


class SearchSpace(abc.ABC):
    """Base class of every registered search space.

    Subclasses set ``name``, implement the abstract members, and expose their settings through
    :attr:`settings` (JSON-serialisable, complete: two spaces with equal settings build equal models).
    """

    name: ClassVar[str]

    @property
    @abc.abstractmethod
    def settings(self) -> dict[str, Any]:
        """The space's configuration; part of every candidate's identity."""

    @property
    @abc.abstractmethod
    def dims(self) -> tuple[Dimension, ...]:
        """The searched dimensions, in encoding order. Constant for an instance."""

    @abc.abstractmethod
    def decode(self, encoding: Sequence[int]) -> Any:
        """Encoding -> block arguments (validated first). Called before every build."""

    @abc.abstractmethod
    def encode(self, block_args: Any) -> Encoding:
        """Block arguments -> encoding; ``encode(decode(e)) == e`` for every valid ``e``."""

    @abc.abstractmethod
    def build(self, encoding: Sequence[int]) -> Any:
        """A stand-alone ``nn.Module`` for the architecture, freshly initialised."""

    # ------------------------------------------------------------------ shared, concrete behaviour
    @property
    def identity(self) -> dict[str, Any]:
        return {"space": self.name, "settings": self.settings}

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """Shape of one input image batch of size 1: ``(1, 3, input_size, input_size)``."""
        size = int(self.settings["input_size"])
        return (1, 3, size, size)

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Inclusive integer bounds per dimension (for pymoo integer chromosomes)."""
        upper = np.array([d.size - 1 for d in self.dims], dtype=np.int64)
        return np.zeros_like(upper), upper

    def validate(self, encoding: Sequence[int]) -> Encoding:
        """Return the encoding as a tuple of ints, or raise naming the offending layer and choices."""
        dims = self.dims
        try:
            values = tuple(int(v) for v in encoding)
        except (TypeError, ValueError):
            raise InvalidEncodingError(
                f"{self.name}: an encoding is a list of {len(dims)} integer choice indices, got {encoding!r}. "
                f"HINT: write it as e.g. {self.to_string(self.default_encoding())!r}."
            ) from None
        if any(int(v) != v for v in encoding if isinstance(v, float)):
            raise InvalidEncodingError(f"{self.name}: choice indices must be integers, got {list(encoding)!r}")
        if len(values) != len(dims):
            raise InvalidEncodingError(
                f"{self.name}: encoding has {len(values)} choices but the space has {len(dims)} searched "
                f"layers. HINT: give exactly {len(dims)} indices, e.g. {self.to_string(self.default_encoding())!r}."
            )
        for dim, value in zip(dims, values):
            if not 0 <= value < dim.size:
                allowed = ", ".join(f"{i}={label}" for i, label in enumerate(dim.choices))
                raise InvalidEncodingError(
                    f"{self.name}: {dim.name} has choice {value}, outside 0..{dim.size - 1}. "
                    f"HINT: allowed choices for {dim.name}: {allowed}."
                )
        return values

    def default_encoding(self) -> Encoding:
        return tuple(0 for _ in self.dims)

    def sample(self, rng: np.random.Generator) -> Encoding:
        """A uniformly random architecture drawn from ``rng`` (never a global RNG)."""
        return tuple(int(rng.integers(d.size)) for d in self.dims)

    def to_string(self, encoding: Sequence[int]) -> str:
        """Canonical human-writable form: choice indices joined by '-' (e.g. ``8-10-6-7-...``)."""
        return "-".join(str(int(v)) for v in encoding)

    def parse(self, text: str | Sequence[int]) -> Encoding:
        """Accept the canonical string form or a list of ints; validate."""
        if isinstance(text, str):
            parts = [p for p in text.replace(",", "-").replace(" ", "").split("-") if p != ""]
            try:
                values = [int(p) for p in parts]
            except ValueError:
                raise InvalidEncodingError(
                    f"{self.name}: cannot read architecture {text!r}: expected {len(self.dims)} integers "
                    f"joined by '-'. HINT: e.g. {self.to_string(self.default_encoding())!r}."
                ) from None
            return self.validate(values)
        return self.validate(text)

    def candidate_id(self, encoding: Sequence[int]) -> str:
        """Stable 16-hex-digit id of (space, settings, encoding): equal ids, equal models."""
        payload = canonical_json({**self.identity, "encoding": list(self.validate(encoding))})
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]
