"""The search-space contract (:mod:`spaces.testing`), run for every registered space."""
from __future__ import annotations

import spaces
from spaces.testing import *  # noqa: F401,F403


def test_registry_is_not_empty() -> None:
    assert {"moga", "mobiledet", "mobilenet", "edgetpu", "mobileone"} <= set(spaces.SPACES.names())


def test_public_exports() -> None:
    for name in ["MogaSpace", "count_params", "count_madds", "export_onnx", "onnx_parity", "PRESETS", "get_preset",
                 "SearchSpace", "LayerTableSpace", "register_space", "get_space", "Endpoint", "LayerParts"]:
        assert name in spaces.__all__ and hasattr(spaces, name)
