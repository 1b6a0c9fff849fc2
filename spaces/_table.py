"""Layer-table spaces: fixed parts around searched layers, each layer picking its block from a table.

MoGA, MobileNetV2/V3 and MobileNetEdgeTPUV2 have this shape: a stem and a fixed first block, then one
searched layer per dimension whose choices keep the layer's input and output channels and stride,
then a fixed tail. Such a space is its settings, its fixed parts, its table of block arguments
(``table[layer][choice]``), its choice labels, three analytic cost functions and its network parts
(:class:`~spaces._layerwise.LayerwiseParts`); decoding, encoding, counting, building, the
weight-sharing supernet, the lookup-table parts and the detection endpoints follow from those here.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from core.errors import InvalidEncodingError

from .base import Dimension, Encoding, Endpoint, LayerParts, SearchSpace, find_endpoints
from .counting import Cost
from .ssdlite import SSDLiteArgs, ssdlite_cost

if TYPE_CHECKING:
    from torch import nn

    from ._layerwise import LayerwiseParts

__all__ = ["LayerTableSpace", "LayerwiseArch"]


@dataclass(frozen=True)
class LayerwiseArch:
    """A decoded architecture of a layer-table space.

    Attributes:
        fixed: The parts every candidate of the space shares (a frozen dataclass of the space).
        blocks: One block-arguments value per searched layer.
    """

    fixed: Any
    blocks: tuple[Any, ...]


class LayerTableSpace(SearchSpace):
    """Base of the layer-table spaces (see the module docstring).

    A subclass's ``__init__`` validates its settings (``super().__init__(**settings)``), then calls
    :meth:`_set_table` once; it implements :meth:`_parts` and the three cost functions.
    """

    _fixed: Any
    _table: tuple[tuple[Any, ...], ...]
    CLASSIFIER_IDENTITY_OMITS = ("task", "head_depths")  # added with detection (see SearchSpace)

    def _set_table(self, fixed: Any, table: Sequence[Sequence[Any]], labels: Sequence[str]) -> None:
        """Fix the space: shared parts, per-layer block arguments in choice order, the choice labels."""
        self._fixed = fixed
        self._table = tuple(tuple(layer) for layer in table)
        self._index = tuple({args: c for c, args in enumerate(layer)} for layer in self._table)
        self._dims = tuple(Dimension(f"layer_{i:02d}", tuple(labels)) for i in range(len(self._table)))

    # ------------------------------------------------------------------ what a subclass provides
    @abc.abstractmethod
    def _parts(self) -> LayerwiseParts:
        """The space's network parts (trunk modules, blocks, elastic blocks, tail); imports torch."""

    @abc.abstractmethod
    def _prefix_cost(self, fixed: Any) -> Cost:
        """Params and MAdds of the stem and first block on the input, with their output size."""

    @abc.abstractmethod
    def _block_cost(self, args: Any, size: int) -> Cost:
        """Params and MAdds of one searched block on a ``size x size`` input."""

    @abc.abstractmethod
    def _suffix_cost(self, fixed: Any, in_ch: int, size: int) -> Cost:
        """Params and MAdds of the tail after the last searched block."""

    # ------------------------------------------------------------------ SearchSpace members
    @property
    def dims(self) -> tuple[Dimension, ...]:
        return self._dims

    @property
    def fixed(self) -> Any:
        """The fixed parts shared by all candidates of this space."""
        return self._fixed

    @property
    def table(self) -> tuple[tuple[Any, ...], ...]:
        """Per searched layer, the block arguments of each choice, in choice-index order."""
        return self._table

    def _decode(self, values: Encoding) -> LayerwiseArch:
        return LayerwiseArch(fixed=self._fixed, blocks=tuple(self._table[i][c] for i, c in enumerate(values)))

    def encode(self, block_args: LayerwiseArch) -> Encoding:
        if not isinstance(block_args, LayerwiseArch):
            raise InvalidEncodingError(f"{self.name}: encode() takes LayerwiseArch, got {type(block_args).__name__}")
        if block_args.fixed != self._fixed or len(block_args.blocks) != len(self._table):
            raise InvalidEncodingError(
                f"{self.name}: these block arguments were decoded by a space with other settings "
                f"({block_args.fixed} vs {self._fixed}). HINT: encode with the space that decoded them."
            )
        encoding = []
        for dim, index, args in zip(self._dims, self._index, block_args.blocks):
            if args not in index:
                raise InvalidEncodingError(
                    f"{self.name}: {dim.name} block {args} is not a choice of this space (a layer's choices keep "
                    f"its input and output channels, stride and activation). HINT: allowed choices: "
                    f"{', '.join(dim.choices)}."
                )
            encoding.append(index[args])
        return tuple(encoding)

    def count(self, encoding: Sequence[int]) -> dict[str, int]:
        """Params and MAdds computed analytically (no model is built); the contract suite checks them
        against the hook counter of :mod:`spaces.counting`."""
        arch = self.decode(encoding)
        cost = self._prefix_cost(arch.fixed)
        sizes = []
        for args in arch.blocks:
            cost = cost + self._block_cost(args, cost.size)
            sizes.append(cost.size)
        if self.is_detector:
            c4, _ = find_endpoints(self._fixed.stem_stride, arch.blocks)
            cost = cost + ssdlite_cost(self._head(arch), sizes[c4.block], cost.size)
        else:
            cost = cost + self._suffix_cost(arch.fixed, arch.blocks[-1].out_ch, cost.size)
        return {"params": cost.params, "madds": cost.madds}

    def _net(self, arch: LayerwiseArch) -> nn.Module:
        from ._layerwise import LayerwiseNet

        if not self.is_detector:
            return LayerwiseNet(arch, self._parts())
        from ._detector_nets import SSDLiteDetector

        c4, c5 = find_endpoints(self._fixed.stem_stride, arch.blocks)
        return SSDLiteDetector(LayerwiseNet(arch, self._parts(), tail=False), self._head(arch), (c4.block, c5.block))

    def _supernet(self, **options: str) -> nn.Module:
        from ._layerwise import LayerwiseSupernet

        if not self.is_detector:
            return LayerwiseSupernet(self._fixed, self._table, self._parts(), options=options)
        from ._detector_nets import SSDLiteDetectorSupernet

        backbone = LayerwiseSupernet(self._fixed, self._table, self._parts(), tail=False, options=options)
        return SSDLiteDetectorSupernet(backbone, self, self._head(self._decode(self.default_encoding())))

    def _head(self, arch: LayerwiseArch) -> SSDLiteArgs:
        c4, c5 = find_endpoints(self._fixed.stem_stride, arch.blocks)
        return SSDLiteArgs(c4.channels, c5.channels, tuple(self.setting("head_depths")), self.setting("num_classes"))

    def layer_parts(self) -> LayerParts | None:
        """The lookup-table parts of a classifier; a detector's head reads two maps, so it has none."""
        from ._layerwise import measure_parts

        return None if self.is_detector else measure_parts(self)

    def endpoints(self, encoding: Sequence[int]) -> tuple[Endpoint, ...]:
        """C4 and C5 (see :func:`~spaces.base.find_endpoints`); the first block keeps the stem's stride."""
        return find_endpoints(self._fixed.stem_stride, self.decode(encoding).blocks)
