"""The cost-model contract on real ONNX Runtime measurements, for every registered kind."""
from __future__ import annotations

from cluster.testing import cost_model_kind, test_contract_on_onnx_runtime  # noqa: F401
