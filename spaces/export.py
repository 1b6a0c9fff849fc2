"""ONNX export of stand-alone models, and a parity check against ONNX Runtime."""
from __future__ import annotations

import io
import os
import warnings
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # torch and the ONNX packages are imported on first use: `import spaces` stays light
    from torch import nn

__all__ = ["OPSET", "export_onnx", "onnx_parity", "output_names"]

#: The ONNX opset every hwnas export uses (HardSwish needs >= 14).
OPSET = 17


def export_onnx(module: nn.Module, input_shape: Sequence[int], path: str | os.PathLike[str] | None = None) -> bytes:
    """Export ``module`` in eval mode to a checked ONNX model with input ``input`` and output ``logits``.

    A module whose forward returns several tensors names them in an ``onnx_output_names`` attribute
    (a detector: ``boxes``, ``logits``); the graph's outputs get those names, in that order.

    Uses the TorchScript-based exporter (``dynamo=False``: the dynamo exporter needs onnxscript) at
    opset :data:`OPSET` with constant folding and a static input shape. The module's train/eval mode
    is restored afterwards. A re-parameterizable model (one with an ``inference_form()`` method, e.g.
    MobileOne) is exported in that folded form.

    Args:
        module: A stand-alone model taking one ``float32`` tensor.
        input_shape: The full static input shape, e.g. ``(1, 3, 224, 224)``.
        path: Where to also write the model; parent directories must exist.

    Returns:
        The serialised ONNX model.
    """
    import onnx
    import torch

    from .counting import evaluating, inference_form

    buffer = io.BytesIO()
    with evaluating(module) as device, warnings.catch_warnings():
        # torch warns that the TorchScript exporter is deprecated; it is chosen on purpose (see above).
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            inference_form(module), (torch.zeros(tuple(input_shape), device=device),), buffer, dynamo=False,
            opset_version=OPSET, input_names=["input"], output_names=list(output_names(module)),
            do_constant_folding=True,
        )  # fmt: skip
    data = buffer.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    if path is not None:
        with open(path, "wb") as fh:
            fh.write(data)
    return data


def onnx_parity(module: nn.Module, onnx_bytes: bytes, input_shape: Sequence[int], seed: int) -> float:
    """Max relative difference between ``module`` (eval mode) and ONNX Runtime on one seeded input.

    The input is standard normal from a generator seeded with ``seed``. The difference is
    ``max |torch - onnx| / max |torch|``: relative to the output's scale, so that near-zero logits
    do not blow it up.
    """
    import numpy as np
    import onnxruntime as ort
    import torch

    from .counting import evaluating

    generator = torch.Generator().manual_seed(int(seed))
    x = torch.randn(tuple(input_shape), generator=generator)
    with evaluating(module) as device, torch.no_grad():
        outputs = module(x.to(device))
    expected = [t.cpu().numpy() for t in (outputs if isinstance(outputs, (tuple, list)) else (outputs,))]
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    actual = session.run(list(output_names(module)), {"input": x.numpy()})
    if len(actual) != len(expected):
        raise ValueError(f"the ONNX graph has {len(actual)} outputs, the module returns {len(expected)}")
    worst = 0.0
    for want, got in zip(expected, actual):
        scale = max(float(np.abs(want).max()), np.finfo(np.float32).tiny)
        worst = max(worst, float(np.abs(want - got).max() / scale))
    return worst


def output_names(module: nn.Module) -> tuple[str, ...]:
    """The names of ``module``'s outputs in an exported graph: ``onnx_output_names`` or ``("logits",)``."""
    return tuple(getattr(module, "onnx_output_names", ("logits",)))
