"""The MobileDet search space family (seed 000, "MobileDets: Searching for Object Detection
Architectures for Mobile Accelerators", sections 3 and 5.3).

Layout (TuNAS / ProxylessNAS-like, the authors' released MobileDets follow it): a 3x3 stem, then seven
blocks of 1, 4, 4, 4, 4, 4, 1 layers whose first layer has stride 1, 2, 2, 2, 1, 2, 1. The first layer of
a block changes the channels and never has a residual; the other layers keep them and always have one.
C4 is the output of block 5 (stride 16), C5 of block 7 (stride 32); they feed an SSDLite head
(:mod:`spaces.ssdlite`, ``task="detection"``) or a pooled linear classifier (``task="classification"``).

Searched decisions, in encoding order:

* ``width_stem``, ``width_1`` .. ``width_7``: per block an output-channel multiplier from
  :data:`MULTIPLIERS` of the base channels 32-16-32-48-96-96-160-192, rounded with
  :func:`~spaces._block_args.make_divisible` to multiples of 8 (16 for the GPU target), shared by the
  layers of the block. (Seed 000 lists a ninth base, 192, for a layer the released detectors do not
  have: their backbones end at C5, and so does this space.)
* ``layer_B_L`` (block B, layer L): the layer type and its knobs. Per variant:
  ``ibn`` offers IBNs (kernel 3/5 x expansion 4/8); ``ibn+fused`` adds fused IBNs (kernel x expansion);
  ``ibn+fused+tucker`` adds Tucker layers (kernel x input compression 0.25/0.75 x output compression
  0.25/0.75). Layers 2-4 of the four-layer blocks may also be ``skip`` (TuNAS's zero op: the released
  CPU model has a one-layer block 2), and the first block's single layer may also be an IBN without
  expansion (``noexp``, as in MobileNetV2 and the CPU and DSP MobileDets).

Hardware adaptations (``target``): ``cpu`` puts squeeze-excite on every IBN, IBN-noexp and fused layer
and uses h-swish everywhere; ``edgetpu``, ``dsp`` and ``gpu`` use ReLU6 and no SE; ``dsp`` drops 5x5
kernels from the space; ``gpu`` rounds channels to multiples of 16.

Blocks (all convs without bias, BN after each conv, padding ``k // 2``):

* ``ibn``: 1x1 expand to ``in*e``, act -> depthwise kxk stride s, act -> [SE] -> 1x1 project (linear).
* ``noexp``: depthwise kxk, act -> [SE] -> 1x1 project (linear).
* ``fused``: full kxk stride s ``in -> in*e``, act -> [SE] -> 1x1 project (linear).
* ``tucker``: 1x1 ``in -> scale(in, r_in)``, act -> full kxk stride s -> ``scale(out, r_out)``, act ->
  1x1 -> out (linear), with ``scale(f, m) = max(int(f*m/8 + 0.5)*8, 8)``.
* SE: mean -> 1x1 conv with bias -> act -> 1x1 conv with bias -> sigmoid -> scale; squeeze
  ``scale(expanded, 0.25)``.

Three layers, kept apart: an *encoding* -> :class:`MobileDetArchArgs` -> :class:`MobileDetNet`
(:mod:`spaces._mobiledet_nets`, which also holds the weight-sharing :class:`MobileDetSupernet`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from core.errors import InvalidEncodingError
from core.settings import Setting, choice

from . import _settings as common
from ._block_args import make_divisible
from .base import Dimension, Encoding, Endpoint, SearchSpace, find_endpoints, register_space
from .counting import Cost, conv2d_cost, linear_cost
from .ssdlite import SSDLiteArgs, ssdlite_cost

if TYPE_CHECKING:  # torch is imported only when a model is built
    import torch

    from ._mobiledet_nets import MobileDetNet, MobileDetSupernet

__all__ = [
    "BASE_CHANNELS",
    "MULTIPLIERS",
    "MobileDetArchArgs",
    "MobileDetFixedArgs",
    "MobileDetLayerArgs",
    "MobileDetSpace",
    "TARGETS",
    "VARIANTS",
    "tucker_scale",
]

VARIANTS: tuple[str, ...] = ("ibn", "ibn+fused", "ibn+fused+tucker")
TARGETS: tuple[str, ...] = ("cpu", "edgetpu", "dsp", "gpu")
TASKS = common.TASKS
MULTIPLIERS: tuple[float, ...] = (0.5, 0.625, 0.75, 1.0, 1.25, 1.5, 2.0)
#: Base channels of the stem and blocks 1..7.
BASE_CHANNELS: tuple[int, ...] = (32, 16, 32, 48, 96, 96, 160, 192)
#: (layers, stride of the first layer) of blocks 1..7.
BLOCKS: tuple[tuple[int, int], ...] = ((1, 1), (4, 2), (4, 2), (4, 2), (4, 1), (4, 2), (1, 1))
#: The block whose output is C4 (1-based).
C4_BLOCK = 5
EXPANSIONS: tuple[int, ...] = (4, 8)
KERNELS: tuple[int, ...] = (3, 5)
RATIOS: tuple[float, ...] = (0.25, 0.75)
LAYER_TYPES: tuple[str, ...] = ("ibn", "noexp", "fused", "tucker", "skip")


def tucker_scale(filters: int, ratio: float) -> int:
    """Seed 000's channel scaling for Tucker ranks and SE widths: nearest multiple of 8, at least 8."""
    return max(int(int(filters * ratio / 8 + 0.5) * 8), 8)


# ---------------------------------------------------------------------------------------- block args
@dataclass(frozen=True)
class MobileDetLayerArgs:
    """Arguments of one MobileDet layer.

    Attributes:
        layer_type: One of ``ibn``, ``noexp``, ``fused``, ``tucker``, ``skip``.
        in_ch: Input channels.
        out_ch: Output channels (``in_ch`` for ``skip``).
        kernel: Kernel of the kxk conv (0 for ``skip``).
        stride: Stride of the kxk conv.
        expansion: ``e`` for ``ibn`` / ``fused`` (1 for ``noexp``, 0 for ``tucker`` and ``skip``).
        in_ratio: Tucker input compression ``r_in`` (``None`` for other types).
        out_ratio: Tucker output compression ``r_out`` (``None`` for other types).
        se: Whether a squeeze-excite follows the kxk conv.
        act: Activation name (``hswish`` or ``relu6``).
        residual: Whether the input is added to the output (never on a block's first layer).
    """

    layer_type: str
    in_ch: int
    out_ch: int
    kernel: int
    stride: int
    expansion: int
    in_ratio: float | None
    out_ratio: float | None
    se: bool
    act: str
    residual: bool

    @property
    def hidden(self) -> int:
        """Channels after the kxk conv: ``in*e`` (IBN, fused), ``in`` (noexp), the output rank (Tucker)."""
        if self.layer_type == "tucker":
            return tucker_scale(self.out_ch, self.out_ratio)
        if self.layer_type == "skip":
            return self.in_ch
        return self.in_ch * self.expansion

    @property
    def rank_in(self) -> int:
        """Channels the Tucker 1x1 compresses the input to (Tucker only)."""
        return tucker_scale(self.in_ch, self.in_ratio)

    @property
    def squeeze(self) -> int:
        """The SE's squeeze width."""
        return tucker_scale(self.hidden, 0.25)

    @property
    def has_expand(self) -> bool:
        """Whether a 1x1 conv precedes the kxk conv (IBN expansion, Tucker input compression)."""
        return self.layer_type in ("ibn", "tucker")

    @property
    def expand_out(self) -> int:
        return self.rank_in if self.layer_type == "tucker" else self.hidden

    @property
    def depthwise(self) -> bool:
        return self.layer_type in ("ibn", "noexp")

    @property
    def conv_in(self) -> int:
        """Input channels of the kxk conv."""
        return self.expand_out if self.has_expand else self.in_ch

    @property
    def label(self) -> str:
        """The choice label of this layer in its dimension (e.g. ``ibn_e8_k3``)."""
        return _label(self.layer_type, self.expansion, self.kernel, self.in_ratio, self.out_ratio)


@dataclass(frozen=True)
class MobileDetFixedArgs:
    """The parts every candidate of one space shares.

    Attributes:
        task: ``detection`` (SSDLite head on C4 / C5) or ``classification`` (pooled linear on C5).
        num_classes: Class logits (per anchor for detection, background included).
        stem_stride: Stride of the 3x3 stem (2 as published).
        act: Activation of the backbone.
        dropout: Dropout before the classifier (classification only).
        head_depths: Depths of the SSDLite extra maps (detection only).
    """

    task: str
    num_classes: int
    stem_stride: int
    act: str
    dropout: float
    head_depths: tuple[int, ...]


@dataclass(frozen=True)
class MobileDetArchArgs:
    """A decoded architecture.

    Attributes:
        fixed: The shared fixed parts.
        multipliers: The chosen channel multiplier of the stem and of blocks 1..7 (the width labels).
        stem_ch: Stem output channels.
        blocks: The 22 layers (block 1, blocks 2-6 four each, block 7), ``skip`` layers included.
        c4_index: Index in ``blocks`` of the layer whose output is C4.
    """

    fixed: MobileDetFixedArgs
    multipliers: tuple[float, ...]
    stem_ch: int
    blocks: tuple[MobileDetLayerArgs, ...]
    c4_index: int

    @property
    def c4_ch(self) -> int:
        return self.blocks[self.c4_index].out_ch

    @property
    def c5_ch(self) -> int:
        return self.blocks[-1].out_ch

    @property
    def head(self) -> SSDLiteArgs:
        """The SSDLite head's arguments (meaningful for ``task == "detection"``)."""
        return SSDLiteArgs(self.c4_ch, self.c5_ch, self.fixed.head_depths, self.fixed.num_classes)


# A layer choice without channels: (type, expansion, kernel, r_in, r_out).
_Spec = tuple[str, int, int, "float | None", "float | None"]


# --------------------------------------------------------------------------------------------- space
@register_space
class MobileDetSpace(SearchSpace):
    """MobileDet's IBN / Fused / Tucker space with per-block channel multipliers (see the module docstring).

    Settings:
        variant: ``ibn``, ``ibn+fused`` or ``ibn+fused+tucker``.
        target: ``cpu``, ``edgetpu``, ``dsp`` or ``gpu``: the hardware adaptations.
        task: ``detection`` (SSDLite) or ``classification``.
        input_size: Side of the square input images (>= 32).
        num_classes: Class logits (>= 2); 91 for COCO detection (background included).
        width_mult: Extra multiplier (> 0) on every base channel count (1.0 as published).
        stem_stride: 2 as published; 1 keeps small inputs at higher resolution.
        dropout: Dropout before the classifier, in [0, 1).
        head_depths: Depths of the SSDLite extra maps (512, 256, 256, 128 as published).
    """

    name = "mobiledet"
    SETTINGS = (
        Setting("variant", "ibn+fused+tucker", choice(*VARIANTS)),
        Setting("target", "edgetpu", choice(*TARGETS)),
        common.task("detection"),
        common.input_size(320, minimum=32), common.num_classes(91), common.width_mult(), common.stem_stride(),
        common.dropout(),
        common.head_depths(),
    )  # fmt: skip
    # The full CPU variant (SE, h-swish), narrow, 32x32 classification.
    SMALL_SETTINGS = {
        "variant": "ibn+fused+tucker", "target": "cpu", "task": "classification", "input_size": 32,
        "num_classes": 10, "width_mult": 0.25, "stem_stride": 1, "dropout": 0.2, "head_depths": [64, 32, 32, 16],
    }  # fmt: skip

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        target = self.setting("target")
        act = "hswish" if target == "cpu" else "relu6"
        self._fixed = MobileDetFixedArgs(
            task=self.setting("task"), num_classes=self.setting("num_classes"), stem_stride=self.setting("stem_stride"),
            act=act, dropout=self.setting("dropout"), head_depths=self.setting("head_depths"),
        )  # fmt: skip
        divisor = 16 if target == "gpu" else 8
        # channels[g][m]: channels of group g (0 = stem) under multiplier index m.
        self._channels = tuple(
            tuple(make_divisible(base * m * self.setting("width_mult"), divisor) for m in MULTIPLIERS)
            for base in BASE_CHANNELS
        )
        self._layers = tuple(
            (block, layer, stride if layer == 0 else 1)
            for block, (count, stride) in enumerate(BLOCKS, start=1)
            for layer in range(count)
        )
        self._specs = tuple(self._layer_specs(block, layer) for block, layer, _ in self._layers)
        width_dims = [Dimension("width_stem", _WIDTH_LABELS)] + [
            Dimension(f"width_{b}", _WIDTH_LABELS) for b in range(1, len(BLOCKS) + 1)
        ]
        layer_dims = [
            Dimension(f"layer_{block}_{layer}", tuple(_label(*spec) for spec in specs))
            for (block, layer, _), specs in zip(self._layers, self._specs)
        ]
        self._dims = tuple(width_dims + layer_dims)
        self._spec_index = tuple({spec: c for c, spec in enumerate(specs)} for specs in self._specs)
        self._c4_index = max(i for i, (block, _, _) in enumerate(self._layers) if block == C4_BLOCK)

    @property
    def dims(self) -> tuple[Dimension, ...]:
        return self._dims

    @property
    def fixed(self) -> MobileDetFixedArgs:
        return self._fixed

    @property
    def num_width_dims(self) -> int:
        """How many leading dimensions are channel multipliers (the rest are layers)."""
        return len(BASE_CHANNELS)

    def choice_index(
        self, block: int, layer: int, layer_type: str, *, expansion: int = 0, kernel: int = 0,
        in_ratio: float | None = None, out_ratio: float | None = None,
    ) -> int:
        """The index of a layer choice in dimension ``layer_{block}_{layer}``; ``ValueError`` if none."""
        positions = [i for i, (b, l, _) in enumerate(self._layers) if (b, l) == (block, layer)]
        if not positions:
            raise InvalidEncodingError(f"there is no layer_{block}_{layer}. HINT: blocks 1..{len(BLOCKS)} have "
                                       f"{[n for n, _ in BLOCKS]} layers.")
        position = positions[0]
        spec = {"noexp": ("noexp", 1, int(kernel), None, None), "skip": ("skip", 0, 0, None, None)}.get(
            layer_type, (layer_type, int(expansion), int(kernel), in_ratio, out_ratio)
        )
        try:
            return self._spec_index[position][spec]
        except KeyError:
            raise InvalidEncodingError(
                f"{_label(*spec)} is not a choice of layer_{block}_{layer}. HINT: allowed: "
                f"{', '.join(self._dims[self.num_width_dims + position].choices)}"
            ) from None

    def _decode(self, values: Encoding) -> MobileDetArchArgs:
        widths, layers = values[: self.num_width_dims], values[self.num_width_dims :]
        channels = [self._channels[g][m] for g, m in enumerate(widths)]
        blocks = []
        for (block, layer, stride), specs, choice in zip(self._layers, self._specs, layers):
            out_ch = channels[block]
            in_ch = channels[block - 1] if layer == 0 else out_ch
            blocks.append(self._make_layer(specs[choice], in_ch, out_ch, stride, residual=layer > 0))
        return MobileDetArchArgs(
            fixed=self._fixed, multipliers=tuple(MULTIPLIERS[m] for m in widths), stem_ch=channels[0],
            blocks=tuple(blocks), c4_index=self._c4_index,
        )  # fmt: skip

    def encode(self, block_args: MobileDetArchArgs) -> Encoding:
        """Return the encoding of ``block_args``; raise if they are not an architecture of this space."""
        if not isinstance(block_args, MobileDetArchArgs):
            raise InvalidEncodingError(f"mobiledet: encode() takes MobileDetArchArgs, got {type(block_args).__name__}")
        if block_args.fixed != self._fixed or len(block_args.blocks) != len(self._layers):
            raise InvalidEncodingError(
                "mobiledet: these block arguments were decoded by a space with other settings. "
                "HINT: encode with the space that decoded them."
            )
        if len(block_args.multipliers) != self.num_width_dims or any(m not in MULTIPLIERS for m in block_args.multipliers):
            raise InvalidEncodingError(
                f"mobiledet: multipliers {block_args.multipliers} are not {self.num_width_dims} values of {MULTIPLIERS}"
            )
        encoding = [MULTIPLIERS.index(m) for m in block_args.multipliers]
        for i, args in enumerate(block_args.blocks):
            spec = (args.layer_type, args.expansion, args.kernel, args.in_ratio, args.out_ratio)
            if spec not in self._spec_index[i]:
                dim = self._dims[self.num_width_dims + i]
                raise InvalidEncodingError(
                    f"mobiledet: {dim.name} layer {args.label} is not a choice of this space. "
                    f"HINT: allowed choices: {', '.join(dim.choices)}."
                )
            encoding.append(self._spec_index[i][spec])
        if self.decode(encoding) != block_args:
            raise InvalidEncodingError(
                "mobiledet: these block arguments' channels or strides do not follow from their multipliers. "
                "HINT: build block arguments with decode()."
            )
        return tuple(encoding)

    def _net(self, arch: MobileDetArchArgs) -> MobileDetNet:
        from ._mobiledet_nets import MobileDetNet

        return MobileDetNet(arch)

    # ------------------------------------------------------------------------------------ supernet
    def max_arch(self) -> MobileDetArchArgs:
        """The widest architecture's channels, for sizing the supernet's shared weights."""
        return self.decode([len(MULTIPLIERS) - 1] * self.num_width_dims + [0] * len(self._layers))

    def supernet_choices(self) -> tuple[dict[str, MobileDetLayerArgs], ...]:
        """Per layer, the largest arguments of each layer type offered there (the shared weights' shape).

        Every choice of a type, at any multiplier, is a slice of these: channels, expansion, kernel and
        Tucker ranks only grow with the multiplier and the knob.
        """
        widest = self.max_arch()
        result = []
        for i, ((_, layer, stride), specs) in enumerate(zip(self._layers, self._specs)):
            largest: dict[str, MobileDetLayerArgs] = {}
            for t in LAYER_TYPES:
                of_type = [s for s in specs if s[0] == t]
                if not of_type or t == "skip":
                    continue
                spec = (t, max(s[1] for s in of_type), max(s[2] for s in of_type),
                        None if t != "tucker" else max(RATIOS), None if t != "tucker" else max(RATIOS))  # fmt: skip
                wide = widest.blocks[i]
                largest[t] = self._make_layer(spec, wide.in_ch, wide.out_ch, stride, residual=layer > 0)
            result.append(largest)
        return tuple(result)

    def _supernet(self) -> MobileDetSupernet:
        from ._mobiledet_nets import MobileDetSupernet

        return MobileDetSupernet(self)

    # ------------------------------------------------------------------------------------ counting
    def count(self, encoding: Sequence[int]) -> dict[str, int]:
        """Params and MAdds (per image) of the architecture, computed analytically (no model is built)."""
        arch = self.decode(encoding)
        cost = conv2d_cost(3, arch.stem_ch, kernel=3, stride=self._fixed.stem_stride, size=self.input_shape[-1], bn=True)
        c4_size = 0
        for i, args in enumerate(arch.blocks):
            cost = cost + layer_cost(args, cost.size)
            if i == arch.c4_index:
                c4_size = cost.size
        if self._fixed.task == "detection":
            cost = cost + ssdlite_cost(arch.head, c4_size, cost.size)
        else:
            cost = cost + linear_cost(arch.c5_ch, self._fixed.num_classes)
        return {"params": cost.params, "madds": cost.madds}

    def op_features(self, encoding: Sequence[int]) -> dict[str, float]:
        """Per conv kind of the backbone (``pw``, ``dw3``, ``conv5``, ``se``, ...): MAdds, tensor traffic
        (input + output elements) and count, summed over the layers, for latency cost models.

        A CPU's latency is close to linear in these (compute-bound and memory-bound parts per op kind),
        so :class:`~cluster.costmodels.LinearCostModel` uses them next to its per-layer indicators.
        The stem and the head are the same kind of op for every candidate and are left to the intercept
        and the width indicators.
        """
        arch = self.decode(encoding)
        size = conv2d_cost(3, arch.stem_ch, kernel=3, stride=self._fixed.stem_stride, size=self.input_shape[-1]).size
        features: dict[str, float] = {}
        for args in arch.blocks:
            ops = layer_ops(args, size)
            for op in ops:
                features[f"{op.kind}_madds"] = features.get(f"{op.kind}_madds", 0.0) + op.cost.madds
                features[f"{op.kind}_traffic"] = features.get(f"{op.kind}_traffic", 0.0) + op.in_elems + op.out_elems
                features[f"{op.kind}_count"] = features.get(f"{op.kind}_count", 0.0) + 1
            if ops:
                size = ops[-1].cost.size
        return features

    def endpoints(self, encoding: Sequence[int]) -> tuple[Endpoint, ...]:
        """C4 (the output of block 5, stride 16 as published) and C5 (block 7, stride 32): what the
        SSDLite head reads."""
        return find_endpoints(self._fixed.stem_stride, self.decode(encoding).blocks)

    # ------------------------------------------------------------------------------------- helpers
    def _layer_specs(self, block: int, layer: int) -> tuple[_Spec, ...]:
        kernels = (3,) if self.setting("target") == "dsp" else KERNELS
        specs: list[_Spec] = [("ibn", e, k, None, None) for e in EXPANSIONS for k in kernels]
        if "fused" in self.setting("variant"):
            specs += [("fused", e, k, None, None) for e in EXPANSIONS for k in kernels]
        if "tucker" in self.setting("variant"):
            specs += [("tucker", 0, k, ri, ro) for k in kernels for ri in RATIOS for ro in RATIOS]
        if block == 1:
            specs += [("noexp", 1, k, None, None) for k in kernels]
        if layer > 0:
            specs.append(("skip", 0, 0, None, None))
        return tuple(specs)

    def _make_layer(self, spec: _Spec, in_ch: int, out_ch: int, stride: int, *, residual: bool) -> MobileDetLayerArgs:
        layer_type, e, k, ri, ro = spec
        if layer_type == "skip":
            return MobileDetLayerArgs("skip", in_ch, in_ch, 0, 1, 0, None, None, False, self._fixed.act, False)
        se = self.setting("target") == "cpu" and layer_type != "tucker"
        return MobileDetLayerArgs(layer_type, in_ch, out_ch, k, stride, e, ri, ro, se, self._fixed.act, residual)


# ----------------------------------------------------------------------------------- module helpers
_WIDTH_LABELS: tuple[str, ...] = tuple(f"x{m:g}" for m in MULTIPLIERS)


def _label(layer_type: str, e: int, k: int, ri: float | None, ro: float | None) -> str:
    if layer_type == "skip":
        return "skip"
    if layer_type == "noexp":
        return f"noexp_k{k}"
    if layer_type == "tucker":
        return f"tucker_k{k}_r{ri:g}_{ro:g}"
    return f"{layer_type}_e{e}_k{k}"


# ----------------------------------------------------------------------------------- analytic costs
@dataclass(frozen=True)
class ConvOp:
    """One conv of a layer, for counting and for cost-model features.

    Attributes:
        kind: ``pw`` (1x1), ``dwK`` (depthwise KxK), ``convK`` (full KxK), ``se`` (the SE's 1x1s).
        cost: Its params, MAdds and output side.
        in_elems: Elements of its input tensor (one image).
        out_elems: Elements of its output tensor.
    """

    kind: str
    cost: Cost
    in_elems: int
    out_elems: int


def _op(in_ch: int, out_ch: int, *, kernel: int, size: int, stride: int = 1, groups: int = 1,
        se: bool = False) -> ConvOp:
    cost = conv2d_cost(in_ch, out_ch, kernel=kernel, stride=stride, groups=groups, size=size, bn=not se, bias=se)
    kind = "se" if se else "pw" if kernel == 1 else f"dw{kernel}" if groups == in_ch and groups > 1 else f"conv{kernel}"
    return ConvOp(kind, cost, in_ch * size * size, out_ch * cost.size * cost.size)


def layer_ops(args: MobileDetLayerArgs, size: int) -> list[ConvOp]:
    """The convs of one layer on a ``size x size`` input, in order (none for ``skip``)."""
    if args.layer_type == "skip":
        return []
    ops = []
    if args.has_expand:
        ops.append(_op(args.in_ch, args.expand_out, kernel=1, size=size))
    groups = args.conv_in if args.depthwise else 1
    ops.append(_op(args.conv_in, args.hidden, kernel=args.kernel, stride=args.stride, groups=groups, size=size))
    inner = ops[-1].cost.size
    if args.se:  # on the pooled 1x1 map: a side branch that leaves the spatial size alone
        ops.append(_op(args.hidden, args.squeeze, kernel=1, size=1, se=True))
        ops.append(_op(args.squeeze, args.hidden, kernel=1, size=1, se=True))
    ops.append(_op(args.hidden, args.out_ch, kernel=1, size=inner))
    return ops


def layer_cost(args: MobileDetLayerArgs, size: int) -> Cost:
    """Params and MAdds of one layer on a ``size x size`` input (the counting convention)."""
    cost = Cost(size=size)
    for op in layer_ops(args, size):
        cost = cost.with_branch(op.cost) if op.kind == "se" else cost + op.cost
    return cost
