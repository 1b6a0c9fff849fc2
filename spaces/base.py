"""The search-space plugin: the :class:`SearchSpace` contract, its registry and the shared scaffolding.

A space is data: an *encoding* (a tuple of choice indices, one per searched dimension) decodes into
typed block arguments, and a builder turns block arguments into an ``nn.Module``. Model classes never
see encodings. A space instance is configured by keyword *settings* (width multiplier, input size,
classes, ...), declared once as data (:attr:`SearchSpace.SETTINGS`), that are part of every
candidate's identity.

What a new space writes: its settings, its dimensions, ``_decode`` / ``encode`` between encodings and
block arguments, and ``_net`` / ``_supernet`` that construct its modules. Building, weight-sharing
extraction, counting, validation, string forms and candidate ids come from here, and the contract
suite (:mod:`spaces.testing`) then tests it without anyone writing a test.

This module never imports torch: searchers and the CLI decode, validate and count without it.
"""
from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from core.digest import json_digest
from core.errors import ConfigError, InvalidEncodingError
from core.registry import Registry
from core.settings import Setting, resolve_settings, settings_signature

from .ssdlite import SSDLiteArgs, feature_map_sizes, ssd_anchors

if TYPE_CHECKING:  # torch is imported only when a model is built
    import torch
    from torch import nn

__all__ = [
    "SPACES",
    "Dimension",
    "Encoding",
    "Endpoint",
    "LayerParts",
    "SearchSpace",
    "find_endpoints",
    "get_space",
    "register_space",
]

Encoding = tuple[int, ...]

_ENCODING_TEXT = re.compile(r"[0-9]+(-[0-9]+)*")  # the canonical text form of an encoding
#: Censuses a space remembers (a few KB each): a fit's samples, or a search's recent candidates.
_CENSUS_MEMO = 4096


@dataclass(frozen=True)
class Dimension:
    """One searched decision: a name (e.g. ``layer_03``) and the labels of its choices."""

    name: str
    choices: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.choices)


@dataclass(frozen=True)
class Endpoint:
    """A feature map a detection head reads (SSDLite reads C4 and C5).

    Attributes:
        name: ``C5`` (the last map; stride 32 in the published layouts) or ``C4`` (the last map at half
            C5's stride).
        block: Index, in the decoded ``blocks``, of the block whose output it is.
        channels: Its channels.
        stride: Input pixels per feature-map pixel.
    """

    name: str
    block: int
    channels: int
    stride: int


@dataclass(frozen=True)
class LayerParts:
    """What a per-layer cost model (MoGA's lookup table) measures, each part alone on its fixed input.

    Only spaces whose searched layers keep their input and output shapes whatever the choice have
    them (see :meth:`SearchSpace.layer_parts`).

    Attributes:
        input_shape: The network's input, batch 1.
        prefix: An ``nn.Module``: everything before the first searched layer.
        layer_inputs: The fixed input shape of each searched layer.
        choices: Per searched layer, the block arguments of each choice, in choice-index order.
        block: Block arguments -> a freshly built stand-alone block module.
        suffix: An ``nn.Module``: everything after the last searched layer.
        suffix_input: The suffix's input shape.
    """

    input_shape: tuple[int, ...]
    prefix: Any
    layer_inputs: tuple[tuple[int, ...], ...]
    choices: tuple[tuple[Any, ...], ...]
    block: Callable[[Any], Any]
    suffix: Any
    suffix_input: tuple[int, ...]


class SearchSpace(abc.ABC):
    """Base class of every registered search space.

    A subclass declares ``name``, ``SETTINGS`` (its keyword settings as data; ``input_size`` and
    ``num_classes`` are expected, since data and tasks set them), ``SMALL_SETTINGS`` (CPU-sized, for
    tests and quick starts), and implements the five abstract members. Its ``__init__`` takes the
    settings as keywords, calls ``super().__init__(**settings)`` first, then derives its tables from
    :attr:`setting` values.

    The supernet contract: :meth:`_supernet` returns a module with ``forward(x, path)`` (``path`` an
    encoding) and ``path_state_dict(path)`` (views of the path's tensors keyed as the stand-alone
    network's ``state_dict()``), so that in eval mode ``extract(sn, e)(x) == sn(x, e)``.
    """

    name: ClassVar[str]
    SETTINGS: ClassVar[tuple[Setting, ...]] = ()
    SMALL_SETTINGS: ClassVar[Mapping[str, Any]] = {}
    #: Settings a classifier's identity leaves out: those a space gained with its detection head (``task``,
    #: ``head_depths``), so that its classifiers kept the candidate ids they had before.
    CLASSIFIER_IDENTITY_OMITS: ClassVar[tuple[str, ...]] = ()
    #: The other ways this space can build its supernet: option -> its values besides the default of
    #: :data:`SUPERNET_OPTION_DEFAULTS` (e.g. ``kernel_weights: ("per_kernel",)``). They change the
    #: supernet's weights, never a candidate.
    SUPERNET_OPTIONS: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    #: Extra settings that make :attr:`SMALL_SETTINGS` a small detector (see :meth:`small_detection_settings`).
    SMALL_DETECTION_SETTINGS: ClassVar[Mapping[str, Any]] = {"task": "detection", "head_depths": [32, 16, 16, 16]}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "SETTINGS" in cls.__dict__:
            cls.__signature__ = settings_signature(cls.SETTINGS)  # type: ignore[attr-defined]

    def __init__(self, **settings: Any) -> None:
        self._settings = self.check_settings(settings)

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], *, where: Callable[[str], str] | None = None) -> dict[str, Any]:
        """The settings a space would be built with, validated, defaults filled in (see ``where`` in
        :func:`core.settings.resolve_settings`). Cross-setting rules are checked by the constructor."""
        return resolve_settings(cls.SETTINGS, settings, owner=f"space {cls.name}", where=where)

    @classmethod
    def small_settings(cls) -> dict[str, Any]:
        """Settings for CPU-sized tests and quick starts."""
        return dict(cls.SMALL_SETTINGS)

    # ------------------------------------------------------------------ abstract members
    @property
    @abc.abstractmethod
    def dims(self) -> tuple[Dimension, ...]:
        """The searched dimensions, in encoding order. Constant for an instance."""

    @abc.abstractmethod
    def _decode(self, values: Encoding) -> Any:
        """A validated encoding -> block arguments: frozen, hashable data with a ``blocks`` tuple (the
        per-layer block arguments, in network order). Called by :meth:`decode`."""

    @abc.abstractmethod
    def encode(self, block_args: Any) -> Encoding:
        """Block arguments -> encoding; ``encode(decode(e)) == e`` for every valid ``e``. Raises
        :class:`~core.errors.InvalidEncodingError` for arguments that are not an architecture of this
        space (with these settings)."""

    @abc.abstractmethod
    def _net(self, arch: Any) -> nn.Module:
        """The stand-alone module of decoded ``arch``; called on the meta device by :meth:`build`,
        which allocates and initialises it."""

    @abc.abstractmethod
    def _supernet(self, **options: str) -> nn.Module:
        """The weight-sharing supernet (see the class docstring); called on the meta device by
        :meth:`build_supernet`, with the non-default :attr:`SUPERNET_OPTIONS` asked for."""

    # ------------------------------------------------------------------ settings and identity
    def setting(self, name: str) -> Any:
        """One validated setting (sequences as tuples)."""
        return self._settings[name]

    @property
    def settings(self) -> dict[str, Any]:
        """The complete settings in JSON form: two spaces with equal settings build equal models."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self._settings.items()}

    @property
    def identity(self) -> dict[str, Any]:
        settings = self.settings
        if settings.get("task") == "classification":
            settings = {k: v for k, v in settings.items() if k not in self.CLASSIFIER_IDENTITY_OMITS}
        return {"space": self.name, "settings": settings}

    @classmethod
    def small_detection_settings(cls) -> dict[str, Any] | None:
        """Small settings of a detector of this space, or ``None`` when the space has no detection head."""
        if not any(s.name == "task" for s in cls.SETTINGS):
            return None
        return {**cls.small_settings(), **cls.SMALL_DETECTION_SETTINGS}

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """Shape of one input image batch of size 1: ``(1, 3, input_size, input_size)``."""
        size = int(self._settings["input_size"])
        return (1, 3, size, size)

    # ------------------------------------------------------------------ encodings
    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Inclusive integer bounds per dimension (for pymoo integer chromosomes)."""
        upper = np.array([d.size - 1 for d in self.dims], dtype=np.int64)
        return np.zeros_like(upper), upper

    def validate(self, encoding: Sequence[int]) -> Encoding:
        """Return the encoding as a tuple of ints, or raise naming the offending layer and choices."""
        dims = self.dims
        example = self.to_string(self.default_encoding())
        try:
            values = tuple(int(v) for v in encoding)
        except (TypeError, ValueError):
            raise InvalidEncodingError(
                f"{self.name}: an encoding is a list of {len(dims)} integer choice indices, got {encoding!r}. "
                f"HINT: write it as e.g. {example!r}."
            ) from None
        if any(int(v) != v for v in encoding if isinstance(v, float)):
            raise InvalidEncodingError(f"{self.name}: choice indices must be integers, got {list(encoding)!r}")
        if len(values) != len(dims):
            raise InvalidEncodingError(
                f"{self.name}: encoding has {len(values)} choices but the space has {len(dims)} searched "
                f"layers. HINT: give exactly {len(dims)} indices, e.g. {example!r}."
            )
        for dim, value in zip(dims, values):
            if not 0 <= value < dim.size:
                allowed = ", ".join(f"{i}={label}" for i, label in enumerate(dim.choices))
                raise InvalidEncodingError(
                    f"{self.name}: {dim.name} has choice {value}, outside 0..{dim.size - 1}. "
                    f"HINT: allowed choices for {dim.name}: {allowed}."
                )
        return values

    def decode(self, encoding: Sequence[int]) -> Any:
        """Validate ``encoding`` and return its typed block arguments."""
        return self._decode(self.validate(encoding))

    def block_args(self, encoding: Sequence[int]) -> tuple[Any, ...]:
        """The per-layer block arguments of ``encoding`` (frozen dataclasses), in network order; what
        per-layer cost models key on."""
        return tuple(self.decode(encoding).blocks)

    def default_encoding(self) -> Encoding:
        return tuple(0 for _ in self.dims)

    def largest_encoding(self) -> Encoding:
        """The most expensive architecture: per layer the choice with the most MAdds (then params).

        The sandwich rule and in-place distillation train it as the teacher of the other paths.
        """
        return self._extreme(largest=True)

    def smallest_encoding(self) -> Encoding:
        """The cheapest architecture: per layer the choice with the fewest MAdds (then params)."""
        return self._extreme(largest=False)

    def _extreme(self, *, largest: bool) -> Encoding:
        cache = self.__dict__.setdefault("_extremes", {})
        if largest not in cache:
            # Layer by layer, each choice counted with the layers before at their pick and those after at
            # the default: exact for spaces whose layers cost independently, a close pick for the others.
            encoding = list(self.default_encoding())
            for layer, dim in enumerate(self.dims):
                costs = {}
                for index in range(dim.size):
                    trial = (*encoding[:layer], index, *encoding[layer + 1:])
                    try:
                        counted = self.count(self.validate(trial))
                    except InvalidEncodingError:  # a choice that needs other layers changed first
                        continue
                    costs[index] = (counted["madds"], counted["params"])
                pick = max if largest else min
                encoding[layer] = pick(costs, key=lambda i: (costs[i], -i if largest else i))
            cache[largest] = self.validate(encoding)
        return cache[largest]

    def sample(self, rng: np.random.Generator) -> Encoding:
        """A uniformly random architecture drawn from ``rng`` (never a global RNG)."""
        return tuple(int(rng.integers(d.size)) for d in self.dims)

    def to_string(self, encoding: Sequence[int]) -> str:
        """Canonical human-writable form: choice indices joined by '-' (e.g. ``8-10-6-7-...``)."""
        return "-".join(str(int(v)) for v in encoding)

    def parse(self, text: str | Sequence[int]) -> Encoding:
        """Accept the canonical string form or a list of ints; validate."""
        if isinstance(text, str):
            # Strict: a stray '-' (as in '-1-0-...') must not silently become another architecture.
            compact = text.replace(",", "-").replace(" ", "")
            if not _ENCODING_TEXT.fullmatch(compact):
                raise InvalidEncodingError(
                    f"{self.name}: cannot read architecture {text!r}: expected {len(self.dims)} non-negative "
                    f"integers joined by '-'. HINT: e.g. {self.to_string(self.default_encoding())!r}."
                )
            return self.validate([int(p) for p in compact.split("-")])
        return self.validate(text)

    def candidate_id(self, encoding: Sequence[int]) -> str:
        """Stable 16-hex-digit id of (space, settings, encoding): equal ids, equal models."""
        return json_digest({**self.identity, "encoding": list(self.validate(encoding))})

    # ------------------------------------------------------------------ models
    def build(self, encoding: Sequence[int], *, generator: torch.Generator | None = None) -> nn.Module:
        """A freshly initialised stand-alone model of ``encoding``, its weights drawn from ``generator``
        only (a generator seeded with 0 when ``None``), never from torch's global RNG."""
        from ._blocks import materialize

        arch = self.decode(encoding)
        return materialize(lambda: self._net(arch), generator=generator)

    def build_supernet(self, *, generator: torch.Generator | None = None,
                       options: Mapping[str, str] | None = None) -> nn.Module:
        """A freshly initialised weight-sharing supernet of this space (initialised like :meth:`build`).

        It carries this space's :attr:`identity` as ``space_identity``, so :meth:`extract` refuses the
        supernet of another space or of other settings, and its options as ``supernet_options``.

        Args:
            options: :attr:`SUPERNET_OPTIONS` values; defaults may be given or left out.
        """
        from ._blocks import materialize

        chosen = self.supernet_options(options or {})
        supernet = materialize(lambda: self._supernet(**chosen), generator=generator)
        supernet.space_identity = self.identity
        supernet.supernet_options = chosen
        return supernet

    def supernet_options(self, options: Mapping[str, str]) -> dict[str, str]:
        """``options`` checked against :attr:`SUPERNET_OPTIONS`, those at their default left out."""
        chosen = {}
        for key, value in options.items():
            if key not in SUPERNET_OPTION_DEFAULTS:
                raise ConfigError(f"unknown supernet option {key!r}. HINT: known: {', '.join(SUPERNET_OPTION_DEFAULTS)}.")
            if value == SUPERNET_OPTION_DEFAULTS[key]:
                continue
            allowed = self.SUPERNET_OPTIONS.get(key, ())
            if value not in allowed:
                raise ConfigError(f"space {self.name} cannot build its supernet with {key} {value!r}. HINT: use "
                                  f"{SUPERNET_OPTION_DEFAULTS[key]!r}, or a space that can ({_spaces_with(key, value)}).")
            chosen[key] = value
        return chosen

    def meta_build(self, encoding: Sequence[int]) -> nn.Module:
        """The model of ``encoding`` built on the meta device: shapes only, no memory, no RNG draws
        (for counting or inspecting full-size models)."""
        from .counting import meta_model

        arch = self.decode(encoding)
        return meta_model(lambda: self._net(arch))

    def extract(self, supernet: nn.Module, encoding: Sequence[int]) -> nn.Module:
        """A stand-alone model of ``encoding`` carrying ``supernet``'s weights and BN buffers.

        The copy shares no storage with the supernet, lives on its device and in its train/eval mode;
        in eval mode ``extract(sn, e)(x)`` equals ``sn(x, e)``.

        Raises:
            ConfigError: ``supernet`` was not built by a space of this name with these settings.
        """
        from ._blocks import load_path

        if getattr(supernet, "space_identity", None) != self.identity:
            raise ConfigError(
                f"{self.name}: extract() needs a supernet built by a {self.name} space with the same settings. "
                "HINT: build the supernet with this space's build_supernet()."
            )
        arch = self.decode(encoding)
        return load_path(lambda: self._net(arch), supernet, self.validate(encoding))

    # ------------------------------------------------------------------ counting and cost-model views
    def count(self, encoding: Sequence[int]) -> dict[str, int]:
        """Params and MAdds (per image) under the project's counting convention (:mod:`spaces.counting`).

        This default counts the model built on the meta device (no memory, no compute); spaces override
        it with an analytic count, which the contract suite checks against this one.
        """
        from .counting import count_madds, count_params

        model = self.meta_build(encoding)
        return {"params": count_params(model), "madds": count_madds(model, self.input_shape)}

    def op_features(self, encoding: Sequence[int]) -> dict[str, float]:
        """Work per op kind (MAdds, tensor traffic, count) for latency cost models; ``{}`` when the space
        offers none. A linear cost model uses them beside its per-layer indicators."""
        return {}

    def op_census(self, encoding: Sequence[int]) -> dict[str, float]:
        """Per kernel kind, ``count``, ``madds`` and ``elems`` of one inference (:mod:`spaces.op_census`),
        for kernel-level latency models. Counted in ~30 ms (one forward) and remembered per encoding."""
        from .op_census import op_census

        memo: dict[Encoding, dict[str, float]] = self.__dict__.setdefault("_census_memo", {})
        key = self.validate(encoding)
        if key not in memo:
            if len(memo) >= _CENSUS_MEMO:
                memo.pop(next(iter(memo)))  # oldest first: a search revisits recent candidates
            # Uninitialised CPU tensors, not the meta device: shapes are all a census needs, and ATen's CPU
            # kernels run these small graphs 2-3x faster than the meta device's Python shape functions.
            memo[key] = op_census(self.meta_build(key).to_empty(device="cpu"), self.input_shape)
        return dict(memo[key])

    def layer_parts(self) -> LayerParts | None:
        """The parts a per-layer lookup table measures, or ``None`` when some layer's choices change its
        input or output shape (then only whole-model cost models apply)."""
        return None

    def endpoints(self, encoding: Sequence[int]) -> tuple[Endpoint, ...]:
        """The feature maps a detection head reads (``C4``, ``C5``), or ``()`` when the space has none.
        The built model's ``block_outputs(x, [e.block for e in endpoints])`` returns them."""
        return ()

    # ------------------------------------------------------------------ detection
    @property
    def is_detector(self) -> bool:
        """Whether the networks end in an SSDLite head (setting ``task: detection``)."""
        return self._settings.get("task") == "detection"

    def detection_head(self, encoding: Sequence[int]) -> SSDLiteArgs:
        """The SSDLite head's arguments for ``encoding``: it reads the encoding's C4 and C5."""
        endpoints = self.endpoints(encoding)
        if len(endpoints) != 2:
            raise ConfigError(f"space {self.name}: the architecture has no C4 / C5 endpoints for a detection head. "
                              f"HINT: use a larger input_size or stem_stride, or task: classification.")
        return SSDLiteArgs(endpoints[0].channels, endpoints[1].channels, tuple(self.setting("head_depths")),
                           int(self.setting("num_classes")))

    def feature_map_sizes(self) -> tuple[int, ...]:
        """Sides of the head's maps (C4, C5, the extras): the same for every candidate of a space, whose
        strides are fixed. A stride-2 conv with padding ``k // 2`` gives ``ceil(side / 2)``."""
        c4, c5 = self.endpoints(self.default_encoding())
        size = self.input_shape[-1]
        return feature_map_sizes(-(-size // c4.stride), -(-size // c5.stride), len(self.setting("head_depths")))

    def detection_anchors(self) -> np.ndarray:
        """The detector's anchors, ``(A, 4)`` float32 ``(cx, cy, w, h)`` normalised, in output order."""
        return ssd_anchors(self.feature_map_sizes())


def find_endpoints(first_stride: int, blocks: Sequence[Any]) -> tuple[Endpoint, ...]:
    """``C4`` and ``C5`` of a chain of blocks (each with ``out_ch`` and ``stride``) after a prefix of
    stride ``first_stride``: C5 is the last block, C4 the last block at half C5's stride (16 and 32 for the
    published layouts). ``()`` when no block runs at half the final stride."""
    strides, total = [], first_stride
    for args in blocks:
        total *= args.stride
        strides.append(total)
    if not strides or strides[-1] % 2 or strides[-1] // 2 not in strides:
        return ()
    c4 = max(i for i, s in enumerate(strides) if s == strides[-1] // 2)
    last = len(blocks) - 1
    return (Endpoint("C4", c4, blocks[c4].out_ch, strides[c4]), Endpoint("C5", last, blocks[last].out_ch, strides[last]))


# ---------------------------------------------------------------------------------------- registry
SPACES: Registry[type[SearchSpace]] = Registry("search space")


#: Every supernet option and its default (see :attr:`SearchSpace.SUPERNET_OPTIONS`). ``kernel_weights``:
#: ``shared``, a smaller depthwise kernel is the centre of the largest; ``per_kernel``, each kernel size
#: of a layer has its own depthwise weights (the expanded channels stay shared).
SUPERNET_OPTION_DEFAULTS: dict[str, str] = {"kernel_weights": "shared"}


def _spaces_with(option: str, value: str) -> str:
    names = [name for name in SPACES.names() if value in SPACES.get(name).SUPERNET_OPTIONS.get(option, ())]
    return ", ".join(names) or "none"


def register_space(cls: type[SearchSpace]) -> type[SearchSpace]:
    """Class decorator: register a space under ``cls.name``."""
    return SPACES.register(cls.name)(cls)


def get_space(name: str, **settings: Any) -> SearchSpace:
    """Instantiate the registered space ``name`` with keyword ``settings``."""
    return SPACES.get(name)(**settings)
