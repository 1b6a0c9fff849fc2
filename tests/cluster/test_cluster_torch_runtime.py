"""The cuda-torch runtime on CPU: the ONNX interpreter matches ONNX Runtime, refusals, and CPU timing."""
from __future__ import annotations

import ast
import io
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from cluster.measure import LatencyStats, MeasureOptions
from cluster.torch_runtime import (
    SUPPORTED_OPS,
    measure_torch,
    onnx_to_torch,
    require_torch_device,
    torch_runtime_string,
)
from core.errors import DeviceError
from spaces import export_onnx, get_space
from spaces.presets import PRESETS
from trainers.detection import deployable

ROOT = Path(__file__).resolve().parents[2]
FAST = MeasureOptions(warmup=1, min_runs=5, max_runs=10, min_time_s=0.0)
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="tests the refusal on a node without CUDA")


def _relative_error(onnx_bytes: bytes, shape: tuple[int, ...]) -> list[float]:
    """Per output, max |torch - ORT| / max |ORT| (spaces.export.onnx_parity's convention)."""
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})
    with torch.inference_mode():
        got = onnx_to_torch(onnx_bytes)(torch.from_numpy(x))
    got = got if isinstance(got, tuple) else (got,)
    assert [g.shape for g in got] == [e.shape for e in expected]
    return [float(np.abs(e - g.numpy()).max() / max(np.abs(e).max(), 1e-30)) for e, g in zip(expected, got)]


def _preset(name: str, input_size: int = 64) -> tuple[bytes, tuple[int, ...]]:
    """A preset at a small input (the weights do not depend on it): a fast export, the same graph."""
    space_name, text, settings = PRESETS[name]
    space = get_space(space_name, **{**dict(settings), "input_size": input_size})
    torch.manual_seed(0)
    return export_onnx(space.build(space.parse(text)), space.input_shape), space.input_shape


@pytest.fixture(scope="module")
def detector() -> tuple[bytes, tuple[int, ...]]:
    """A sampled MobileDet exported as deployed: box decoding in the graph, outputs boxes and scores."""
    settings = {**get_space("mobiledet").small_detection_settings(), "input_size": 64, "stem_stride": 2,
                "num_classes": 4}
    space = get_space("mobiledet", **settings)
    torch.manual_seed(0)
    model = space.build(space.sample(np.random.default_rng(0)))
    return export_onnx(deployable(space, model), space.input_shape), space.input_shape


@pytest.mark.parametrize("preset", ["mobilenet-v2", "mobileone-s0", "moga-a", "mobilenet-edgetpu-v2-tiny",
                                    "mobilenet-v3-large"])
def test_matches_onnxruntime_on_exported_classifiers(preset: str) -> None:
    data, shape = _preset(preset)
    assert max(_relative_error(data, shape)) < 1e-4


def test_matches_onnxruntime_on_a_deployed_detector(detector) -> None:
    data, shape = detector
    ops = {node.op_type for node in onnx.load_from_string(data).graph.node}
    assert {"Transpose", "Reshape", "Concat", "Slice", "Exp", "Split", "Squeeze", "Unsqueeze", "Sub",
            "Softmax"} <= ops
    errors = _relative_error(data, shape)
    assert len(errors) == 2 and max(errors) < 1e-4  # boxes, scores


def _handmade() -> bytes:
    """A graph of the rarer cases: uneven pads, negative axes and indices, host shape arithmetic."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(np.asarray(value), name) for name, value in {
        "W": rng.standard_normal((6, 3, 3, 3)).astype(np.float32), "B": rng.standard_normal(6).astype(np.float32),
        "pick": np.array([5, 0, -1, 2]), "starts": np.array([1, 0]), "ends": np.array([2**63 - 1, -1]),
        "axes": np.array([-1, -2]), "steps": np.array([2, 1]), "unsq": np.array([-1, 0]),
        "pads": np.array([0, 0, 1, 0, 0, 0, 0, 2]), "pad_value": np.array(0.5, np.float32),
        "zero": np.array(0), "minus_one": np.array([-1]), "first": np.array([0]),
    }.items()]  # fmt: skip
    make = helper.make_node
    nodes = [
        make("Conv", ["input", "W", "B"], ["conv"], kernel_shape=[3, 3], pads=[0, 0, 1, 1], strides=[2, 2]),
        make("Gather", ["conv", "pick"], ["picked"], axis=1),
        make("Slice", ["picked", "starts", "ends", "axes", "steps"], ["sliced"]),
        make("Split", ["sliced"], ["a", "b"], axis=1),
        make("Sub", ["a", "b"], ["diff"]), make("Exp", ["diff"], ["e"]),
        make("Unsqueeze", ["e", "unsq"], ["u"]), make("Squeeze", ["u"], ["squeezed"]),
        make("Concat", ["a", "b"], ["joined"], axis=-1), make("Pad", ["joined", "pads", "pad_value"], ["padded"]),
        make("MaxPool", ["conv"], ["maxed"], kernel_shape=[2, 2], pads=[0, 0, 1, 1], strides=[2, 2]),
        make("AveragePool", ["conv"], ["averaged"], kernel_shape=[3, 3], pads=[1, 1, 0, 0], count_include_pad=1),
        make("Shape", ["conv"], ["shape"]), make("Gather", ["shape", "zero"], ["batch"]),
        make("Unsqueeze", ["batch", "first"], ["batch1"]),
        make("Concat", ["batch1", "minus_one"], ["flat_shape"], axis=0),
        make("Reshape", ["averaged", "flat_shape"], ["flat"]), make("Flatten", ["maxed"], ["rows"], axis=-1),
    ]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in (
        ("squeezed", [2, 2, 3, 2]), ("padded", [2, 2, 4, 6]), ("maxed", [2, 6, 2, 2]), ("flat", [2, 54]),
        ("rows", [24, 2]))]
    graph = helper.make_graph(nodes, "handmade", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                [2, 3, 8, 8])], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


class _Ops(nn.Module):
    """BatchNormalization, Tanh, pools, Div, MatMul and a Reshape whose shape is computed on the host."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(3)
        self.bn.running_mean.normal_()
        self.bn.running_var.uniform_(0.5, 2.0)
        self.w = nn.Parameter(torch.randn(48, 5))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.tanh(self.bn(x))
        z = torch.sigmoid(F.max_pool2d(y, 3, 2, 1)) / (F.avg_pool2d(y, 2) + 3.0)
        return z.reshape(z.shape[0], -1) @ self.w, F.adaptive_avg_pool2d(z, 1)


def _unfolded_ops() -> bytes:
    torch.manual_seed(0)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Ops().eval(), (torch.zeros(2, 3, 8, 8),), buffer, dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["y", "g"], do_constant_folding=False)
    return buffer.getvalue()


def test_matches_onnxruntime_on_less_common_ops() -> None:
    for data in (_handmade(), _unfolded_ops()):
        assert max(_relative_error(data, (2, 3, 8, 8))) < 1e-5


def test_buffers_move_but_host_shapes_stay() -> None:
    module = onnx_to_torch(_handmade()).half()
    assert {b.dtype for b in module.buffers()} == {torch.float16}  # weights follow .half() / .to()
    assert all(not t.is_floating_point() for t in module._host_values.values())


def test_unsupported_ops_are_all_named_at_load() -> None:
    nodes = [helper.make_node("Erf", ["input"], ["e"]), helper.make_node("Cos", ["e"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    with pytest.raises(DeviceError, match="Erf, Cos") as caught:
        onnx_to_torch(data)
    assert "HINT" in str(caught.value) and "Conv" in str(caught.value)
    assert "Erf" not in SUPPORTED_OPS


def _single(node: onnx.NodeProto, inits: dict[str, np.ndarray], elem: int = TensorProto.FLOAT) -> bytes:
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("input", elem, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", elem, None)],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_models_it_cannot_load_or_run_are_refused() -> None:
    with pytest.raises(DeviceError, match="cannot parse"):
        onnx_to_torch(b"not a model")
    with pytest.raises(DeviceError, match="float32"):
        onnx_to_torch(_single(helper.make_node("Identity", ["input"], ["y"]), {}, TensorProto.INT64))
    # Loads (the shape is a constant) but cannot run: the first run reports it.
    bad_reshape = _single(helper.make_node("Reshape", ["input", "s"], ["y"]), {"s": np.array([5, 7])})
    with pytest.raises(DeviceError, match="failed to run.*HINT"):
        measure_torch(bad_reshape, (1, 3, 4, 4), options=FAST, device="cpu")
    with pytest.raises(DeviceError, match="must fit"):
        measure_torch(bad_reshape, (1, 3, 8, 8), options=FAST, device="cpu")


def test_measure_on_cpu(detector) -> None:
    data, shape = detector
    threads = torch.get_num_threads()
    stats = measure_torch(data, shape, options=FAST, device="cpu")
    assert isinstance(stats, LatencyStats) and 5 <= stats.runs <= 10 and stats.median_ms > 0
    assert torch.get_num_threads() == threads  # restored


@NO_CUDA
def test_cuda_without_a_gpu_is_refused_with_a_hint(detector) -> None:
    data, shape = detector
    for call in (lambda: measure_torch(data, shape, options=FAST, device="cuda"),
                 lambda: require_torch_device("cuda"), lambda: torch_runtime_string("cuda")):
        with pytest.raises(DeviceError, match=r"no CUDA device.*HINT: .*device:cuda-torch"):
            call()


def test_bad_device_or_precision_is_refused(detector) -> None:
    data, shape = detector
    with pytest.raises(DeviceError, match="fp16 needs device cuda"):
        measure_torch(data, shape, options=FAST, device="cpu", precision="fp16")
    with pytest.raises(DeviceError, match="HINT"):
        measure_torch(data, shape, options=FAST, device="tpu")
    with pytest.raises(DeviceError, match="precision"):
        torch_runtime_string("cpu", "int8")


def test_runtime_string() -> None:
    name = torch_runtime_string("cpu")
    assert name.startswith("torch-") and name.endswith("-cpu") and torch.__version__ in name
    require_torch_device("cpu")


def test_loads_without_ray_onnxruntime_or_mlflow() -> None:
    """As on a GPU node that has only torch, numpy and onnx: nothing else at module level."""
    tree = ast.parse((ROOT / "cluster" / "torch_runtime.py").read_text(encoding="utf-8"))
    top = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    top |= {(node.module or "").split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert not top & {"ray", "mlflow", "onnxruntime", "torch", "onnx"}
    # The package imports its Ray-using modules lazily: the runtime, the service and the cost-model
    # calibration load without Ray, as on the lent GPU machine.
    script = ("import sys; sys.modules.update(ray=None, mlflow=None, onnxruntime=None, pymoo=None); "
              "import cluster.torch_runtime as t; assert 'torch' not in sys.modules; "
              "import cluster.service, cluster.calibration, cluster.devices; print(t.SUPPORTED_OPS[0])")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
