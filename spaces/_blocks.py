"""Small ``nn`` building blocks shared by the MobileNet-family spaces.

Every block is built from typed arguments, uses only ops that the legacy ONNX exporter maps to
standard operators at opset 17 (Conv, BatchNormalization, Relu, HardSwish, HardSigmoid, ReduceMean,
Mul, Add), and pads ``k // 2`` so that stride-1 blocks keep their spatial size.
"""
from __future__ import annotations

from numbers import Integral
from typing import Any, Callable, Sequence, TypeVar

import torch
from torch import nn

from core.errors import InvalidEncodingError

from ._block_args import ACTIVATIONS, MBBlockArgs

__all__ = [
    "ConvBNAct",
    "DepthwiseSeparable",
    "MBBlock",
    "SqueezeExcite",
    "init_weights",
    "make_activation",
    "chain_outputs",
    "check_supernet_path",
    "load_path",
    "materialize",
]

M = TypeVar("M", bound=nn.Module)


def make_activation(name: str) -> nn.Module:
    """A fresh activation module for ``name`` (one of :data:`ACTIVATIONS`)."""
    if name == "relu":
        return nn.ReLU()
    if name == "hswish":
        return nn.Hardswish()
    if name == "relu6":
        return nn.ReLU6()
    raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")


class ConvBNAct(nn.Sequential):
    """``Conv2d`` (no bias, padding ``k // 2``) -> ``BatchNorm2d`` -> optional activation."""

    def __init__(
        self, in_ch: int, out_ch: int, *, kernel: int = 1, stride: int = 1, groups: int = 1, act: str | None = None
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        if act is not None:
            layers.append(make_activation(act))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Squeeze-excite: mean -> 1x1 reduce (bias) -> act -> 1x1 expand (bias) -> gate -> scale.

    Every space's SE is this block with its own widths, activation and gate: MoGA's squeezes to
    ``channels // 4`` with the block's own activation and a hard sigmoid; MobileNetV3's to
    ``make_divisible(channels / 4, 8)`` with ReLU and a hard sigmoid; MobileDet's uses the block's
    activation and a sigmoid; MobileOne's ReLU and a sigmoid. The caller passes the squeeze width.

    Args:
        channels: Channels scaled.
        squeeze: Channels of the bottleneck.
        act: The inner activation (see :func:`make_activation`).
        gate: ``hardsigmoid`` (``relu6(x + 3) / 6``, one ONNX HardSigmoid node) or ``sigmoid``.
    """

    def __init__(self, channels: int, squeeze: int, *, act: str, gate: str = "hardsigmoid") -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze, 1, bias=True)
        self.act = make_activation(act)
        self.expand = nn.Conv2d(squeeze, channels, 1, bias=True)
        self.gate = nn.Hardsigmoid() if gate == "hardsigmoid" else nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = self.gate(self.expand(self.act(self.reduce(scale))))
        return x * scale


class DepthwiseSeparable(nn.Module):
    """Depthwise kxk (BN, act) -> pointwise 1x1 (BN, linear); no residual (MoGA's fixed first block)."""

    def __init__(self, in_ch: int, out_ch: int, *, kernel: int = 3, stride: int = 1, act: str = "relu") -> None:
        super().__init__()
        self.dw = ConvBNAct(in_ch, in_ch, kernel=kernel, stride=stride, groups=in_ch, act=act)
        self.pw = ConvBNAct(in_ch, out_ch, kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class MBBlock(nn.Module):
    """1x1 expand (BN, act) -> depthwise kxk (BN, act) -> [SE] -> 1x1 project (BN, linear) -> [+ input]."""

    def __init__(self, args: MBBlockArgs) -> None:
        super().__init__()
        hidden = args.hidden
        self.residual = args.residual
        self.expand = ConvBNAct(args.in_ch, hidden, kernel=1, act=args.act)
        self.dw = ConvBNAct(hidden, hidden, kernel=args.kernel, stride=args.stride, groups=hidden, act=args.act)
        # Identity keeps the module tree (and so the state-dict keys) the same shape with or without SE.
        self.se: nn.Module = SqueezeExcite(hidden, args.se_squeeze, act=args.act) if args.se else nn.Identity()
        self.project = ConvBNAct(hidden, args.out_ch, kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.dw(self.expand(x))))
        return out + x if self.residual else out


def chain_outputs(x: torch.Tensor, blocks: Sequence[nn.Module], indices: Sequence[int]) -> list[torch.Tensor]:
    """Run ``blocks`` in order on ``x`` (no further than needed) and return the outputs at ``indices``."""
    wanted, out = set(indices), {}
    for i, block in enumerate(blocks[: max(indices, default=-1) + 1]):
        x = block(x)
        if i in wanted:
            out[i] = x
    return [out[i] for i in indices]


def init_weights(module: nn.Module, generator: torch.Generator) -> None:
    """Initialise every conv, BN and linear layer of ``module`` from ``generator`` alone.

    MobileNet-style scheme: convs He-normal over fan-out, biases zero, BN identity with fresh running
    statistics, linear layers N(0, 0.01). Only ``generator`` is drawn from, never torch's global RNG.
    """
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01, generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif any(True for _ in m.parameters(recurse=False)):
                # A materialised module holds uninitialised memory: refuse rather than train on garbage.
                raise TypeError(f"init_weights does not know how to initialise {type(m).__name__}")


def materialize(factory: Callable[[], M], *, generator: torch.Generator | None = None) -> M:
    """Build ``factory()`` on the meta device, allocate it on the CPU and initialise it from ``generator``.

    Plain ``nn.Module`` construction draws its initial weights from torch's global RNG; building on
    the meta device skips that draw entirely (and is faster), so a model depends only on ``generator``.
    ``generator=None`` means a generator seeded with 0: the same model every time.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    with torch.device("meta"):
        module = factory()
    module.to_empty(device="cpu")
    init_weights(module, generator)
    return module


def load_path(net_factory: Callable[[], M], supernet: nn.Module, path: object) -> M:
    """A stand-alone net from ``net_factory`` holding a *copy* of ``supernet.path_state_dict(path)``.

    The net is built on the meta device and allocated without initialisation (every tensor is then
    overwritten by the strict load), on the supernet's device and in its train/eval mode, sharing no
    storage with it: in eval mode it computes what ``supernet(x, path)`` computes.
    """
    source = supernet.path_state_dict(path)
    with torch.device("meta"):
        net = net_factory()
    first = next(supernet.parameters())
    net.to_empty(device=first.device)
    net.load_state_dict(source, strict=True)  # load_state_dict copies: no storage is shared
    return net.train(supernet.training)


def check_supernet_path(choices: Sequence[Sequence[Any]], path: Sequence[int]) -> None:
    """Refuse a path that is not one in-range integer index per layer.

    Sequence indexing accepts negative indices, so a bad path would otherwise silently run the wrong choices.
    """
    if len(path) != len(choices) or any(
        not isinstance(c, Integral) or not 0 <= c < len(layer) for layer, c in zip(choices, path)
    ):
        raise InvalidEncodingError(
            f"supernet path must be {len(choices)} integer choice indices in "
            f"0..{len(choices[0]) - 1}, got {list(path)!r}. HINT: validate it with the space's parse()."
        )
