"""Fixtures shared by the orchestrator tests: one uninterrupted tiny search, the answer every
kill-and-resume test must reproduce."""
from __future__ import annotations

from pathlib import Path

import pytest

from cli_helpers import run_cli, tiny_config


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The experiment directory of `hwnas search` on :func:`tiny_config`, run once, never interrupted."""
    root = tmp_path_factory.mktemp("reference")
    proc = run_cli("search", str(tiny_config(root, name="reference")), "--storage", str(root / "runs"), cwd=root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root / "runs" / "reference"
