"""The MobileNetV2/V3 network parts: inverted residuals, the trunk, and the supernet's elastic block.

Kept apart from :mod:`spaces.mobilenet` so that decoding, validating and counting never import torch.

Weight sharing in the supernet: per searched layer one :class:`ElasticInvertedResidual` holds the
weights of the layer's largest choice (largest expansion, 7x7 kernel, SE in v3); every choice runs on a
slice of them: the first ``hidden`` expanded channels, the centre ``k x k`` crop of the depthwise
kernel, the first ``se_squeeze`` SE channels. This is :class:`spaces._elastic.ElasticMBBlock`'s scheme;
that block is not reused because it is tied to MoGA's block arguments: its hidden width is
``in * t`` (V3 rounds ``in * t`` to a multiple of 8: 80 * 2.3 -> 184), its SE squeezes to
``hidden // 4`` and runs the block's own activation, whereas MobileNetV3's SE always uses ReLU.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
from torch import nn

from ._blocks import ConvBNAct, SqueezeExcite, make_activation
from ._elastic import PerKernelWeights, run_sliced_mb
from ._layerwise import LayerwiseParts

if TYPE_CHECKING:
    from .mobilenet import InvertedResidualArgs, MobileNetFixedArgs

__all__ = ["ElasticInvertedResidual", "InvertedResidual", "MobileNetParts"]


class InvertedResidual(nn.Module):
    """``[1x1 expand (BN, act)] -> depthwise kxk (BN, act) -> [SE] -> 1x1 project (BN) -> [+ input]``.

    Absent parts are ``nn.Identity`` so that every block has the module names ``expand``, ``dw``,
    ``se``, ``project`` (those of :class:`ElasticInvertedResidual`, so sliced states load as is).
    """

    def __init__(self, args: InvertedResidualArgs) -> None:
        super().__init__()
        hidden = args.hidden
        self.residual = args.residual
        self.expand: nn.Module = ConvBNAct(args.in_ch, hidden, act=args.act) if args.has_expand else nn.Identity()
        self.dw = ConvBNAct(hidden, hidden, kernel=args.kernel, stride=args.stride, groups=hidden, act=args.act)
        # MobileNetV3's SE: ReLU inside whatever the block's activation, hard-sigmoid gate.
        self.se: nn.Module = SqueezeExcite(hidden, args.se_squeeze, act="relu") if args.se else nn.Identity()
        self.project = ConvBNAct(hidden, args.out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.dw(self.expand(x))))
        return out + x if self.residual else out


class ElasticInvertedResidual(nn.Module):
    """The weights of one searched layer at its largest choice; runs any choice of the layer.

    Args:
        choices: The layer's choices: same in/out channels, stride and activation, all with an
            expansion conv, kernels of one parity; SE weights exist if any choice uses SE.
    """

    def __init__(self, choices: Sequence[InvertedResidualArgs], kernel_weights: str = "shared") -> None:
        super().__init__()
        first = choices[0]
        self.shape = (first.in_ch, first.out_ch, first.stride, first.act)
        if any((a.in_ch, a.out_ch, a.stride, a.act) != self.shape or not a.has_expand for a in choices):
            raise ValueError(f"an elastic block needs choices of one in/out/stride/act, all expanding; got {choices}")
        self.max_hidden = max(a.hidden for a in choices)
        self.max_kernel = max(a.kernel for a in choices)
        self.max_squeeze = max((a.se_squeeze for a in choices if a.se), default=0)
        in_ch, out_ch, stride, act = self.shape
        self.expand = ConvBNAct(in_ch, self.max_hidden, act=act)
        self.dw = ConvBNAct(
            self.max_hidden, self.max_hidden, kernel=self.max_kernel, stride=stride, groups=self.max_hidden, act=act
        )
        if self.max_squeeze:
            self.se = SqueezeExcite(self.max_hidden, self.max_squeeze, act="relu")
        self.project = ConvBNAct(self.max_hidden, out_ch)
        # Registered last: the shared-kernel supernet keeps its module order and initial weights.
        kernels = tuple(a.kernel for a in choices)
        self.dw_kernels = (PerKernelWeights(self.max_hidden, kernels, self.max_kernel)
                           if kernel_weights == "per_kernel" else None)

    def forward(self, x: torch.Tensor, args: InvertedResidualArgs) -> torch.Tensor:
        """Run the choice ``args``; gradients and BN running-stat updates reach only its slices."""
        return run_sliced_mb(self, x, args, self.sliced_state(args))

    def sliced_state(self, args: InvertedResidualArgs) -> dict[str, torch.Tensor]:
        """Views of the parameters and buffers that ``args`` uses, keyed as ``InvertedResidual(args).state_dict()``.

        The views share storage with this block (and keep autograd to its parameters). SE entries are
        left out when ``args`` has no SE, as the stand-alone block has none then.
        """
        self._check(args)
        h, k, s = args.hidden, args.kernel, args.se_squeeze
        c = (self.max_kernel - k) // 2
        per_kernel = self.dw_kernels is not None and k in self.dw_kernels.sizes
        cuts = {
            "dw.0.weight": (lambda _: self.dw_kernels.weight(k)[:h]) if per_kernel else (lambda t: t[:h, :, c : c + k, c : c + k]),
            "se.reduce.weight": lambda t: t[:s, :h],
            "se.reduce.bias": lambda t: t[:s],
            "se.expand.weight": lambda t: t[:h, :s],
            "project.0.weight": lambda t: t[:, :h],
        }
        state = {}
        for name, tensor in [*self.named_parameters(), *self.named_buffers()]:
            if (name.startswith("se.") and not args.se) or name.startswith("dw_kernels."):
                continue
            if name in cuts:
                state[name] = cuts[name](tensor)
            elif name.startswith("project.") or name.endswith("num_batches_tracked"):
                state[name] = tensor  # the output side and the BN step counters are shared whole
            else:  # expand conv, expand / dw BNs, SE expand bias: the first h channels
                state[name] = tensor[:h]
        return state

    def _check(self, args: InvertedResidualArgs) -> None:
        fits = (
            (args.in_ch, args.out_ch, args.stride, args.act) == self.shape
            and args.has_expand
            and args.hidden <= self.max_hidden
            and 1 <= args.kernel <= self.max_kernel
            and args.kernel % 2 == self.max_kernel % 2
            and (not args.se or args.se_squeeze <= self.max_squeeze)
        )
        if not fits:
            raise ValueError(
                f"choice {args} does not fit the elastic block (in/out/stride/act {self.shape}, hidden <= "
                f"{self.max_hidden}, kernel <= {self.max_kernel} of its parity, SE squeeze <= {self.max_squeeze})"
            )


class MobileNetParts(LayerwiseParts):
    """Stem, the fixed first block, inverted residuals, and the last conv -> pool -> [v3 head conv] ->
    classifier tail. Module names are those of torchvision-like MobileNets: ``stem``, ``first``,
    ``last``, ``head``, ``head_act``, ``dropout``, ``classifier``."""

    def trunk(self, fixed: MobileNetFixedArgs, tail_in: int) -> dict[str, nn.Module]:
        modules: dict[str, nn.Module] = {
            "stem": ConvBNAct(3, fixed.stem_ch, kernel=3, stride=fixed.stem_stride, act=fixed.stem_act),
            "first": InvertedResidual(fixed.first),
            "last": ConvBNAct(tail_in, fixed.last_ch, act=fixed.last_act),
        }
        features = fixed.last_ch
        if fixed.head_ch is not None:
            # MobileNetV3's head: a 1x1 conv with bias and no BN on the pooled features.
            modules["head"] = nn.Conv2d(fixed.last_ch, fixed.head_ch, 1, bias=True)
            modules["head_act"] = make_activation("hswish")
            features = fixed.head_ch
        modules["dropout"] = nn.Dropout(fixed.dropout)
        modules["classifier"] = nn.Linear(features, fixed.num_classes)
        return modules

    def block(self, args: InvertedResidualArgs) -> nn.Module:
        return InvertedResidual(args)

    def elastic(self, choices: tuple[InvertedResidualArgs, ...], kernel_weights: str = "shared") -> nn.Module:
        return ElasticInvertedResidual(choices, kernel_weights)

    def forward_tail(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        x = net.last(x).mean((2, 3), keepdim=True)
        if net.fixed.head_ch is not None:
            x = net.head_act(net.head(x))
        return net.classifier(net.dropout(x.flatten(1)))
