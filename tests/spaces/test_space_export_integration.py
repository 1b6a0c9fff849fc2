"""ONNX export of every registered space's models, checked against ONNX Runtime."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from spaces import SPACES, SearchSpace, export_onnx, onnx_parity
from spaces.export import OPSET

pytestmark = pytest.mark.integration


@pytest.fixture(params=SPACES.names())
def space(request: pytest.FixtureRequest) -> SearchSpace:
    cls = SPACES.get(request.param)
    return cls(**getattr(cls, "small_settings", dict)())


def trained_bn(model: torch.nn.Module, space: SearchSpace) -> torch.nn.Module:
    """Move BN running stats off their 0 / 1 init so that constant folding of BN is really exercised."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(2):
            model.train()(torch.randn(4, *space.input_shape[1:], generator=generator))
    return model


def test_onnx_export_matches_onnxruntime(space: SearchSpace) -> None:
    for seed, encoding in enumerate([space.sample(np.random.default_rng(s)) for s in range(2)]):
        model = trained_bn(space.build(encoding), space)
        data = export_onnx(model, space.input_shape)
        assert model.training  # the caller's mode is restored
        assert onnx_parity(model, data, space.input_shape, seed=seed) < 1e-4


def test_onnx_graph_interface(space: SearchSpace, tmp_path: Path) -> None:
    model = space.build(space.default_encoding())
    path = tmp_path / "model.onnx"
    data = export_onnx(model, space.input_shape, path=path)
    assert path.read_bytes() == data
    graph = onnx.load_from_string(data)
    assert [i.name for i in graph.graph.input] == ["input"] and [o.name for o in graph.graph.output] == ["logits"]
    assert {op.version for op in graph.opset_import if op.domain in ("", "ai.onnx")} == {OPSET}
    dims = [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == list(space.input_shape)
    assert not any(node.op_type == "BatchNormalization" for node in graph.graph.node)  # folded into convs


def test_export_emits_no_deprecation_warning(space: SearchSpace, recwarn: pytest.WarningsRecorder) -> None:
    export_onnx(space.build(space.default_encoding()), space.input_shape)
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]
