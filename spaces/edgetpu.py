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

Three layers, kept apart: an *encoding* (19 choice indices) -> a :class:`~spaces._table.LayerwiseArch`
of :class:`IBNArgs` -> the module (built from :mod:`spaces._edgetpu_nets`'s parts). The supernet shares
weights within each block type of a layer (see :mod:`spaces._edgetpu_nets`).
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import TYPE_CHECKING, Any, Sequence

from core.errors import InvalidEncodingError
from core.settings import Setting, choice, integer
from core.validation import invalid

from . import _settings as common
from ._block_args import make_divisible
from ._table import LayerTableSpace
from .base import register_space
from .counting import Cost, conv2d_cost

if TYPE_CHECKING:
    from ._layerwise import LayerwiseParts

__all__ = [
    "BLOCK_TYPES",
    "EXPANSIONS",
    "EdgeTPUFixedArgs",
    "EdgeTPUSpace",
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


# --------------------------------------------------------------------------------------------- space
@register_space
class EdgeTPUSpace(LayerTableSpace):
    """MobileNetEdgeTPUV2's space: 19 layers, each an IBN type x expansion x kernel (x group size).

    Choices per layer, in index order: for each type of :data:`BLOCK_TYPES`, for each expansion of
    :data:`EXPANSIONS`, for each kernel of :data:`KERNELS`, (for grouped types) for each group size of
    ``group_sizes``; labels read e.g. ``ibn_dw_e4_k3`` or ``ibn_fused_grouped_e4_k3_g64``.

    Settings: ``variant`` (filter table row ``tiny``, ``xs``, ``s``, ``m`` or ``l``: channels, stem,
    top), ``width_mult`` (> 0, on every conv: ``make_divisible(c * width_mult, 8)``), ``input_size``
    (>= 16), ``num_classes`` (>= 2; 1001 as published, ImageNet plus background), ``stem_stride``,
    ``dropout``, ``group_sizes`` (the searched group sizes, output filters per group: distinct, each
    ``>= min_group_size``) and ``min_group_size`` (the smallest group size the space may build; the
    seed's 32).
    """

    name = "edgetpu"
    SETTINGS = (
        Setting("variant", "s", choice(*VARIANTS)), common.width_mult(), common.input_size(224, minimum=16),
        common.num_classes(1001), common.stem_stride(), common.dropout(),
        Setting("group_sizes", (32, 64, 128), lambda where, value, hint: _check_group_sizes(where, value, hint),
                hint="e.g. group_sizes=[32, 64, 128], each >= min_group_size"),
        Setting("min_group_size", 32, integer(minimum=1, maximum=4096)),
        common.task("classification"), common.head_depths(),
    )  # fmt: skip
    SMALL_SETTINGS = {
        "variant": "tiny", "width_mult": 0.35, "input_size": 32, "num_classes": 10, "stem_stride": 1,
        "dropout": 0.2, "group_sizes": [8, 16, 32], "min_group_size": 8,
    }  # fmt: skip

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        floor = self.setting("min_group_size")
        if min(self.setting("group_sizes")) < floor:
            raise invalid("space edgetpu setting 'group_sizes'", f"must hold integers >= min_group_size ({floor})",
                          list(self.setting("group_sizes")), f"raise the sizes or lower min_group_size below {floor}")
        self._choice_params = tuple(
            (t, e, k, g)
            for t in BLOCK_TYPES
            for e in EXPANSIONS
            for k in KERNELS
            for g in (self.setting("group_sizes") if t in GROUPED_TYPES else (None,))
        )
        fixed = self._make_fixed()
        layers = self._make_layers(fixed)
        table = [tuple(self._make_block(layer, *params) for params in self._choice_params) for layer in layers]
        self._set_table(fixed, table, tuple(_label(*params) for params in self._choice_params))

    def choice_index(self, block_type: str, expansion: int, kernel: int, group_size: int | None = None) -> int:
        """The per-layer choice index of a (type, expansion, kernel, group size); :class:`InvalidEncodingError`
        if it is not one."""
        key = (block_type, int(expansion), int(kernel), None if group_size is None else int(group_size))
        try:
            return self._choice_params.index(key)
        except ValueError:
            raise InvalidEncodingError(
                f"{key} is not an edgetpu choice. HINT: types {BLOCK_TYPES}, e in {EXPANSIONS}, k in {KERNELS}, "
                f"group sizes {self.setting('group_sizes')} for grouped types only."
            ) from None

    # ------------------------------------------------------------------------------------- helpers
    def _ch(self, channels: int) -> int:
        return make_divisible(channels * self.setting("width_mult"), 8)

    def _make_fixed(self) -> EdgeTPUFixedArgs:
        row = VARIANTS[self.setting("variant")]
        stem, first_out = self._ch(row.stem_ch), self._ch(row.filters[0])
        first = IBNArgs("ibn_fused", stem, first_out, expansion=1, kernel=3, stride=1, group_size=None, groups=1)
        return EdgeTPUFixedArgs(
            stem_ch=stem, stem_kernel=row.stem_kernel, stem_stride=self.setting("stem_stride"), first=first,
            top_ch=self._ch(row.top_ch), num_classes=self.setting("num_classes"), dropout=self.setting("dropout"),
        )  # fmt: skip

    def _make_layers(self, fixed: EdgeTPUFixedArgs) -> list[tuple[int, int, int]]:
        """(in, out, stride) per searched layer, at this width; a group's first block carries its stride."""
        filters = VARIANTS[self.setting("variant")].filters
        layers, in_ch = [], fixed.first.out_ch
        for (blocks, stride), out in zip(_GROUPS, filters[1:]):
            for b in range(blocks):
                layers.append((in_ch, self._ch(out), stride if b == 0 else 1))
                in_ch = self._ch(out)
        return layers

    def _make_block(self, layer: tuple[int, int, int], block_type: str, e: int, k: int, g: int | None) -> IBNArgs:
        in_ch, out_ch, stride = layer
        hidden = in_ch * e
        if block_type == "ibn_dw":
            groups = hidden
        elif block_type == "ibn_fused":
            groups = 1
        else:
            conv_in = in_ch if block_type in FUSED_TYPES else hidden
            fitted = _fit_group_size(g, hidden, conv_in, self.setting("group_sizes"), self.setting("min_group_size"))
            groups = hidden // fitted
        return IBNArgs(block_type, in_ch, out_ch, e, k, stride, group_size=g, groups=groups)

    # ------------------------------------------------------------------------------- parts and costs
    def _parts(self) -> LayerwiseParts:
        from ._edgetpu_nets import EdgeTPUParts

        return EdgeTPUParts()

    def _prefix_cost(self, fixed: EdgeTPUFixedArgs) -> Cost:
        stem = conv2d_cost(3, fixed.stem_ch, kernel=fixed.stem_kernel, stride=fixed.stem_stride,
                           size=self.input_shape[-1], bn=True)
        return stem + self._block_cost(fixed.first, stem.size)

    def _block_cost(self, args: IBNArgs, size: int) -> Cost:
        cost = Cost(size=size)
        if args.has_expand:
            cost = cost + conv2d_cost(args.in_ch, args.hidden, kernel=1, size=size, bn=True)
        if args.has_conv:
            cost = cost + conv2d_cost(args.conv_in, args.hidden, kernel=args.kernel, stride=args.stride,
                                      groups=args.groups, size=cost.size, bn=True)
        return cost + conv2d_cost(args.hidden, args.out_ch, kernel=1, size=cost.size, bn=True)

    def _suffix_cost(self, fixed: EdgeTPUFixedArgs, in_ch: int, size: int) -> Cost:
        top = conv2d_cost(in_ch, fixed.top_ch, kernel=1, size=size, bn=True)
        return top + conv2d_cost(fixed.top_ch, fixed.num_classes, kernel=1, size=1, bias=True)


# ----------------------------------------------------------------------------------- module helpers
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


def _check_group_sizes(where: str, value: Any, hint: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
        raise invalid(where, "must be a non-empty list of integers", value, hint)
    for g in value:
        if not (isinstance(g, Integral) and not isinstance(g, bool) and g >= 1):
            raise invalid(where, f"must hold integers >= 1, not {g!r}", list(value), hint)
    if len(set(value)) != len(value):
        raise invalid(where, "must not repeat a size", list(value), hint)
    return tuple(sorted(int(g) for g in value))
