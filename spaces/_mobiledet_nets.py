"""The MobileDet networks: one layer module for every layer type, :class:`MobileDetNet` and its
weight-sharing :class:`MobileDetSupernet`.

Kept apart from :mod:`spaces.mobiledet` so that decoding, validating and counting never import torch.

Weight sharing: the supernet holds, per layer and per layer type, one layer module at that type's
largest arguments (widest multipliers, expansion 8, kernel 5, Tucker ratios 0.75; see
:meth:`MobileDetSpace.supernet_choices`), so the types keep their own weights while channel widths,
kernels, expansions and compressions of one type share them. A path is run as its stand-alone
:class:`MobileDetNet` (built once on the meta device and cached) called with
``torch.func.functional_call`` on *slices* of the shared tensors: the first channels of every
dimension and the centre ``k x k`` crop of a larger kernel. Since every tensor of a stand-alone model is
such a slice, one rule serves the stem, all layer types, the classifier and the SSDLite head, and the
supernet path is the stand-alone model by construction. Gradients and BN running-stat updates reach
only the slices the path uses (they are views).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Sequence

import torch
from torch import nn
from torch.func import functional_call

from ._blocks import ConvBNAct, SqueezeExcite, chain_outputs, check_supernet_path
from ._ssdlite_nets import SSDLiteHead

if TYPE_CHECKING:
    from .mobiledet import MobileDetArchArgs, MobileDetLayerArgs, MobileDetSpace

__all__ = ["MobileDetLayer", "MobileDetNet", "MobileDetSupernet"]


class MobileDetLayer(nn.Module):
    """Any MobileDet layer: [1x1 expand / compress, act] -> kxk conv, act -> [SE] -> 1x1 project -> [+ input].

    The kxk conv is depthwise for ``ibn`` / ``noexp`` and full for ``fused`` / ``tucker``; absent parts are
    ``nn.Identity`` so every type has the module names ``expand``, ``conv``, ``se``, ``project``.
    """

    def __init__(self, args: MobileDetLayerArgs) -> None:
        super().__init__()
        if args.layer_type == "skip":
            raise ValueError("a skip layer has no module; build nn.Identity instead")
        self.residual = args.residual
        self.expand: nn.Module = (
            ConvBNAct(args.in_ch, args.expand_out, kernel=1, act=args.act) if args.has_expand else nn.Identity()
        )
        groups = args.conv_in if args.depthwise else 1
        self.conv = ConvBNAct(args.conv_in, args.hidden, kernel=args.kernel, stride=args.stride, groups=groups, act=args.act)
        self.se: nn.Module = SqueezeExcite(args.hidden, args.squeeze, act=args.act, gate="sigmoid") if args.se else nn.Identity()
        self.project = ConvBNAct(args.hidden, args.out_ch, kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.conv(self.expand(x))))
        return out + x if self.residual else out


def make_layer(args: MobileDetLayerArgs) -> nn.Module:
    return nn.Identity() if args.layer_type == "skip" else MobileDetLayer(args)


class MobileDetNet(nn.Module):
    """A stand-alone MobileDet: stem, 22 layers, and an SSDLite head or a classifier.

    Args:
        arch: The decoded architecture (see :meth:`MobileDetSpace.decode`).

    Input ``(N, 3, H, W)``. Detection returns ``(boxes, logits)`` of shapes ``(N, A, 4)`` and
    ``(N, A, num_classes)`` (anchors from :func:`spaces.ssdlite.ssd_anchors`); classification returns
    ``(N, num_classes)`` logits.
    """

    def __init__(self, arch: MobileDetArchArgs) -> None:
        super().__init__()
        self.arch = arch
        fixed = arch.fixed
        self.stem = ConvBNAct(3, arch.stem_ch, kernel=3, stride=fixed.stem_stride, act=fixed.act)
        self.blocks = nn.ModuleList(make_layer(args) for args in arch.blocks)
        if fixed.task == "detection":
            self.head: nn.Module = SSDLiteHead(arch.head)
        else:
            self.dropout = nn.Dropout(fixed.dropout)
            self.head = nn.Linear(arch.c5_ch, fixed.num_classes)

    @property
    def onnx_output_names(self) -> tuple[str, ...]:
        """Names of the exported graph's outputs, in forward's order."""
        return ("boxes", "logits") if self.arch.fixed.task == "detection" else ("logits",)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        c4 = x
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == self.arch.c4_index:
                c4 = x
        if self.arch.fixed.task == "detection":
            return self.head(c4, x)
        return self.head(self.dropout(x.mean((2, 3))))

    def block_outputs(self, x: torch.Tensor, indices: Sequence[int]) -> list[torch.Tensor]:
        """The outputs of the layers at ``indices`` (e.g. the detection endpoints C4 and C5)."""
        return chain_outputs(self.stem(x), self.blocks, indices)


def _slice(tensor: torch.Tensor, shape: torch.Size, key: str) -> torch.Tensor:
    """A view of ``tensor`` with ``shape``: leading entries of every dimension, centre crop of kernels."""
    if tensor.dim() != len(shape) or any(s > t for s, t in zip(shape, tensor.shape)):
        raise ValueError(f"{key}: a path needs shape {tuple(shape)}, the shared tensor has {tuple(tensor.shape)}")
    index = []
    for d, (s, t) in enumerate(zip(shape, tensor.shape)):
        start = (t - s) // 2 if (tensor.dim() == 4 and d >= 2) else 0  # conv kernels: the centre k x k
        index.append(slice(start, start + s))
    return tensor[tuple(index)]


class _PathPlan:
    """A path's stand-alone network on the meta device and where each of its tensors lives in the supernet."""

    def __init__(self, arch: MobileDetArchArgs) -> None:
        with torch.device("meta"):
            self.template = MobileDetNet(arch)
        self.entries: list[tuple[str, str, torch.Size]] = []
        for key, tensor in self.template.state_dict().items():
            parts = key.split(".")
            if parts[0] == "blocks":  # blocks.I.rest -> blocks.I.TYPE.rest
                parts.insert(2, arch.blocks[int(parts[1])].layer_type)
            self.entries.append((key, ".".join(parts), tensor.shape))
        self.norms = [m for m in self.template.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class MobileDetSupernet(nn.Module):
    """Single-path one-shot supernet of a :class:`MobileDetSpace` (see the module docstring).

    ``stem``, ``blocks[i][type]`` and ``head`` hold the shared weights at their largest shapes; a path is
    run by slicing them. Its BN layers take their mode and momentum from the supernet's own modules, so
    ``supernet.train()`` / ``eval()`` and BN recalibration behave as on any module.

    Args:
        space: The space whose architectures this supernet runs.
    """

    _CACHE_SIZE = 64

    def __init__(self, space: MobileDetSpace) -> None:
        super().__init__()
        self._space = space
        widest = space.max_arch()
        self.choices = space.dims  # check_supernet_path reads the sizes from here
        self.stem = ConvBNAct(3, widest.stem_ch, kernel=3, stride=space.fixed.stem_stride, act=space.fixed.act)
        self.blocks = nn.ModuleList(
            nn.ModuleDict({t: MobileDetLayer(args) for t, args in largest.items()}) for largest in space.supernet_choices()
        )
        if space.fixed.task == "detection":
            self.head: nn.Module = SSDLiteHead(widest.head)
        else:
            self.dropout = nn.Dropout(space.fixed.dropout)
            self.head = nn.Linear(widest.c5_ch, space.fixed.num_classes)
        self._plans: OrderedDict[tuple[int, ...], _PathPlan] = OrderedDict()
        self._shared: dict[str, torch.Tensor] | None = None  # name -> tensor, rebuilt after _apply

    def _apply(self, fn, recurse=True):  # .to() / .cuda() / .half() may replace tensors: forget the map
        self._shared = None
        return super()._apply(fn, recurse)

    def _plan(self, path: Sequence[int]) -> _PathPlan:
        key = tuple(int(v) for v in path)
        plan = self._plans.get(key)
        if plan is None:
            plan = _PathPlan(self._space.decode(key))
            self._plans[key] = plan
            if len(self._plans) > self._CACHE_SIZE:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return plan

    def _check(self, path: Sequence[int]) -> tuple[int, ...]:
        check_supernet_path(tuple(d.choices for d in self.choices), path)
        return tuple(int(v) for v in path)

    def path_state_dict(self, path: Sequence[int]) -> dict[str, torch.Tensor]:
        """The state of ``path`` keyed as the stand-alone :class:`MobileDetNet`'s ``state_dict()``.

        Values are detached views of this supernet's tensors (copy them before changing them).
        """
        return {key: value.detach() for key, value in self._sliced(self._plan(self._check(path))).items()}

    def _sliced(self, plan: _PathPlan) -> dict[str, torch.Tensor]:
        if self._shared is None:  # load_state_dict copies in place, so only _apply invalidates it
            self._shared = {**dict(self.named_parameters()), **dict(self.named_buffers())}
        return {key: _slice(self._shared[source], shape, source) for key, source, shape in plan.entries}

    def forward(self, x: torch.Tensor, path: Sequence[int]) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Run the architecture ``path`` (an encoding of the space) on the shared weights."""
        plan = self._plan(self._check(path))
        plan.template.train(self.training)
        momentum = self.stem[1].momentum  # recalibration sets momentum=None on every BN: follow it
        for norm in plan.norms:
            norm.momentum = momentum
        return functional_call(plan.template, self._sliced(plan), (x,), strict=True)
