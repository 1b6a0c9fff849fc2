"""Parameter and multiply-add counts under the project's one convention (``reference/architectures.md``).

* params: trainable parameters only; BN running statistics are buffers and so are not counted.
* MAdds: ``Conv2d`` and ``Linear`` only, ``(C_in / groups) * kH * kW`` per output element; BN,
  activations, pooling, residual adds and SE gating multiplies are free.
* Re-parameterizable models (those with an ``inference_form()`` method, e.g. MobileOne) are counted
  after folding, in the form that runs at inference.

The hook counter here is the reference; spaces may add faster analytic counters built from
:func:`conv2d_cost` and must test them against it.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

if TYPE_CHECKING:  # torch is imported by the functions that need it, so analytic counting stays light
    import torch
    from torch import nn

__all__ = ["Cost", "conv2d_cost", "count_madds", "count_params", "evaluating", "inference_form", "inverted_residual_cost",
           "linear_cost", "meta_model"]


def meta_model(factory: Callable[[], nn.Module]) -> nn.Module:
    """``factory()`` built on the meta device: shapes only, no memory, nothing drawn from any RNG."""
    import torch

    with torch.device("meta"):
        return factory()


def inference_form(module: nn.Module) -> nn.Module:
    """``module.inference_form()`` (a folded copy) if the module has one, else ``module`` itself."""
    fold = getattr(module, "inference_form", None)
    return fold() if callable(fold) else module


def count_params(module: nn.Module) -> int:
    """Number of trainable parameters of ``module``'s :func:`inference_form` (buffers such as BN
    running stats excluded)."""
    return sum(p.numel() for p in inference_form(module).parameters() if p.requires_grad)


def count_madds(module: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-adds of one forward pass of ``module`` on an input of ``input_shape``.

    Every dimension of ``input_shape`` counts, the batch included: pass a batch of 1 for per-image
    MAdds. A re-parameterizable module is counted in its :func:`inference_form`. The forward runs on
    the meta device when the module lives there (no memory, no compute), otherwise on a zero tensor
    on the module's device, in eval mode, without autograd; the module's training flag is restored
    afterwards.

    Args:
        module: The model; its ``forward`` takes one tensor.
        input_shape: Full input shape, e.g. ``(1, 3, 224, 224)``.

    Returns:
        Total MAdds of all ``Conv2d`` and ``Linear`` layers that ran.
    """
    import torch
    from torch import nn

    module = inference_form(module)
    total = 0

    def on_forward(layer: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(layer, nn.Conv2d):
            kh, kw = layer.kernel_size
            total += output.numel() * (layer.in_channels // layer.groups) * kh * kw
        else:  # nn.Linear: one in_features-long dot product per output element
            total += output.numel() * layer.in_features

    handles = [m.register_forward_hook(on_forward) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with evaluating(module) as device, torch.no_grad():
            module(torch.zeros(tuple(input_shape), device=device))
    finally:
        for handle in handles:
            handle.remove()
    return int(total)


@contextmanager
def evaluating(module: nn.Module) -> Iterator[torch.device]:
    """Put ``module`` in eval mode for the block and restore its train/eval mode after; yields the device
    of its parameters (the CPU when it has none)."""
    import torch

    first = next(module.parameters(), None)
    was_training = module.training
    try:
        module.eval()
        yield first.device if first is not None else torch.device("cpu")
    finally:
        module.train(was_training)


@dataclass(frozen=True)
class Cost:
    """Params and MAdds of one layer or a chain of layers, plus the spatial size it outputs.

    ``a + b`` is the chain "a, then b": costs add up and the size is ``b``'s output size.
    ``a.with_branch(b)`` adds a side branch (e.g. squeeze-excite) that leaves ``a``'s size unchanged.
    """

    params: int = 0
    madds: int = 0
    size: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.madds + other.madds, other.size)

    def with_branch(self, branch: Cost) -> Cost:
        return Cost(self.params + branch.params, self.madds + branch.madds, self.size)


def conv2d_cost(
    in_ch: int, out_ch: int, *, kernel: int, stride: int = 1, groups: int = 1, size: int, bias: bool = False,
    bn: bool = False,
) -> Cost:
    """Analytic cost of a square ``Conv2d`` (padding ``kernel // 2``) on a ``size x size`` input.

    ``bn=True`` adds the following BatchNorm's two trainable vectors (gamma, beta).
    """
    out_size = (size + 2 * (kernel // 2) - kernel) // stride + 1
    per_output = (in_ch // groups) * kernel * kernel
    params = out_ch * per_output + (out_ch if bias else 0) + (2 * out_ch if bn else 0)
    return Cost(params=params, madds=out_ch * out_size * out_size * per_output, size=out_size)


def linear_cost(in_features: int, out_features: int, *, bias: bool = True) -> Cost:
    """Analytic cost of an ``nn.Linear`` applied to one feature vector."""
    params = in_features * out_features + (out_features if bias else 0)
    return Cost(params=params, madds=in_features * out_features, size=1)


def inverted_residual_cost(
    in_ch: int, hidden: int, out_ch: int, *, kernel: int, stride: int, se_squeeze: int | None, size: int,
    expand: bool = True,
) -> Cost:
    """An MB block: [1x1 expand] -> depthwise kxk -> [SE on the pooled map] -> 1x1 project, BN after each conv."""
    cost = Cost(size=size)
    if expand:
        cost = cost + conv2d_cost(in_ch, hidden, kernel=1, size=size, bn=True)
    cost = cost + conv2d_cost(hidden, hidden, kernel=kernel, stride=stride, groups=hidden, size=cost.size, bn=True)
    if se_squeeze is not None:  # the SE convs run on the pooled 1x1 map, beside the main path
        se = conv2d_cost(hidden, se_squeeze, kernel=1, size=1, bias=True)
        cost = cost.with_branch(se + conv2d_cost(se_squeeze, hidden, kernel=1, size=1, bias=True))
    return cost + conv2d_cost(hidden, out_ch, kernel=1, size=cost.size, bn=True)
