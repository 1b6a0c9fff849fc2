"""The MobileNetEdgeTPUV2 network parts: the IBN blocks, the trunk, and the supernet's elastic IBNs.

Kept apart from :mod:`spaces.edgetpu` so that decoding, validating and counting never import torch.

Weight sharing in the supernet: per searched layer one :class:`ElasticIBN` per block type, so the four
types keep their own weights; within a type every choice runs on a slice of one set of weights held at
the type's largest expansion and kernel (first ``hidden`` expanded channels, centre ``k x k`` crop of
the kernel). The kxk conv weight of a type is held as ``(max hidden, W, K, K)`` with ``W`` the most
input channels per group among its choices (1 for depthwise, ``in`` for fused, the group size for
``ibn_grouped``, group size / e for ``ibn_fused_grouped``); a choice reads its first
``conv_in_per_group`` columns. So the group sizes of a grouped type share one weight by channel slicing
too: output filter ``o`` weighs the ``t``-th input of its own group with ``W[o, t]`` whatever the group
size. (Deriving group convs as block-diagonal parts of the fused type's weight would tie two types
together, and a separate weight per group size would leave each of them a fraction of the training.)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
from torch import nn

from ._blocks import ConvBNAct
from ._elastic import conv_bn
from ._layerwise import LayerwiseParts

if TYPE_CHECKING:
    from .edgetpu import EdgeTPUFixedArgs, IBNArgs

__all__ = ["EdgeTPUParts", "ElasticIBN", "IBNBlock"]


class IBNBlock(nn.Module):
    """Any EdgeTPU IBN: [1x1 expand (BN, ReLU)] -> [kxk conv (BN, ReLU)] -> 1x1 project (BN) -> [+ input].

    The kxk conv is depthwise, full or grouped by ``args.groups``; fused types have no 1x1 expansion.
    Absent parts are ``nn.Identity`` so that every type has the module names ``expand``, ``conv``,
    ``project``.
    """

    def __init__(self, args: IBNArgs) -> None:
        super().__init__()
        if not args.has_conv and args.stride != 1:
            raise ValueError(f"a fused block with expansion 1 has no kxk conv to carry stride {args.stride}: {args}")
        self.residual = args.residual
        self.expand: nn.Module = (
            ConvBNAct(args.in_ch, args.hidden, kernel=1, act="relu") if args.has_expand else nn.Identity()
        )
        self.conv: nn.Module = (
            ConvBNAct(args.conv_in, args.hidden, kernel=args.kernel, stride=args.stride, groups=args.groups, act="relu")
            if args.has_conv
            else nn.Identity()
        )
        self.project = ConvBNAct(args.hidden, args.out_ch, kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.conv(self.expand(x)))
        return out + x if self.residual else out


class ElasticIBN(nn.Module):
    """The weights of one IBN type of one layer, at its largest choice; runs any choice of that type.

    Same module names as ``IBNBlock`` (``expand``, ``conv``, ``project``), so :meth:`sliced_state` loads
    into the stand-alone block as is. The ``conv`` module only holds the shared kxk weight (see the
    module docstring); forward runs ``F.conv2d`` on slices of it.

    Args:
        choices: The choices of this type in this layer: same type, in/out channels and stride,
            expansion > 1.
    """

    def __init__(self, choices: Sequence[IBNArgs]) -> None:
        super().__init__()
        first = choices[0]
        shape = (first.block_type, first.in_ch, first.out_ch, first.stride)
        if any((a.block_type, a.in_ch, a.out_ch, a.stride) != shape or a.expansion < 2 for a in choices):
            raise ValueError(f"an elastic IBN needs choices of one type, channels and stride, e > 1; got {choices}")
        self.block_type, self.in_ch, self.out_ch, self.stride = shape
        self.max_hidden = max(a.hidden for a in choices)
        self.max_kernel = max(a.kernel for a in choices)
        self.conv_width = max(a.conv_in_per_group for a in choices)
        if first.has_expand:
            self.expand = ConvBNAct(self.in_ch, self.max_hidden, kernel=1, act="relu")
        self.conv = ConvBNAct(self.conv_width, self.max_hidden, kernel=self.max_kernel, act="relu")
        self.project = ConvBNAct(self.max_hidden, self.out_ch, kernel=1)

    def forward(self, x: torch.Tensor, args: IBNArgs) -> torch.Tensor:
        """Run the choice ``args``; gradients and BN running-stat updates reach only its slices."""
        p = self.sliced_state(args)
        out = x
        if args.has_expand:
            out = self.expand[2](conv_bn(out, p, "expand", self.expand[1]))
        out = conv_bn(out, p, "conv", self.conv[1], stride=args.stride, padding=args.kernel // 2, groups=args.groups)
        out = conv_bn(self.conv[2](out), p, "project", self.project[1])
        return out + x if args.residual else out

    def sliced_state(self, args: IBNArgs) -> dict[str, torch.Tensor]:
        """Views of the parameters and buffers that ``args`` uses, keyed as ``IBNBlock(args).state_dict()``.

        The views share storage with this block (and keep autograd to its parameters).
        """
        self._check(args)
        h, k, w = args.hidden, args.kernel, args.conv_in_per_group
        c = (self.max_kernel - k) // 2
        state = {}
        for name, tensor in [*self.named_parameters(), *self.named_buffers()]:
            if name == "conv.0.weight":
                state[name] = tensor[:h, :w, c : c + k, c : c + k]
            elif name == "project.0.weight":
                state[name] = tensor[:, :h]
            elif name.startswith("project.") or name.endswith("num_batches_tracked"):
                state[name] = tensor
            else:  # the expand conv and the expand / conv BNs: the first h channels
                state[name] = tensor[:h]
        return state

    def _check(self, args: IBNArgs) -> None:
        fits = (
            (args.block_type, args.in_ch, args.out_ch, args.stride)
            == (self.block_type, self.in_ch, self.out_ch, self.stride)
            and 2 <= args.hidden <= self.max_hidden
            and 1 <= args.kernel <= self.max_kernel
            and args.kernel % 2 == self.max_kernel % 2
            and args.conv_in_per_group <= self.conv_width
        )
        if not fits:
            raise ValueError(
                f"choice {args} does not fit the elastic {self.block_type} block (in {self.in_ch}, out "
                f"{self.out_ch}, stride {self.stride}, hidden <= {self.max_hidden}, kernel <= {self.max_kernel} "
                f"of its parity, <= {self.conv_width} inputs per group)"
            )


class EdgeTPUParts(LayerwiseParts):
    """Stem, the fixed first IBN, IBN blocks, and the top conv -> pool -> 1x1-conv logits tail.

    In the supernet, ``blocks[i][t]`` holds layer ``i``'s weights of block type ``t``: a path runs one
    type per layer on its slice, so the four types keep their own weights.
    """

    def trunk(self, fixed: EdgeTPUFixedArgs, tail_in: int) -> dict[str, nn.Module]:
        return {
            "stem": ConvBNAct(3, fixed.stem_ch, kernel=fixed.stem_kernel, stride=fixed.stem_stride, act="relu"),
            "first": IBNBlock(fixed.first),
            "top": ConvBNAct(tail_in, fixed.top_ch, kernel=1, act="relu"),
            "dropout": nn.Dropout(fixed.dropout),
            "logits": nn.Conv2d(fixed.top_ch, fixed.num_classes, 1, bias=True),
        }

    def block(self, args: IBNArgs) -> nn.Module:
        return IBNBlock(args)

    def elastic(self, choices: tuple[IBNArgs, ...]) -> nn.Module:
        # One elastic block per type, in the order the layer's choices list the types.
        types = dict.fromkeys(args.block_type for args in choices)
        return nn.ModuleDict({t: ElasticIBN([a for a in choices if a.block_type == t]) for t in types})

    def elastic_for(self, module: nn.Module, args: IBNArgs) -> nn.Module:
        return module[args.block_type]

    def forward_tail(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        x = net.top(x).mean((2, 3), keepdim=True)
        return net.logits(net.dropout(x)).flatten(1)
