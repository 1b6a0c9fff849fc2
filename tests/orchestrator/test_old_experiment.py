"""An experiment directory written before the journal and config carried schema versions (a real one:
fixtures/old_experiment holds the text files of a finished tiny search made by that hwnas) is still read,
with the same candidates, ids, cache fingerprint and Pareto front."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli_helpers import run_cli
from core.jsonio import read_jsonl
from orchestrator.experiment import Experiment
from orchestrator.journal import SCHEMA_VERSION, Journal

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "old_experiment"


@pytest.fixture()
def old_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "old-format"
    shutil.copytree(FIXTURE, directory)
    return directory


def test_the_fixture_is_of_the_old_formats() -> None:
    assert json.loads((FIXTURE / "experiment.json").read_text())["schema_version"] == 1
    assert all("schema" not in rec for rec in read_jsonl(FIXTURE / "journal.jsonl"))


def test_old_journal_replays(old_dir: Path) -> None:
    state = Journal(old_dir / "journal.jsonl").replay()
    assert state.attempts == 1 and len(state.candidates) == 18 and not state.failures
    assert all(state.stage(s) == "completed" for s in ("train_supernet", "search", "finalize"))


def test_old_config_opens_with_the_operators_it_ran_with(old_dir: Path) -> None:
    exp = Experiment.open(old_dir)
    settings = exp.config.search.settings
    assert (settings["crossover"], settings["force_mutation"]) == ("single-point", True)
    assert (settings["population_size"], settings["generations"]) == (6, 3)
    assert exp.config.data.kind == "synthetic" and exp.config.data.settings["train_size"] == 512


def test_old_ids_and_cache_fingerprint_are_unchanged(old_dir: Path) -> None:
    """Resume reuses an old experiment's scores only if candidate ids and the evaluator fingerprint agree."""
    from orchestrator.pipeline import eval_context

    exp = Experiment.open(old_dir)
    state = exp.journal.replay()
    space = exp.config.build_space()
    assert all(space.candidate_id(space.parse(r["encoding"])) == cid for cid, r in state.candidates.items())
    ctx = eval_context(exp, state.completed["train_supernet"]["digest"])
    stored = {rec["fingerprint"] for rec in read_jsonl(old_dir / "evaluations.jsonl")}
    assert stored == {ctx.fingerprint}


def test_status_of_an_old_experiment_through_the_cli(old_dir: Path, tmp_path: Path) -> None:
    proc = run_cli("status", str(old_dir), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert (status["state"], status["candidates_evaluated"], status["candidates_total"]) == ("completed", 18, 18)
    old_front = json.loads((FIXTURE / "summary.json").read_text())["pareto"]
    assert status["pareto"] == old_front  # the same front, computed by this hwnas from the old records


def test_new_records_carry_the_schema_and_a_newer_one_is_refused(old_dir: Path) -> None:
    journal = Journal(old_dir / "journal.jsonl")
    journal.append("attempt_started", attempt=2)
    assert list(read_jsonl(old_dir / "journal.jsonl"))[-1]["schema"] == SCHEMA_VERSION
    assert journal.replay().attempts == 2
    journal.append("attempt_started", attempt=3, schema=SCHEMA_VERSION + 1)
    with pytest.raises(Exception, match=rf"journal schema {SCHEMA_VERSION + 1}.*HINT"):
        journal.replay()
