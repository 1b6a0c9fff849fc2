"""Bad input at the CLI: one clear line on stderr, exit code 2, no traceback, nothing written.

The commands run forked from one process that imported the CLI (the ``forked_cli`` fixture): Python's
start-up would otherwise be most of this module's time. ``test_search_missing_config_file`` and the help
run as fresh processes."""
from __future__ import annotations

from pathlib import Path

import pytest

from cli_helpers import run_cli, tiny_config


def _assert_clean_failure(proc, pattern: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hwnas: error: ")
    assert pattern in lines[0]


@pytest.mark.parametrize(
    "overrides, pattern",
    [
        (["--set", "supernet.steps=0"], "'supernet.steps': must be an integer in [1, 10000000]"),
        (["--set", "bogus=1"], "'bogus': unknown key"),
        (["--set", "space.name=nope"], "'space.name': unknown search space"),
        (["--set", "search.searcher=nope"], "unknown searcher"),
        (["--set", "search.settings.population_size=1"], "population_size"),
        (["--set", "data.num_classes=two"], "'data.num_classes': must be an integer"),
    ],
)
def test_search_rejects_bad_config_without_writing(tmp_path: Path, overrides: list[str], pattern: str,
                                                  forked_cli) -> None:
    config = tiny_config(tmp_path)
    proc = forked_cli("search", str(config), "--storage", str(tmp_path / "runs"), *overrides, cwd=tmp_path)
    _assert_clean_failure(proc, pattern)
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "mlflow.db").exists()


def test_search_missing_config_file(tmp_path: Path) -> None:
    proc = run_cli("search", "missing.yaml", "--storage", str(tmp_path / "runs"), cwd=tmp_path)
    _assert_clean_failure(proc, "does not exist")


def test_resume_and_status_on_a_non_experiment(tmp_path: Path, forked_cli) -> None:
    (tmp_path / "plain").mkdir()
    for command in ("resume", "status"):
        proc = forked_cli(command, str(tmp_path / "plain"), cwd=tmp_path)
        _assert_clean_failure(proc, "is not an hwnas experiment directory")
        proc = forked_cli(command, str(tmp_path / "absent"), cwd=tmp_path)
        _assert_clean_failure(proc, "does not exist")


def test_search_refuses_to_overwrite_an_existing_experiment(tmp_path: Path, forked_cli) -> None:
    from orchestrator.config import load_config
    from orchestrator.experiment import Experiment

    config = tiny_config(tmp_path)
    exp = Experiment.create(load_config(config), tmp_path / "runs", "sqlite:///unused.db")
    before = (exp.directory / "experiment.json").read_bytes()
    proc = forked_cli("search", str(config), "--storage", str(tmp_path / "runs"), cwd=tmp_path)
    _assert_clean_failure(proc, "hwnas resume")
    assert (exp.directory / "experiment.json").read_bytes() == before


def test_help_lists_the_subcommands(tmp_path: Path) -> None:
    proc = run_cli("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for word in ("search", "resume", "status"):
        assert word in proc.stdout
    proc = run_cli("search", "--help", cwd=tmp_path)
    for flag in ("--storage", "--tracking-uri", "--address", "--set"):
        assert flag in proc.stdout
