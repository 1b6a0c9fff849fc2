"""The MobileNetEdgeTPUV2 search space (seed 004, "Searching for Efficient Neural Architectures for
On-Device ML on Edge TPUs").

A MobileNetEdgeTPUV2 skeleton (``reference/architectures.md``): stem, a fixed first block, 19 searched
layers in six block groups, top 1x1 conv, average pool and 1x1-conv logits. Each searched layer picks
one of four inverted-bottleneck (IBN) variants, an expansion (4, 8), a kernel (3, 5) and, for the two
grouped variants, a group size (``group_sizes``, each at least ``min_group_size``; 32, 64, 128 by
default). Out channels and strides are fixed per layer.

Block types (no SE, ReLU everywhere, linear 1x1 projection, residual iff stride 1 and in == out):

* ``ibn_dw``: 1x1 expand to ``in*e`` -> kxk depthwise -> 1x1 project.
* ``ibn_fused``: kxk full conv ``in -> in*e`` -> 1x1 project.
* ``ibn_grouped``: 1x1 expand -> kxk group conv ``in*e -> in*e`` -> 1x1 project (the seed's GC used
  "simply as a replacement of the depthwise convolution", section 4.2).
* ``ibn_fused_grouped``: kxk group conv ``in -> in*e`` -> 1x1 project (the seed's GC-IBN).

Group size is output filters per group: ``groups = (in*e) / group_size``.

**Group sizes that do not fit a layer.** Every layer offers the same choices (32 with the default
settings), so that any combination of choice indices is an architecture, as the searchers and the fair
supernet sampler assume. A group size fits a layer only if it divides the hidden width ``in*e`` and
the conv's input channels divide into the resulting groups (for ``ibn_fused_grouped``: ``e`` divides
the group size). A chosen size that does not fit is mapped (once, when the space is constructed) to
the largest fitting listed size below it, else the smallest fitting listed size above it, else the
smallest fitting size of at least ``min_group_size`` (at worst the whole hidden width: one group). The
block arguments keep both the chosen size (:attr:`IBNArgs.group_size`, the choice's label) and the
conv's groups as built (:attr:`IBNArgs.groups`), so decoding stays one-to-one; two choices of one
layer may build equal models. With the default sizes and channels that are multiples of 8, 32 always
fits.

Three layers, kept apart: an *encoding* (19 choice indices) -> :class:`EdgeTPUArchArgs` ->
:class:`EdgeTPUNet`. :class:`EdgeTPUSupernet` shares weights within each block type of a layer (see
:mod:`spaces._edgetpu_nets`).
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import TYPE_CHECKING, Any, Sequence

from . import register_space
from ._block_args import make_divisible
from .base import Dimension, Encoding, SearchSpace
from .counting import Cost, conv2d_cost
from ._settings import check_int, check_real
from core.errors import ConfigError, InvalidEncodingError

if TYPE_CHECKING:  # torch is imported only when a model is built
    import torch

    from ._edgetpu_nets import EdgeTPUNet, EdgeTPUSupernet

__all__ = [
    "BLOCK_TYPES",
    "EXPANSIONS",
    "EdgeTPUArchArgs",
    "EdgeTPUFixedArgs",
    "EdgeTPUNet",
    "EdgeTPUSpace",
    "EdgeTPUSupernet",
    "IBNArgs",
    "KERNELS",
    "VARIANTS",
    "Variant",
]

BLOCK_TYPES: tuple[str, ...] = ("ibn_dw", "ibn_fused", "ibn_grouped", "ibn_fused_grouped")
GROUPED_TYPES: frozenset[str] = frozenset({"ibn_grouped", "ibn_fused_grouped"})
#: Types whose kxk conv reads the block input directly (the 1x1 expansion is fused into it).
FUSED_TYPES: frozenset[str] = frozenset({"ibn_fused", "ibn_fused_grouped"})
EXPANSIONS: tuple[int, ...] = (4, 8)
KERNELS: tuple[int, ...] = (3, 5)


@dataclass(frozen=True)
class Variant:
    """One row of the MobileNetEdgeTPUV2 filter table.

    Attributes:
        filters: Output channels of block groups g0..g6 at width 1.0.
        stem_ch: Stem conv output channels.
        stem_kernel: Stem conv kernel (5; 7 for L).
        top_ch: Channels of the top 1x1 conv.
    """

    filters: tuple[int, ...]
    stem_ch: int
    stem_kernel: int
    top_ch: int


VARIANTS: dict[str, Variant] = {
    "tiny": Variant((16, 32, 48, 80, 112, 160, 192), stem_ch=32, stem_kernel=5, top_ch=1280),
    "xs": Variant((16, 32, 48, 96, 144, 160, 192), stem_ch=32, stem_kernel=5, top_ch=1280),
    "s": Variant((24, 48, 64, 128, 160, 192, 256), stem_ch=64, stem_kernel=5, top_ch=1280),
    "m": Variant((32, 64, 80, 160, 192, 240, 320), stem_ch=64, stem_kernel=5, top_ch=1344),
    "l": Variant((32, 64, 96, 192, 240, 256, 384), stem_ch=64, stem_kernel=7, top_ch=1408),
}

# (blocks, stride of the first block) of the searched block groups g1..g6; g0 is the fixed first block.
_GROUPS: tuple[tuple[int, int], ...] = ((2, 2), (4, 2), (4, 2), (4, 1), (4, 2), (1, 1))


# ---------------------------------------------------------------------------------------- block args
@dataclass(frozen=True)
class IBNArgs:
    """Arguments of one EdgeTPU IBN block.

    Attributes:
        block_type: One of :data:`BLOCK_TYPES`.
        in_ch: Input channels.
        out_ch: Output channels.
        expansion: Expansion ratio ``e``; the hidden width is ``in_ch * expansion``. With ``e == 1`` a
            fused block is only its 1x1 projection (the fixed first block).
        kernel: Kernel of the kxk conv (odd).
        stride: Stride of the kxk conv.
        group_size: For grouped types the group size the encoding chose (its label), else ``None``.
        groups: Groups of the kxk conv as built: ``hidden`` for ``ibn_dw``, 1 for ``ibn_fused``,
            ``hidden // fitted group size`` for grouped types (see the module docstring).
    """

    block_type: str
    in_ch: int
    out_ch: int
    expansion: int
    kernel: int
    stride: int
    group_size: int | None
    groups: int

    @property
    def hidden(self) -> int:
        return self.in_ch * self.expansion

    @property
    def has_expand(self) -> bool:
        """Whether a 1x1 expansion precedes the kxk conv."""
        return self.block_type not in FUSED_TYPES and self.expansion != 1

    @property
    def has_conv(self) -> bool:
        """Whether the block has a kxk conv (a fused block with ``e == 1`` has none)."""
        return self.block_type not in FUSED_TYPES or self.expansion != 1

    @property
    def conv_in(self) -> int:
        """Input channels of the kxk conv."""
        return self.in_ch if self.block_type in FUSED_TYPES else self.hidden

    @property
    def conv_in_per_group(self) -> int:
        return self.conv_in // self.groups

    @property
    def effective_group_size(self) -> int:
        """Output filters per group of the kxk conv as built."""
        return self.hidden // self.groups

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_ch == self.out_ch


@dataclass(frozen=True)
class EdgeTPUFixedArgs:
    """The parts every candidate of one space shares.

    Attributes:
        stem_ch: Stem conv output channels.
        stem_kernel: Stem conv kernel.
        stem_stride: Stem conv stride (2 as published; 1 keeps 32x32 inputs at full resolution).
        first: The fixed first block (g0: ``ibn_fused`` k3 e1, i.e. a 1x1 projection + BN).
        top_ch: Channels of the top 1x1 conv.
        num_classes: Logits.
        dropout: Dropout probability before the logits conv.
    """

    stem_ch: int
    stem_kernel: int
    stem_stride: int
    first: IBNArgs
    top_ch: int
    num_classes: int
    dropout: float


@dataclass(frozen=True)
class EdgeTPUArchArgs:
    """A decoded architecture: the shared fixed parts and the 19 searched blocks."""

    fixed: EdgeTPUFixedArgs
    blocks: tuple[IBNArgs, ...]


# --------------------------------------------------------------------------------------------- space
@register_space
class EdgeTPUSpace(SearchSpace):
    """MobileNetEdgeTPUV2's space: 19 layers, each an IBN type x expansion x kernel (x group size).

    Choices per layer, in index order: for each type of :data:`BLOCK_TYPES`, for each expansion of
    :data:`EXPANSIONS`, for each kernel of :data:`KERNELS`, (for grouped types) for each group size of
    ``group_sizes``; labels read e.g. ``ibn_dw_e4_k3`` or ``ibn_fused_grouped_e4_k3_g64``.

    Args:
        variant: Filter table row: ``tiny``, ``xs``, ``s``, ``m`` or ``l`` (channels, stem, top).
        width_mult: Channel multiplier (> 0) for every conv: ``make_divisible(c * width_mult, 8)``.
        input_size: Side of the square input images (>= 16).
        num_classes: Logits (>= 2); 1001 as published (ImageNet plus background).
        stem_stride: 2 as published; 1 keeps small (e.g. 32x32) inputs at full resolution.
        dropout: Dropout probability before the logits, in [0, 1).
        group_sizes: The searched group sizes (output filters per group), distinct, each
            ``>= min_group_size``.
        min_group_size: The smallest group size the space may build (the seed's 32).
    """

    name = "edgetpu"

    def __init__(
        self,
        *,
        variant: str = "s",
        width_mult: float = 1.0,
        input_size: int = 224,
        num_classes: int = 1001,
        stem_stride: int = 2,
        dropout: float = 0.2,
        group_sizes: Sequence[int] = (32, 64, 128),
        min_group_size: int = 32,
    ) -> None:
        if not (isinstance(variant, str) and variant in VARIANTS):
            raise ConfigError(
                f"edgetpu: setting variant must be one of {', '.join(VARIANTS)}, got {variant!r}. "
                "HINT: e.g. variant='s'."
            )
        self._variant = variant
        self._width_mult = check_real("edgetpu", "width_mult", width_mult, lambda v: v > 0, "> 0", "width_mult=1.0")
        self._input_size = check_int("edgetpu", "input_size", input_size, lambda v: v >= 16, ">= 16", "input_size=224")
        self._num_classes = check_int("edgetpu", "num_classes", num_classes, lambda v: v >= 2, ">= 2", "num_classes=1001")
        self._stem_stride = check_int("edgetpu", "stem_stride", stem_stride, lambda v: v in (1, 2), "1 or 2", "stem_stride=2")
        self._dropout = check_real("edgetpu", "dropout", dropout, lambda v: 0 <= v < 1, "in [0, 1)", "dropout=0.2")
        self._min_group_size = check_int("edgetpu", 
            "min_group_size", min_group_size, lambda v: v >= 1, ">= 1", "min_group_size=32"
        )
        self._group_sizes = _check_group_sizes(group_sizes, self._min_group_size)
        self._choice_params = tuple(
            (t, e, k, g)
            for t in BLOCK_TYPES
            for e in EXPANSIONS
            for k in KERNELS
            for g in (self._group_sizes if t in GROUPED_TYPES else (None,))
        )
        labels = tuple(_label(*params) for params in self._choice_params)
        self._fixed = self._make_fixed()
        self._layers = self._make_layers()
        self._dims = tuple(Dimension(f"layer_{i:02d}", labels) for i in range(len(self._layers)))
        self._table = tuple(
            tuple(self._make_block(i, *params) for params in self._choice_params) for i in range(len(self._layers))
        )
        self._index = tuple({args: c for c, args in enumerate(layer)} for layer in self._table)

    @classmethod
    def small_settings(cls) -> dict[str, Any]:
        """Settings for CPU-sized tests: a narrow Tiny on 32x32 inputs, 10 classes, group sizes 8-32."""
        return {
            "variant": "tiny", "width_mult": 0.35, "input_size": 32, "num_classes": 10, "stem_stride": 1,
            "dropout": 0.2, "group_sizes": [8, 16, 32], "min_group_size": 8,
        }  # fmt: skip

    # ------------------------------------------------------------------------------ SearchSpace API
    @property
    def settings(self) -> dict[str, Any]:
        return {
            "variant": self._variant,
            "width_mult": self._width_mult,
            "input_size": self._input_size,
            "num_classes": self._num_classes,
            "stem_stride": self._stem_stride,
            "dropout": self._dropout,
            "group_sizes": list(self._group_sizes),
            "min_group_size": self._min_group_size,
        }

    @property
    def dims(self) -> tuple[Dimension, ...]:
        return self._dims

    @property
    def fixed(self) -> EdgeTPUFixedArgs:
        """The fixed parts shared by all candidates of this space."""
        return self._fixed


    def choice_index(self, block_type: str, expansion: int, kernel: int, group_size: int | None = None) -> int:
        """The per-layer choice index of a (type, expansion, kernel, group size); ``ValueError`` if none."""
        key = (block_type, int(expansion), int(kernel), None if group_size is None else int(group_size))
        try:
            return self._choice_params.index(key)
        except ValueError:
            raise ValueError(
                f"{key} is not an edgetpu choice; types {BLOCK_TYPES}, e in {EXPANSIONS}, k in {KERNELS}, "
                f"group sizes {self._group_sizes} for grouped types only"
            ) from None

    def decode(self, encoding: Sequence[int]) -> EdgeTPUArchArgs:
        """Validate ``encoding`` and return its typed block arguments."""
        values = self.validate(encoding)
        return EdgeTPUArchArgs(fixed=self._fixed, blocks=tuple(self._table[i][c] for i, c in enumerate(values)))

    def encode(self, block_args: EdgeTPUArchArgs) -> Encoding:
        """Return the encoding of ``block_args``; raise if they are not an architecture of this space."""
        if not isinstance(block_args, EdgeTPUArchArgs):
            raise InvalidEncodingError(f"edgetpu: encode() takes EdgeTPUArchArgs, got {type(block_args).__name__}")
        if block_args.fixed != self._fixed or len(block_args.blocks) != len(self._layers):
            raise InvalidEncodingError(
                f"edgetpu: these block arguments were decoded by a space with other settings "
                f"({block_args.fixed} vs {self._fixed}). HINT: encode with the space that decoded them."
            )
        encoding = []
        for i, args in enumerate(block_args.blocks):
            if args not in self._index[i]:
                raise InvalidEncodingError(
                    f"edgetpu: {self._dims[i].name} block {args} is not a choice of this space "
                    f"(fixed in/out/stride {self._layers[i]}). "
                    f"HINT: allowed choices: {', '.join(self._dims[i].choices)}."
                )
            encoding.append(self._index[i][args])
        return tuple(encoding)

    def build(self, encoding: Sequence[int], *, generator: torch.Generator | None = None) -> EdgeTPUNet:
        """A freshly initialised stand-alone :class:`EdgeTPUNet` (weights drawn from ``generator`` only)."""
        from ._blocks import materialize
        from ._edgetpu_nets import EdgeTPUNet

        arch = self.decode(encoding)
        return materialize(lambda: EdgeTPUNet(arch), generator=generator)

    # ------------------------------------------------------------------------------------ supernet
    def build_supernet(self, *, generator: torch.Generator | None = None) -> EdgeTPUSupernet:
        """A freshly initialised supernet: per searched layer one weight-shared block per IBN type."""
        from ._blocks import materialize
        from ._edgetpu_nets import EdgeTPUSupernet

        return materialize(lambda: EdgeTPUSupernet(self._fixed, self._table), generator=generator)

    def extract(self, supernet: EdgeTPUSupernet, encoding: Sequence[int]) -> EdgeTPUNet:
        """A stand-alone :class:`EdgeTPUNet` carrying ``supernet``'s weights and BN buffers for one path.

        The copy shares no storage with the supernet, lives on its device and in its train/eval mode;
        in eval mode ``extract(sn, e)(x)`` equals ``sn(x, e)``.
        """
        from ._blocks import extract_path
        from ._edgetpu_nets import EdgeTPUNet, EdgeTPUSupernet

        arch = self.decode(encoding)
        ours = isinstance(supernet, EdgeTPUSupernet) and (supernet.fixed, supernet.choices) == (self._fixed, self._table)
        return extract_path(self.name, supernet, ours, lambda: EdgeTPUNet(arch), self.validate(encoding))

    # ------------------------------------------------------------------------------------ counting
    def count(self, encoding: Sequence[int]) -> dict[str, int]:
        """Params and MAdds (per image) of the architecture, computed analytically (no model is built).

        Follows the convention of :mod:`spaces.counting`, and is tested against its hook counter.
        """
        arch = self.decode(encoding)
        fixed = arch.fixed
        cost = conv2d_cost(
            3, fixed.stem_ch, kernel=fixed.stem_kernel, stride=fixed.stem_stride, size=self._input_size, bn=True
        )
        for args in (fixed.first, *arch.blocks):
            cost = cost + _block_cost(args, cost.size)
        cost = cost + conv2d_cost(arch.blocks[-1].out_ch, fixed.top_ch, kernel=1, size=cost.size, bn=True)
        cost = cost + conv2d_cost(fixed.top_ch, fixed.num_classes, kernel=1, size=1, bias=True)
        return {"params": cost.params, "madds": cost.madds}

    # ------------------------------------------------------------------------------------- helpers
    def _ch(self, channels: int) -> int:
        return make_divisible(channels * self._width_mult, 8)

    def _make_fixed(self) -> EdgeTPUFixedArgs:
        row = VARIANTS[self._variant]
        stem, first_out = self._ch(row.stem_ch), self._ch(row.filters[0])
        first = IBNArgs("ibn_fused", stem, first_out, expansion=1, kernel=3, stride=1, group_size=None, groups=1)
        return EdgeTPUFixedArgs(
            stem_ch=stem, stem_kernel=row.stem_kernel, stem_stride=self._stem_stride, first=first,
            top_ch=self._ch(row.top_ch), num_classes=self._num_classes, dropout=self._dropout,
        )  # fmt: skip

    def _make_layers(self) -> tuple[tuple[int, int, int], ...]:
        """(in, out, stride) per searched layer, at this width; a group's first block carries its stride."""
        filters = VARIANTS[self._variant].filters
        layers, in_ch = [], self._fixed.first.out_ch
        for (blocks, stride), out in zip(_GROUPS, filters[1:]):
            for b in range(blocks):
                layers.append((in_ch, self._ch(out), stride if b == 0 else 1))
                in_ch = self._ch(out)
        return tuple(layers)

    def _make_block(self, layer: int, block_type: str, e: int, k: int, g: int | None) -> IBNArgs:
        in_ch, out_ch, stride = self._layers[layer]
        hidden = in_ch * e
        if block_type == "ibn_dw":
            groups = hidden
        elif block_type == "ibn_fused":
            groups = 1
        else:
            conv_in = in_ch if block_type in FUSED_TYPES else hidden
            groups = hidden // _fit_group_size(g, hidden, conv_in, self._group_sizes, self._min_group_size)
        return IBNArgs(block_type, in_ch, out_ch, e, k, stride, group_size=g, groups=groups)


# ----------------------------------------------------------------------------------- module helpers
def __getattr__(name: str) -> Any:
    # PEP 562: ``spaces.edgetpu.EdgeTPUNet`` works, but torch is imported only when a model class is asked for.
    if name in ("EdgeTPUNet", "EdgeTPUSupernet"):
        from . import _edgetpu_nets

        return getattr(_edgetpu_nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _label(block_type: str, e: int, k: int, g: int | None) -> str:
    return f"{block_type}_e{e}_k{k}" + ("" if g is None else f"_g{g}")


def _fit_group_size(requested: int | None, hidden: int, conv_in: int, listed: Sequence[int], floor: int) -> int:
    """The group size a grouped conv ``conv_in -> hidden`` is built with (see the module docstring)."""

    def fits(g: int) -> bool:
        return hidden % g == 0 and conv_in % (hidden // g) == 0

    fitting = [g for g in listed if fits(g)]
    below = [g for g in fitting if requested is not None and g <= requested]
    if below:
        return max(below)
    if fitting:
        return min(fitting)
    return next((g for g in range(floor, hidden + 1) if fits(g)), hidden)


def _check_group_sizes(value: Any, floor: int) -> tuple[int, ...]:
    hint = f"HINT: e.g. group_sizes=[32, 64, 128], each >= min_group_size ({floor})."
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
        raise ConfigError(f"edgetpu: setting group_sizes must be a non-empty list of integers, got {value!r}. {hint}")
    for g in value:
        if not (isinstance(g, Integral) and not isinstance(g, bool) and g >= floor):
            raise ConfigError(
                f"edgetpu: setting group_sizes must hold integers >= min_group_size ({floor}), got {g!r} "
                f"in {list(value)!r}. {hint}"
            )
    if len(set(value)) != len(value):
        raise ConfigError(f"edgetpu: setting group_sizes must not repeat a size, got {list(value)!r}. {hint}")
    return tuple(sorted(int(g) for g in value))


# ----------------------------------------------------------------------------------- analytic costs
def _block_cost(args: IBNArgs, size: int) -> Cost:
    cost = Cost(size=size)
    if args.has_expand:
        cost = cost + conv2d_cost(args.in_ch, args.hidden, kernel=1, size=size, bn=True)
    if args.has_conv:
        cost = cost + conv2d_cost(
            args.conv_in, args.hidden, kernel=args.kernel, stride=args.stride, groups=args.groups, size=cost.size,
            bn=True,
        )  # fmt: skip
    return cost + conv2d_cost(args.hidden, args.out_ch, kernel=1, size=cost.size, bn=True)
