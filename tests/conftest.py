"""Shared pytest setup: make the repository root importable however pytest is started."""
from __future__ import annotations

import os
from typing import Iterator

import pytest

import sys
from pathlib import Path

# Test folders have no __init__.py; with a bare `pytest` (not `python -m pytest`) the repository root
# would otherwise not be on sys.path and `import spaces` would fail.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


@pytest.fixture(scope="module")
def tune_ray() -> Iterator[None]:
    """A local Ray for Tune runs inside the test process (another module's, if one is still up), without
    Tune's CSV/TensorBoard result files (faster)."""
    import ray

    from cluster import connect

    saved = os.environ.get("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS")
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    started = not ray.is_initialized()
    connect(None, num_cpus=2)
    yield
    if started:
        ray.shutdown()
    if saved is None:
        os.environ.pop("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", None)
    else:
        os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = saved
