"""What a network runs, kernel by kernel: the census a kernel-level latency model reads.

A CPU runtime's latency is close to a sum over the kernels it launches: a fixed cost per kernel
(dispatch, threading, a pass over the data) plus a compute-bound part (multiply-adds) and a
memory-bound part (elements read and written), at rates that depend on the kind of kernel: a
depthwise 5x5 moves the same data as a 1x1 convolution but does far less work per element. So the
census counts, per kernel kind, ``count``, ``madds`` and ``elems`` (input + output + weight
elements), the features of nn-Meter's kernel-level predictors, summed over the network.

The census runs the model's inference form (MobileOne folded, as exported) on the meta device
under a dispatch mode that sees every ATen operator with its shapes: residual adds and
squeeze-excite gates count like the convolutions do, for any space, without per-space code.
Operators ONNX Runtime folds away or that move no data are left out: batch norm (folded into the
preceding convolution at inference), views and allocations.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from torch import nn

__all__ = ["CENSUS_STATS", "conv_kind", "op_census"]

#: The statistics kept per kernel kind; a feature is named ``"<kind>.<stat>"``.
CENSUS_STATS = ("count", "madds", "elems")

# Operators that are free at inference: folded into a convolution (batch norm), metadata only
# (views), or allocations the runtime does once.
_FREE = frozenset({
    "native_batch_norm", "_native_batch_norm_legit_no_training", "batch_norm", "view", "_unsafe_view", "reshape",
    "t", "transpose", "permute", "expand", "unsqueeze", "squeeze", "flatten", "alias", "detach", "empty",
    "empty_like", "zeros", "zeros_like", "ones", "full", "new_empty", "new_zeros", "slice", "select", "split",
    "split_with_sizes", "unbind", "_to_copy", "lift_fresh", "as_strided",
})
# Matrix products: one kernel, multiply-adds = M * N * K.
_MATMUL = frozenset({"addmm", "mm", "bmm", "linear"})
# Activations that appear under other names (relu6 is hardtanh(0, 6)).
_RENAME = {"hardtanh": "relu6", "clamp": "relu6", "gelu": "gelu", "_softmax": "softmax"}


def conv_kind(weight_shape: Sequence[int], groups: int, stride: Sequence[int]) -> str:
    """The kernel kind of a 2-D convolution: ``pw`` (1x1), ``dw3`` / ``dw5s2`` (depthwise, kernel,
    stride 2 marked), ``gconv3`` (grouped), ``conv3s2`` (dense k x k)."""
    per_group, kh = int(weight_shape[1]), int(weight_shape[2])
    strided = "s2" if any(int(s) > 1 for s in stride) else ""
    if groups > 1 and per_group == 1:
        return f"dw{kh}{strided}"
    if groups > 1:
        return f"gconv{kh}{strided}"
    return "pw" if kh == 1 and not strided else f"conv{kh}{strided}"


def _numel(shape: Sequence[int]) -> int:
    return math.prod(int(d) for d in shape)


def _record(census: dict[str, float], kind: str, *, madds: int, elems: int) -> None:
    census[f"{kind}.count"] = census.get(f"{kind}.count", 0.0) + 1.0
    census[f"{kind}.madds"] = census.get(f"{kind}.madds", 0.0) + float(madds)
    census[f"{kind}.elems"] = census.get(f"{kind}.elems", 0.0) + float(elems)


def _tensor_shapes(values: Any) -> list[tuple[int, ...]]:
    import torch

    out: list[tuple[int, ...]] = []
    for value in values if isinstance(values, (list, tuple)) else (values,):
        if isinstance(value, torch.Tensor):
            out.append(tuple(value.shape))
        elif isinstance(value, (list, tuple)):
            out.extend(_tensor_shapes(value))
    return out


def _count_op(census: dict[str, float], name: str, args: tuple, out: Any) -> None:
    """Add one dispatched operator to ``census``."""
    if name in _FREE:
        return
    outs = _tensor_shapes(out)
    out_elems = sum(_numel(s) for s in outs)
    if name == "convolution":
        x, weight, stride, groups = args[0], args[1], args[3], int(args[8])
        macs = out_elems * int(weight.shape[1]) * int(weight.shape[2]) * int(weight.shape[3])
        _record(census, conv_kind(weight.shape, groups, stride), madds=macs,
                elems=_numel(x.shape) + out_elems + _numel(weight.shape))
        return
    ins = _tensor_shapes(args)
    if name in _MATMUL:
        a, b = ins[-2], ins[-1]  # addmm(bias, a, b): the last two are the factors
        _record(census, "linear", madds=_numel(a[:-1]) * int(a[-1]) * int(b[-1]), elems=sum(map(_numel, ins)) + out_elems)
        return
    _record(census, _RENAME.get(name, name), madds=0, elems=sum(_numel(s) for s in ins) + out_elems)


def op_census(module: nn.Module, input_shape: Sequence[int]) -> dict[str, float]:
    """Per kernel kind, ``count``, ``madds`` and ``elems`` of one inference of ``module``.

    Args:
        module: A stand-alone model (on the meta device for speed, or any device); it is counted in its
            inference form (see :func:`~spaces.counting.inference_form`), in eval mode, without autograd.
        input_shape: The full input shape, batch first.

    Returns:
        ``{"<kind>.<stat>": value}`` for every kind that ran; the ``madds`` of the convolution and
        linear kinds sum to :func:`~spaces.counting.count_madds`.
    """
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from .counting import evaluating, inference_form

    census: dict[str, float] = {}

    class _Census(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
            out = func(*args, **(kwargs or {}))
            _count_op(census, func.overloadpacket.__name__, args, out)
            return out

    module = inference_form(module)
    with evaluating(module) as device, torch.no_grad(), _Census():
        module(torch.zeros(tuple(int(d) for d in input_shape), device=device))
    return census
