"""Weight-sharing ("elastic") MB block: one set of weights at the largest choice serves every choice.

A smaller choice runs on a slice of the big block: the first ``hidden`` expanded channels, the centre
``k x k`` crop of the depthwise kernel (or, with per-kernel weights, the first ``hidden`` channels of its
kernel size's own depthwise weights), the first ``squeeze`` SE channels. Forward and extraction read
the weights through one function, :meth:`ElasticMBBlock.sliced_state`, so a stand-alone
:class:`~spaces._blocks.MBBlock` loaded from it computes exactly what the supernet computes.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._block_args import MBBlockArgs
from ._blocks import ConvBNAct, SqueezeExcite

__all__ = ["ElasticMBBlock", "PerKernelWeights", "conv_bn", "run_sliced_mb", "sliced_batch_norm"]

# How each tensor of the big block is cut for a sub-block, by MBBlock state-dict name (so that the
# sliced state loads into an MBBlock as is): "hidden" keeps the first ``hidden`` rows, "squeeze" the
# first ``se_squeeze``, "dw" also crops the kernel centre, "full" keeps the tensor whole.
_BN_STATE = ("weight", "bias", "running_mean", "running_var")
_SLICE_RULES: dict[str, str] = {
    "expand.0.weight": "hidden",
    **{f"expand.1.{name}": "hidden" for name in _BN_STATE},
    "dw.0.weight": "dw",
    **{f"dw.1.{name}": "hidden" for name in _BN_STATE},
    "se.reduce.weight": "squeeze x hidden",
    "se.reduce.bias": "squeeze",
    "se.expand.weight": "hidden x squeeze",
    "se.expand.bias": "hidden",
    "project.0.weight": "out x hidden",
    **{f"project.1.{name}": "full" for name in _BN_STATE},
    **{f"{bn}.num_batches_tracked": "full" for bn in ("expand.1", "dw.1", "project.1")},
}


class ElasticMBBlock(nn.Module):
    """An MB block holding the weights of its largest choice ``max_args``; runs any smaller choice.

    Same module tree (and state-dict names) as ``MBBlock(max_args)``. Every choice shares in/out
    channels, stride and activation with ``max_args``; expansion, kernel and SE may shrink.

    Args:
        max_args: The largest choice (maximal expansion and kernel, with SE).
        kernels: With per-kernel weights (``supernet.kernel_weights: per_kernel``), the layer's kernel sizes:
            each smaller one gets depthwise weights of its own (:class:`PerKernelWeights`) instead of
            the centre of the largest, which is trained to work inside the larger kernel. ``None``: shared.
    """

    def __init__(self, max_args: MBBlockArgs, kernels: tuple[int, ...] | None = None) -> None:
        super().__init__()
        if not max_args.se:
            raise ValueError(f"ElasticMBBlock needs SE in its largest choice, got {max_args}")
        self.max_args = max_args
        hidden = max_args.hidden
        self.expand = ConvBNAct(max_args.in_ch, hidden, kernel=1, act=max_args.act)
        self.dw = ConvBNAct(
            hidden, hidden, kernel=max_args.kernel, stride=max_args.stride, groups=hidden, act=max_args.act
        )
        self.se = SqueezeExcite(hidden, max_args.se_squeeze, act=max_args.act)
        self.project = ConvBNAct(hidden, max_args.out_ch, kernel=1)
        # Registered last: the shared-kernel supernet keeps its module order and initial weights.
        self.dw_kernels = PerKernelWeights(hidden, kernels, max_args.kernel) if kernels else None

    def forward(self, x: torch.Tensor, args: MBBlockArgs) -> torch.Tensor:
        """Run the sub-block ``args``; gradients and BN running-stat updates reach only its slices."""
        return run_sliced_mb(self, x, args, self.sliced_state(args))

    def sliced_state(self, args: MBBlockArgs) -> dict[str, torch.Tensor]:
        """Views of the parameters and buffers that ``args`` uses, keyed as ``MBBlock(args).state_dict()``.

        The views share storage with this block (and keep autograd to its parameters): writing to them
        writes here. SE entries are left out when ``args`` has no SE, as ``MBBlock`` has none then.
        """
        self._check(args)
        h, s = args.hidden, args.se_squeeze
        c = (self.max_args.kernel - args.kernel) // 2
        cuts = {
            "full": lambda t: t,
            "hidden": lambda t: t[:h],
            "dw": lambda t: t[:h, :, c : c + args.kernel, c : c + args.kernel],
            "squeeze": lambda t: t[:s],
            "squeeze x hidden": lambda t: t[:s, :h],
            "hidden x squeeze": lambda t: t[:h, :s],
            "out x hidden": lambda t: t[:, :h],
        }
        if self.dw_kernels is not None and args.kernel in self.dw_kernels.sizes:
            cuts["dw"] = lambda _: self.dw_kernels.weight(args.kernel)[:h]
        tensors = [*self.named_parameters(), *self.named_buffers()]
        return {
            name: cuts[_SLICE_RULES[name]](tensor)
            for name, tensor in tensors
            if not name.startswith("dw_kernels.") and (args.se or not name.startswith("se."))
        }

    def _check(self, args: MBBlockArgs) -> None:
        big = self.max_args
        fits = (
            (args.in_ch, args.out_ch, args.stride, args.act) == (big.in_ch, big.out_ch, big.stride, big.act)
            and 1 <= args.expansion <= big.expansion
            and 1 <= args.kernel <= big.kernel
            and args.kernel % 2 == big.kernel % 2
        )
        if not fits:
            raise ValueError(
                f"sub-block {args} does not fit the elastic block {big}: in/out channels, stride and "
                f"activation must match, expansion and kernel may not grow, and the kernel keeps its parity"
            )


class PerKernelWeights(nn.Module):
    """Depthwise weights of their own for each kernel size of a layer but the largest (which stays the
    block's ``dw`` conv): ``weight(k)`` is ``(channels, 1, k, k)``; a choice takes its first ``hidden`` rows."""

    def __init__(self, channels: int, kernels: tuple[int, ...], largest: int) -> None:
        super().__init__()
        self.sizes = tuple(sorted(k for k in set(kernels) if k != largest))
        self.convs = nn.ModuleDict({f"k{k}": nn.Conv2d(channels, channels, k, groups=channels, bias=False)
                                    for k in self.sizes})

    def weight(self, kernel: int) -> torch.Tensor:
        return self.convs[f"k{kernel}"].weight


def run_sliced_mb(block: nn.Module, x: torch.Tensor, args: Any, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """An MB block (1x1 expand, depthwise, [SE], 1x1 project, [residual]) run on the sliced tensors ``p``.

    ``block`` provides the modules (``expand``, ``dw``, ``se``, ``project``: their BNs, activations and
    SE gate), ``args`` the choice (``hidden``, ``kernel``, ``stride``, ``se``, ``residual``); shared by
    every elastic MB block (MoGA's and MobileNet's differ only in how they slice).
    """
    out = block.expand[2](conv_bn(x, p, "expand", block.expand[1]))
    out = conv_bn(out, p, "dw", block.dw[1], stride=args.stride, padding=args.kernel // 2, groups=args.hidden)
    out = block.dw[2](out)
    if args.se:
        scale = out.mean((2, 3), keepdim=True)
        scale = block.se.act(F.conv2d(scale, p["se.reduce.weight"], p["se.reduce.bias"]))
        out = out * block.se.gate(F.conv2d(scale, p["se.expand.weight"], p["se.expand.bias"]))
    out = conv_bn(out, p, "project", block.project[1])
    return out + x if args.residual else out


def conv_bn(
    x: torch.Tensor, p: dict[str, torch.Tensor], name: str, bn: nn.BatchNorm2d, *, stride: int = 1,
    padding: int = 0, groups: int = 1,
) -> torch.Tensor:
    """``ConvBNAct`` ``name``'s conv and BN (no activation) on the sliced tensors ``p`` (keyed as its state dict)."""
    y = F.conv2d(x, p[f"{name}.0.weight"], None, stride, padding, 1, groups)
    return sliced_batch_norm(y, bn, {key: p[f"{name}.1.{key}"] for key in _BN_STATE})


def sliced_batch_norm(x: torch.Tensor, bn: nn.BatchNorm2d, sliced: dict[str, torch.Tensor]) -> torch.Tensor:
    """``bn(x)`` on a channel slice: ``sliced`` holds views of ``bn``'s weight, bias and running stats.

    Mirrors ``nn.BatchNorm2d.forward`` for a BN that tracks running statistics (as every
    :class:`~spaces._blocks.ConvBNAct` BN does): in training mode the batch statistics are used and
    the running stats of the slice, and only of it since they are views, are updated in place. The
    counter ``num_batches_tracked`` is shared by all slices, so with ``momentum=None`` (a cumulative
    average) the statistics are exact only while one path is run, as single-path BN recalibration does.
    """
    factor = 0.0
    if bn.training and bn.track_running_stats:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    return F.batch_norm(
        x, sliced["running_mean"], sliced["running_var"], sliced["weight"], sliced["bias"],
        bn.training, factor, bn.eps,
    )  # fmt: skip
