"""Timing an exported ONNX model with PyTorch: the ``cuda-torch`` device's measurement.

Some GPU machines have PyTorch but no ``onnxruntime-gpu`` wheel (a new CUDA, a new GPU, a locked-down
image), so :mod:`cluster.measure` cannot time there. :func:`onnx_to_torch` turns the bytes that
``spaces.export_onnx`` writes back into a ``torch.nn.Module``: a small interpreter of the graph's ops
(:data:`SUPPORTED_OPS`), so what is timed is the exported graph itself, the same one every other device
times, not the model's Python source. :func:`measure_torch` times it like :func:`cluster.measure.measure_onnx`
(warm-up, rounds of single inferences, extra rounds while unstable, the most stable round kept). On a
GPU the forward is captured once into a CUDA graph and each timed run is a replay bracketed by CUDA
events: that measures the GPU executing the model's kernels back to back, as a deployed engine
(TensorRT, ONNX Runtime with CUDA graphs) runs it, not the Python interpreter dispatching ops, which
would dominate small models and vary with the host CPU. :func:`torch_runtime_string` names the
runtime for cache keys. Only ``torch`` and ``onnx`` are needed, and only when called; nothing here
imports Ray, MLflow or ONNX Runtime.
"""
from __future__ import annotations

import contextlib
import functools
import gc
import logging
import math
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from core.errors import DeviceError
from core.validation import check_int, invalid

from .stats import LatencyStats, MeasureOptions, best_round, check_input_shape, check_options

if TYPE_CHECKING:  # torch and onnx are imported on first use: importing this module stays light
    import torch

__all__ = [
    "SUPPORTED_OPS",
    "measure_torch",
    "onnx_to_torch",
    "require_torch_device",
    "torch_runtime_string",
]

_log = logging.getLogger(__name__)

_DEVICES = ("cuda", "cpu")
_PRECISIONS = ("fp32", "fp16")
_ORT_HINT = "measure that model with an ONNX Runtime device (e.g. `cuda` with onnxruntime-gpu)"
_EXPORT_HINT = "export it with spaces.export_onnx (static input shape, constant folding)"
# Slice bounds beyond this are "to the end"; torch warns about (and truncates) INT64_MAX itself.
_BIG = 2**62

# A step of the compiled graph: fn(*runtime inputs) -> output (a tuple when there are several),
# the names of its runtime inputs, its outputs, and the values no later step reads.
_Step = tuple[Callable[..., Any], tuple[str, ...], tuple[str, ...], tuple[str, ...]]


# ----------------------------------------------------------------------------- the graph's nodes


class _Node:
    """One ONNX node as an op builder sees it: Python attribute values, constant inputs readable now."""

    def __init__(self, node: Any, static: dict[str, np.ndarray], opset: int) -> None:
        from onnx import helper, numpy_helper

        self.op = node.op_type
        self.name = node.name or node.output[0]
        self.inputs = list(node.input)
        self.outputs = list(node.output)
        self.opset = opset
        self._static = static
        self.attrs: dict[str, Any] = {}
        for attribute in node.attribute:
            value = helper.get_attribute_value(attribute)
            if isinstance(value, bytes):
                value = value.decode()
            elif hasattr(value, "raw_data"):  # a TensorProto (Constant's value)
                value = numpy_helper.to_array(value)
            self.attrs[attribute.name] = value

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def has(self, index: int) -> bool:
        """Whether optional input ``index`` is given (an empty name means absent)."""
        return index < len(self.inputs) and self.inputs[index] != ""

    def const(self, index: int) -> np.ndarray | None:
        """Input ``index``'s value if it is a constant or initializer, else None."""
        return self._static.get(self.inputs[index]) if self.has(index) else None

    def ints(self, index: int) -> list[int] | None:
        """Input ``index`` as Python ints (None when absent); it must be a constant."""
        value = self._required(index)
        return None if value is None else [int(v) for v in value.reshape(-1)]

    def scalar(self, index: int) -> float | None:
        """Input ``index`` as one Python number (None when absent); it must be a constant."""
        value = self._required(index)
        return None if value is None else value.reshape(-1)[0].item()

    def _required(self, index: int) -> np.ndarray | None:
        if not self.has(index):
            return None
        value = self.const(index)
        if value is None:
            raise self.fail(f"its input {index} ({self.inputs[index]!r}) must be a constant or initializer, "
                            "as the cuda-torch runtime reads shapes and axes when it loads the model", _EXPORT_HINT)
        return value

    def fail(self, rule: str, hint: str) -> DeviceError:
        return DeviceError(f"The {self.op} node {self.name!r} cannot run on the cuda-torch runtime: {rule}. "
                           f"HINT: {hint}.")


def _torch_pads(pads: Sequence[int]) -> tuple[int, ...]:
    """ONNX pads ``[b1, ..., bn, e1, ..., en]`` (the last n dims) in F.pad's order, last dim first."""
    n = len(pads) // 2
    order = [v for i in reversed(range(n)) for v in (pads[i], pads[n + i])]
    while len(order) > 2 and order[-1] == 0 and order[-2] == 0:  # untouched leading dims
        order = order[:-2]
    return tuple(int(v) for v in order)


def _window(node: _Node, rank: int) -> tuple[list[int], list[int], tuple[int, ...], tuple[int, ...] | None]:
    """Strides, dilations, symmetric padding and (for asymmetric pads) an F.pad tuple of a conv or pool."""
    if node.attr("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise node.fail(f"auto_pad {node.attr('auto_pad')} is not supported", "export with explicit pads "
                        "(the TorchScript exporter writes them)")
    strides = list(node.attr("strides", [1] * rank))
    dilations = list(node.attr("dilations", [1] * rank))
    pads = list(node.attr("pads", [0] * (2 * rank)))
    if pads[:rank] == pads[rank:]:
        return strides, dilations, tuple(pads[:rank]), None
    # torch convolutions and pools pad symmetrically; uneven pads go in an explicit F.pad first.
    return strides, dilations, (0,) * rank, _torch_pads(pads)


# ----------------------------------------------------------------------------- op builders
# Each takes a _Node and returns (fn, names of the runtime inputs fn takes, in order).


def _unary(fn_name: str) -> Callable[[_Node], tuple[Callable[..., Any], list[str]]]:
    def build(node: _Node) -> tuple[Callable[..., Any], list[str]]:
        import torch
        import torch.nn.functional as F

        fn = getattr(torch, fn_name, None) or getattr(F, fn_name)  # F.sigmoid and F.tanh are deprecated
        return fn, node.inputs[:1]

    return build


def _binary(fn_name: str) -> Callable[[_Node], tuple[Callable[..., Any], list[str]]]:
    def build(node: _Node) -> tuple[Callable[..., Any], list[str]]:
        import torch

        return getattr(torch, fn_name), node.inputs[:2]

    return build


def _identity(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    return (lambda t: t), node.inputs[:1]


def _div(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    import torch

    def div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # ONNX integer division truncates; torch's `/` would promote to float.
        return torch.div(a, b) if a.is_floating_point() else torch.div(a, b, rounding_mode="trunc")

    return div, node.inputs[:2]


def _conv(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    import torch.nn.functional as F

    weight = node.const(1)
    kernel = node.attr("kernel_shape") or (weight.shape[2:] if weight is not None else None)
    if not kernel or len(kernel) > 3:
        raise node.fail("it needs a kernel_shape attribute or a constant weight, of 1 to 3 spatial dims",
                        _EXPORT_HINT)
    conv = (F.conv1d, F.conv2d, F.conv3d)[len(kernel) - 1]
    strides, dilations, padding, pre = _window(node, len(kernel))
    group = int(node.attr("group", 1))
    if pre is None:
        def fn(x: Any, w: Any, b: Any = None) -> Any:
            return conv(x, w, b, strides, padding, dilations, group)
    else:
        def fn(x: Any, w: Any, b: Any = None) -> Any:
            return conv(F.pad(x, pre), w, b, strides, 0, dilations, group)
    return fn, [name for name in node.inputs[:3] if name]


def _max_pool(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    import torch.nn.functional as F

    if len(node.outputs) > 1 and node.outputs[1]:
        raise node.fail("its Indices output is not supported", _ORT_HINT)
    kernel = list(node.attr("kernel_shape", []))
    if not 1 <= len(kernel) <= 3:
        raise node.fail(f"kernel_shape must have 1 to 3 dims, got {kernel}", _ORT_HINT)
    pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[len(kernel) - 1]
    strides, dilations, padding, pre = _window(node, len(kernel))
    ceil = bool(node.attr("ceil_mode", 0))
    if pre is None:
        return (lambda x: pool(x, kernel, strides, padding, dilations, ceil)), node.inputs[:1]
    return (lambda x: pool(F.pad(x, pre, value=-math.inf), kernel, strides, 0, dilations, ceil)), node.inputs[:1]


def _avg_pool(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    import torch.nn.functional as F

    kernel = list(node.attr("kernel_shape", []))
    if not 1 <= len(kernel) <= 3:
        raise node.fail(f"kernel_shape must have 1 to 3 dims, got {kernel}", _ORT_HINT)
    pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[len(kernel) - 1]
    strides, dilations, padding, pre = _window(node, len(kernel))
    ceil, include = bool(node.attr("ceil_mode", 0)), bool(node.attr("count_include_pad", 0))
    if any(d != 1 for d in dilations):
        raise node.fail("dilated average pooling is not supported", _ORT_HINT)
    if pre is None:
        return (lambda x: pool(x, kernel, strides, padding, ceil, include)), node.inputs[:1]
    if not include:  # explicit zeros from F.pad would be counted in the average
        raise node.fail("uneven pads with count_include_pad=0 are not supported", _ORT_HINT)
    return (lambda x: pool(F.pad(x, pre), kernel, strides, 0, ceil, True)), node.inputs[:1]


def _global_average_pool(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    return (lambda x: x.mean(tuple(range(2, x.dim())), keepdim=True)), node.inputs[:1]


def _batch_norm(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    import torch.nn.functional as F

    if node.attr("training_mode", 0) or any(node.outputs[1:]):
        raise node.fail("only inference mode (one output, training_mode=0) is supported", _EXPORT_HINT)
    eps = float(node.attr("epsilon", 1e-5))

    def batch_norm(x: Any, scale: Any, bias: Any, mean: Any, var: Any) -> Any:
        return F.batch_norm(x, mean, var, scale, bias, False, 0.0, eps)

    return batch_norm, node.inputs[:5]


def _gemm(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    import torch.nn.functional as F

    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    trans_a, trans_b = bool(node.attr("transA", 0)), bool(node.attr("transB", 0))
    names = [name for name in node.inputs[:3] if name]
    bias = node.const(2)
    if alpha == 1.0 and beta == 1.0 and not trans_a and trans_b and (len(names) == 2 or bias is not None
                                                                     and bias.ndim == 1):
        return F.linear, names  # the exported classifier: one fused addmm

    def gemm(a: Any, b: Any, c: Any = None) -> Any:
        y = (a.t() if trans_a else a) @ (b.t() if trans_b else b)
        y = y * alpha if alpha != 1.0 else y
        return y if c is None else y + (c * beta if beta != 1.0 else c)

    return gemm, names


def _hard_sigmoid(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    import torch
    import torch.nn.functional as F

    alpha, beta = float(node.attr("alpha", 0.2)), float(node.attr("beta", 0.5))
    if math.isclose(alpha, 1 / 6, rel_tol=1e-6) and beta == 0.5:
        return F.hardsigmoid, node.inputs[:1]  # PyTorch's own (fused) kernel
    return (lambda x: torch.clamp(x * alpha + beta, 0.0, 1.0)), node.inputs[:1]


def _clip(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    import torch

    if node.opset < 11:
        low, high = node.attr("min"), node.attr("max")
    else:  # bounds are optional inputs; reading them now keeps them off the GPU and out of forward
        low, high = node.scalar(1), node.scalar(2)
    if low is None and high is None:
        return _identity(node)
    return (lambda x: torch.clamp(x, low, high)), node.inputs[:1]


def _reduce_mean(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    import torch

    axes = node.ints(1) if node.has(1) else node.attr("axes")
    keep = bool(node.attr("keepdims", 1))
    if axes:
        dims = tuple(axes)
        return (lambda x: torch.mean(x, dims, keep)), node.inputs[:1]
    if node.attr("noop_with_empty_axes", 0):
        return _identity(node)
    return (lambda x: torch.mean(x, tuple(range(x.dim())), keep)), node.inputs[:1]


def _softmax(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    import torch

    if node.opset >= 13:
        axis = int(node.attr("axis", -1))
        return (lambda x: torch.softmax(x, axis)), node.inputs[:1]
    axis = int(node.attr("axis", 1))  # before opset 13: softmax of the input flattened to 2-D at axis

    def softmax(x: Any) -> Any:
        a = axis % x.dim()
        return torch.softmax(x.reshape(math.prod(x.shape[:a]), -1), 1).reshape(x.shape)

    return softmax, node.inputs[:1]


def _flatten(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    axis = int(node.attr("axis", 1))
    if axis == 1:
        return (lambda x: x.reshape(x.shape[0], -1)), node.inputs[:1]
    return (lambda x: x.reshape(math.prod(x.shape[: axis if axis >= 0 else axis + x.dim()]), -1)), node.inputs[:1]


def _transpose(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    perm = node.attr("perm")
    if perm is None:
        return (lambda x: x.permute(*reversed(range(x.dim())))), node.inputs[:1]
    perm = tuple(perm)
    return (lambda x: x.permute(perm)), node.inputs[:1]


def _reshape(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    allowzero = bool(node.attr("allowzero", 0))

    def dims_of(x: Any, shape: Sequence[int]) -> list[int]:
        return [x.shape[i] if d == 0 and not allowzero else d for i, d in enumerate(shape)]

    if node.const(1) is None:  # computed by Shape/Gather/Concat on the host: read at run time
        return (lambda x, s: x.reshape(dims_of(x, s.tolist()))), node.inputs[:2]
    shape = node.ints(1) or []
    if allowzero or 0 not in shape:
        fixed = tuple(shape)
        return (lambda x: x.reshape(fixed)), node.inputs[:1]
    return (lambda x: x.reshape(dims_of(x, shape))), node.inputs[:1]


def _concat(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    import torch

    axis = int(node.attr("axis"))
    return (lambda *ts: torch.cat(ts, axis)), [name for name in node.inputs if name]


def _slice(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    if node.opset < 10:
        starts, ends, axes, steps = node.attr("starts"), node.attr("ends"), node.attr("axes"), None
    else:
        starts, ends, axes, steps = node.ints(1), node.ints(2), node.ints(3), node.ints(4)
    axes = list(axes) if axes is not None else list(range(len(starts)))
    steps = list(steps) if steps is not None else [1] * len(starts)
    if any(step < 1 for step in steps):
        raise node.fail(f"only positive steps are supported, got {steps}", _ORT_HINT)
    bound = lambda v: max(min(v, _BIG), -_BIG)  # noqa: E731
    slices = {a: slice(bound(s), bound(e), st) for a, s, e, st in zip(axes, starts, ends, steps)}
    if all(a >= 0 for a in slices):
        index = tuple(slices.get(i, slice(None)) for i in range(max(slices) + 1))
        return (lambda x: x[index]), node.inputs[:1]
    if all(a < 0 for a in slices):  # counted from the end: the Ellipsis stands for the leading dims
        index = (Ellipsis,) + tuple(slices.get(i, slice(None)) for i in range(min(slices), 0))
        return (lambda x: x[index]), node.inputs[:1]

    def mixed(x: Any) -> Any:
        full = [slice(None)] * x.dim()
        for a, s in slices.items():
            full[a % x.dim()] = s
        return x[tuple(full)]

    return mixed, node.inputs[:1]


def _split(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    import torch

    axis = int(node.attr("axis", 0))
    sizes = node.ints(1) if node.has(1) else node.attr("split")
    if sizes:
        sizes = list(sizes)
        return (lambda x: torch.split(x, sizes, axis)), node.inputs[:1]
    parts = int(node.attr("num_outputs", len(node.outputs)))
    # Equal parts of ceil(d / parts), the last one smaller: ONNX's rule and torch.split's.
    return (lambda x: torch.split(x, -(-x.shape[axis] // parts), axis)), node.inputs[:1]


def _squeeze(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    axes = node.ints(1) if node.has(1) else node.attr("axes")
    if not axes:
        return (lambda x: x.squeeze()), node.inputs[:1]
    dims = tuple(axes)
    return (lambda x: x.squeeze(dims)), node.inputs[:1]


def _unsqueeze(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    axes = node.ints(1) if node.has(1) else node.attr("axes")
    if len(axes) == 1:  # torch counts a negative dim against the output rank, as ONNX does
        (dim,) = axes
        return (lambda x: x.unsqueeze(dim)), node.inputs[:1]

    def unsqueeze(x: Any) -> Any:
        rank = x.dim() + len(axes)
        for dim in sorted(a % rank for a in axes):
            x = x.unsqueeze(dim)
        return x

    return unsqueeze, node.inputs[:1]


def _pad(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    import torch.nn.functional as F

    if node.attr("mode", "constant") != "constant":
        raise node.fail(f"only mode 'constant' is supported, got {node.attr('mode')!r}", _ORT_HINT)
    if node.opset < 11:
        pads, value, axes = node.attr("pads"), float(node.attr("value", 0.0)), None
    else:
        pads, value, axes = node.ints(1), node.scalar(2) or 0.0, node.ints(3)
    if axes is None:
        order = _torch_pads(pads)
        return (lambda x: F.pad(x, order, value=value)), node.inputs[:1]

    def pad(x: Any) -> Any:
        rank, full = x.dim(), [0] * (2 * x.dim())
        for k, a in enumerate(axes):
            full[a % rank], full[rank + a % rank] = pads[k], pads[len(axes) + k]
        return F.pad(x, _torch_pads(full), value=value)

    return pad, node.inputs[:1]


def _shape(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    import torch

    start, end = node.attr("start", 0), node.attr("end")
    # On the host, like ORT's shape ops: later Gather/Concat/Reshape read it without a device sync.
    return (lambda x: torch.tensor(x.shape[start:end], dtype=torch.int64)), node.inputs[:1]


def _take(x: Any, index: Any, axis: int) -> Any:
    import torch

    a = axis % x.dim()
    flat = torch.where(index < 0, index + x.shape[a], index).reshape(-1)
    return torch.index_select(x, a, flat).reshape(x.shape[:a] + index.shape + x.shape[a + 1:])


def _gather(node: _Node) -> tuple[Callable[..., Any], list[str]]:
    import torch

    axis = int(node.attr("axis", 0))
    indices = node.const(1)
    if indices is None:
        return (lambda x, i: _take(x, i.to(x.device), axis)), node.inputs[:2]
    if indices.ndim == 0:
        position = int(indices)
        return (lambda x: x.select(axis, position)), node.inputs[:1]
    on_device: dict[Any, Any] = {}  # the indices, copied once per device (never inside a CUDA graph capture)

    def gather(x: Any) -> Any:
        index = on_device.get(x.device)
        if index is None:
            index = on_device[x.device] = torch.from_numpy(indices.astype(np.int64)).to(x.device)
        return _take(x, index, axis)

    return gather, node.inputs[:1]


_BUILDERS: dict[str, Callable[[_Node], tuple[Callable[..., Any], list[str]]]] = {
    "Identity": _identity, "Conv": _conv, "HardSwish": _unary("hardswish"), "Relu": _unary("relu"),
    "Add": _binary("add"), "Sub": _binary("sub"), "Mul": _binary("mul"), "Div": _div,
    "MatMul": _binary("matmul"), "ReduceMean": _reduce_mean, "HardSigmoid": _hard_sigmoid,
    "Flatten": _flatten, "Gemm": _gemm, "Clip": _clip, "Sigmoid": _unary("sigmoid"), "Tanh": _unary("tanh"),
    "Exp": _unary("exp"), "Transpose": _transpose, "Reshape": _reshape, "Concat": _concat, "Slice": _slice,
    "Split": _split, "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Softmax": _softmax,
    "BatchNormalization": _batch_norm, "GlobalAveragePool": _global_average_pool, "AveragePool": _avg_pool,
    "MaxPool": _max_pool, "Pad": _pad, "Shape": _shape, "Gather": _gather,
}  # fmt: skip

#: The ONNX ops (default domain) :func:`onnx_to_torch` can run.
SUPPORTED_OPS: tuple[str, ...] = tuple(sorted([*_BUILDERS, "Constant"]))


# ----------------------------------------------------------------------------- the graph


def onnx_to_torch(onnx_bytes: bytes) -> torch.nn.Module:
    """A ``torch.nn.Module`` that runs the ONNX model ``onnx_bytes`` with PyTorch ops.

    Initializers and float constants become buffers (``.to(device)`` and ``.half()`` move them);
    integer constants stay on the host as shapes do. Shapes, axes, pads and clip bounds are read
    when the model is loaded, so ``forward(x)`` is a loop over precompiled steps. It returns one
    tensor when the graph has one output, else a tuple in the graph's output order.

    Raises:
        DeviceError: The bytes are not an ONNX model, it has other than one float input, it uses ops
            outside :data:`SUPPORTED_OPS` (all are named) or an attribute the interpreter lacks, or
            it needs a shape that is not a constant.
    """
    from onnx import numpy_helper

    model = _load(onnx_bytes)
    graph = model.graph
    _check_ops(graph)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    static = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    source, declared = _graph_input(graph, static)
    steps: list[tuple[Callable[..., Any], tuple[str, ...], tuple[str, ...]]] = []
    for proto in graph.node:
        node = _Node(proto, static, opset)
        if node.op == "Constant":
            static[node.outputs[0]] = _constant_value(node)
        elif node.op == "Identity" and node.inputs[0] in static:  # the exporter aliases initializers
            static[node.outputs[0]] = static[node.inputs[0]]
        else:
            fn, inputs = _BUILDERS[node.op](node)
            steps.append((fn, tuple(inputs), tuple(node.outputs)))
    outputs = tuple(o.name for o in graph.output)
    return _graph_module_class()(source, declared, _with_frees(steps, outputs), outputs, static)


def _load(onnx_bytes: bytes) -> Any:
    import onnx

    if not isinstance(onnx_bytes, (bytes, bytearray)) or not onnx_bytes:
        raise invalid("onnx_bytes", "must be a non-empty serialised ONNX model", onnx_bytes, _EXPORT_HINT,
                      error=DeviceError)
    try:
        return onnx.load_from_string(bytes(onnx_bytes))
    except Exception as exc:  # protobuf's DecodeError and friends share no useful base
        raise DeviceError(f"The cuda-torch runtime cannot parse the ONNX model ({len(onnx_bytes)} bytes): {exc}. "
                          f"HINT: {_EXPORT_HINT}.") from exc


def _check_ops(graph: Any) -> None:
    """Refuse a graph with any op the interpreter lacks, naming all of them at once."""
    missing: dict[str, None] = {}
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            missing[f"{node.domain}.{node.op_type}"] = None
        elif node.op_type not in SUPPORTED_OPS:
            missing[node.op_type] = None
    if missing:
        raise DeviceError(
            f"The model uses the ONNX op(s) {', '.join(missing)}, but the cuda-torch runtime supports only "
            f"{', '.join(SUPPORTED_OPS)}. HINT: {_ORT_HINT}."
        )


def _graph_input(graph: Any, static: dict[str, np.ndarray]) -> tuple[str, tuple[int | None, ...]]:
    """The one float input's name and declared dims (None where symbolic)."""
    from onnx import TensorProto

    inputs = [i for i in graph.input if i.name not in static]  # old exports list initializers as inputs
    if len(inputs) != 1:
        raise invalid("onnx_bytes", "must be a model with exactly one input (the latency service feeds one)",
                      [i.name for i in inputs], _EXPORT_HINT, error=DeviceError)
    (declared,) = inputs
    tensor = declared.type.tensor_type
    if tensor.elem_type != TensorProto.FLOAT:
        raise invalid(f"the model's input {declared.name!r}", "must be float32 (use precision fp16 for half)",
                      TensorProto.DataType.Name(tensor.elem_type), _EXPORT_HINT, error=DeviceError)
    dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
    return declared.name, dims


def _constant_value(node: _Node) -> np.ndarray:
    for name, dtype in (("value", None), ("value_float", np.float32), ("value_floats", np.float32),
                        ("value_int", np.int64), ("value_ints", np.int64)):
        if name in node.attrs:
            return np.asarray(node.attrs[name], dtype=dtype)
    raise node.fail(f"only numeric tensor values are supported, got attributes {sorted(node.attrs)}", _ORT_HINT)


def _with_frees(steps: list[tuple[Callable[..., Any], tuple[str, ...], tuple[str, ...]]],
                outputs: tuple[str, ...]) -> list[_Step]:
    """Each step with the values it reads for the last time: dropping them lets memory be reused."""
    last_use = {name: i for i, (_, inputs, _) in enumerate(steps) for name in inputs}
    frees: list[list[str]] = [[] for _ in steps]
    for name, i in last_use.items():
        if name not in outputs:
            frees[i].append(name)
    return [(fn, inputs, outs, tuple(free)) for (fn, inputs, outs), free in zip(steps, frees)]


@functools.lru_cache(maxsize=None)
def _graph_module_class() -> type:
    import torch

    class OnnxGraphModule(torch.nn.Module):
        """An ONNX graph run by PyTorch ops; built by :func:`onnx_to_torch`."""

        def __init__(self, source: str, declared: tuple[int | None, ...], steps: list[_Step],
                     outputs: tuple[str, ...], static: dict[str, np.ndarray]) -> None:
            super().__init__()
            self.input_name, self.input_dims = source, declared
            self._steps, self._outputs = steps, outputs
            needed = {name for _, inputs, _, _ in steps for name in inputs} | set(outputs)
            self._buffer_values: list[tuple[str, str]] = []  # (value name, buffer name)
            self._host_values: dict[str, torch.Tensor] = {}
            registered: dict[int, str] = {}  # aliases (Identity of an initializer) share one buffer
            for name in sorted(needed & set(static)):
                array = static[name]
                if np.issubdtype(array.dtype, np.floating):
                    if id(array) not in registered:
                        registered[id(array)] = f"c{len(registered)}"
                        self.register_buffer(registered[id(array)], torch.from_numpy(np.array(array)))
                    self._buffer_values.append((name, registered[id(array)]))
                else:  # integer constants are shape arithmetic: plain attributes, so .to() leaves them
                    self._host_values[name] = torch.from_numpy(np.array(array))

        def forward(self, x: torch.Tensor) -> Any:
            values = {name: self._buffers[buffer] for name, buffer in self._buffer_values}
            values.update(self._host_values)
            values[self.input_name] = x
            for fn, inputs, outs, frees in self._steps:
                result = fn(*[values[name] for name in inputs])
                if len(outs) == 1:
                    values[outs[0]] = result
                else:
                    values.update(zip(outs, result))
                for name in frees:
                    del values[name]
            if len(self._outputs) == 1:
                return values[self._outputs[0]]
            return tuple(values[name] for name in self._outputs)

    return OnnxGraphModule


# ----------------------------------------------------------------------------- measuring


def require_torch_device(device: str) -> None:
    """Check that this process's PyTorch can measure on ``device``; call it where the measurement runs.

    Raises:
        DeviceError: ``device`` is not ``cuda`` or ``cpu``, or it is ``cuda`` and PyTorch sees no GPU.
    """
    import torch

    _check_device(device)
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"PyTorch {torch.__version__} on this node has no CUDA device (torch.cuda.is_available() is "
            "False), so the cuda-torch runtime cannot measure here. HINT: run the cuda-torch device's "
            "latency actor on a node with a GPU (ray start ... --resources '{\"device:cuda-torch\": 1}') "
            "or use device cpu."
        )


def _check_device(device: str) -> None:
    if device not in _DEVICES:
        raise invalid("cuda-torch device", f"must be one of {', '.join(_DEVICES)}", device,
                      "use cuda for a GPU, cpu to time PyTorch on the host", error=DeviceError)


def _check_precision(device: str, precision: str) -> None:
    if precision not in _PRECISIONS:
        raise invalid("cuda-torch precision", f"must be one of {', '.join(_PRECISIONS)}", precision,
                      "use fp32, or fp16 on a GPU", error=DeviceError)
    if precision == "fp16" and device != "cuda":
        raise invalid("cuda-torch precision", f"fp16 needs device cuda (PyTorch's {device} kernels for half "
                      "are not what a deployment runs)", precision, "use precision fp32 on cpu", error=DeviceError)


def torch_runtime_string(device: str = "cuda", precision: str = "fp32") -> str:
    """Runtime identity for cache keys, e.g. ``"torch-2.11.0+cu130-cuda-NVIDIA_H200"``.

    Evaluated where the measurement runs: that node's PyTorch and GPU are the ones that count. A
    precision other than fp32 is appended (``...-fp16``) so fp16 timings never answer for fp32 ones.

    Raises:
        DeviceError: ``device`` or ``precision`` is unknown, or ``cuda`` is asked for without a GPU.
    """
    import torch

    _check_precision(device, precision)
    require_torch_device(device)
    if device == "cuda":
        base = f"torch-{torch.__version__}-cuda-{torch.cuda.get_device_name().replace(' ', '_')}"
    else:
        base = f"torch-{torch.__version__}-cpu"
    return base if precision == "fp32" else f"{base}-{precision}"


def measure_torch(
    onnx_bytes: bytes,
    input_shape: Sequence[int],
    *,
    options: MeasureOptions | None = None,
    device: str = "cuda",
    threads: int = 1,
    precision: str = "fp32",
    cuda_graph: bool = True,
) -> LatencyStats:
    """Measure the inference latency of an ONNX model run by PyTorch (:func:`onnx_to_torch`), in this process.

    The input is standard normal from ``options.seed``, as :func:`cluster.measure.model_input` draws
    it. After ``options.warmup`` untimed runs, rounds of single inferences are timed as
    :class:`MeasureOptions` says and the round with the lowest CV is returned. On ``cuda`` (with cuDNN
    autotuning) the forward is captured into a CUDA graph (eager if capture fails) and each run is
    timed with CUDA events; on ``cpu`` with :func:`time.perf_counter_ns` and ``threads`` threads.

    Args:
        onnx_bytes: A serialised ONNX model with exactly one float32 input.
        input_shape: Shape of that input, batch first.
        options: Measurement effort; ``None`` is ``MeasureOptions()``, the defaults.
        device: ``cuda`` or ``cpu``.
        threads: PyTorch intra-op threads on ``cpu``.
        precision: ``fp32``, or ``fp16`` (model and input in half; ``cuda`` only).
        cuda_graph: Time CUDA graph replays rather than eager forwards.

    Raises:
        DeviceError: The model cannot be loaded or run on an input of ``input_shape``, uses an
            unsupported op, or ``device``/``precision`` is unknown or unavailable here.
        ConfigError: ``options`` is not a :class:`MeasureOptions` or ``threads`` is not >= 1.
    """
    import torch

    options = check_options(options, where="measure_torch argument 'options'")
    check_int("measure_torch argument 'threads'", threads, minimum=1, hint="use 1 for a single-threaded measurement")
    _check_precision(device, precision)
    require_torch_device(device)
    shape = check_input_shape(input_shape)
    module = onnx_to_torch(onnx_bytes)
    _check_fits(module, shape)
    x = torch.from_numpy(np.random.default_rng(options.seed).standard_normal(shape, dtype=np.float32))
    module, x = module.eval().to(device), x.to(device)
    if precision == "fp16":
        module, x = module.half(), x.half()
    with torch.inference_mode(), _measuring(device, threads):
        run = _prepare(module, x, device, warmup=options.warmup, cuda_graph=cuda_graph)
        time_one = _cuda_timer(run) if device == "cuda" else _cpu_timer(run)
        return best_round(lambda: _time_round(time_one, options), options)


def _check_fits(module: Any, shape: tuple[int, ...]) -> None:
    declared = module.input_dims
    # Symbolic (None) dimensions accept any size; fixed ones must match.
    if len(declared) != len(shape) or any(want is not None and want != got for want, got in zip(declared, shape)):
        shown = [d if d is not None else "?" for d in declared]
        raise invalid("input_shape", f"must fit the model's input {module.input_name!r} of shape {shown}",
                      list(shape), "pass the shape the model was exported with", error=DeviceError)


@contextlib.contextmanager
def _measuring(device: str, threads: int) -> Iterator[None]:
    """The process-wide settings of a measurement, restored afterwards."""
    import torch

    if device == "cuda":
        # Autotuned conv algorithms, as TensorRT or ORT's exhaustive search would pick.
        was = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = True
        try:
            yield
        finally:
            torch.backends.cudnn.benchmark = was
    else:
        was = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(was)


def _prepare(module: Any, x: Any, device: str, *, warmup: int, cuda_graph: bool) -> Callable[[], Any]:
    """Warm up, surfacing a model that cannot run; the callable that the timed runs call."""
    def eager() -> Any:
        return module(x)

    _run_checked(eager, device, times=max(warmup, 1))
    if device != "cuda" or not cuda_graph:
        return eager
    replay = _capture(module, x)
    if replay is None:
        _run_checked(eager, device, times=1)  # a failed capture must leave eager runs working
        return eager
    return replay


def _run_checked(run: Callable[[], Any], device: str, *, times: int) -> None:
    import torch

    try:
        for _ in range(times):
            run()
        if device == "cuda":
            torch.cuda.synchronize()  # kernel errors are reported asynchronously
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DeviceError(f"PyTorch failed to run the model on {device}: {first.rstrip('.')}. "
                          f"HINT: check it with ONNX Runtime (cluster.measure.measure_onnx); if it runs "
                          f"there, {_ORT_HINT}.") from exc


def _capture(module: Any, x: Any) -> Callable[[], Any] | None:
    """The CUDA graph replay of ``module(x)``, or None when the forward cannot be captured."""
    import torch

    try:
        # Warm-up on a side stream before capture, as torch.cuda.graphs' documentation requires.
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                module(x)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            module(x)  # its outputs live in the graph's private pool, rewritten by each replay
        graph.replay()
        torch.cuda.synchronize()
    except Exception as exc:  # an op that syncs with the host cannot be captured: eager still measures it
        _log.warning("CUDA graph capture failed (%s: %s); timing eager forwards instead",
                     type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        return None
    return graph.replay


def _cuda_timer(run: Callable[[], Any]) -> Callable[[], float]:
    """One run's GPU time in nanoseconds, between CUDA events recorded around it."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def time_one() -> float:
        start.record()
        run()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * 1e6  # ms -> ns

    return time_one


def _cpu_timer(run: Callable[[], Any]) -> Callable[[], float]:
    def time_one() -> float:
        t0 = time.perf_counter_ns()
        run()
        return float(time.perf_counter_ns() - t0)

    return time_one


def _time_round(time_one: Callable[[], float], options: MeasureOptions) -> np.ndarray:
    """Per-run times in nanoseconds; bounded by ``max_runs`` whatever the clock says."""
    min_time_ns = int(options.min_time_s * 1e9)
    samples: list[float] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside a timed run is the harness's cost, not the model's
    try:
        start = time.perf_counter_ns()
        while len(samples) < options.max_runs:
            samples.append(time_one())
            if len(samples) >= options.min_runs and time.perf_counter_ns() - start >= min_time_ns:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return np.asarray(samples, dtype=np.float64)
