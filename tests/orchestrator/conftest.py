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


@pytest.fixture(scope="session")
def forked_cli():
    """``run(*args, cwd=...)``: the CLI forked from one process that imported it (``cli_forkserver``), for
    the many short bad-input commands; returns an object like ``subprocess.CompletedProcess``."""
    import subprocess

    from cli_forkserver import CliForkServer
    from cli_helpers import cli_env

    server = CliForkServer(cli_env())

    def run(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
        code, out, err = server.run(list(args), cwd=cwd, env=cli_env(), timeout=timeout)
        return subprocess.CompletedProcess(["hwnas", *args], code, out, err)

    yield run
    server.close()
