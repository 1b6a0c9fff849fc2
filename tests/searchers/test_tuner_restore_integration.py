"""``Tuner.restore`` after a driver crash, as a Ray Tune user meets it, for every hwnas searcher and for
Ray's ``OptunaSearch`` (so the test holds Tune's contract, not our habits).

Each driver is its own process on one real Ray cluster (a separate ``ray start`` head). It dies while
trials are in flight: by an exception out of ``Tuner.fit()``, by SIGINT (Tune stops and saves) or by
SIGKILL (once Tune's background copy of its state to storage is done: a SIGKILL during that copy leaves a
torn state Tune starts over from, with ``OptunaSearch`` too; see ``tuner_crash_driver``). A second driver
then restores the run and finishes it. Every run must end with the full budget,
no candidate evaluated by two trials, and the searcher finished. The drivers run side by side (the trials
only sleep).

The rotation covers each searcher and each crash once (four pairs, about a minute on 2 cores); the
whole matrix, every searcher with every crash (twelve pairs, about four minutes), is marked
``extended`` and runs with ``pytest -m extended``.
"""
from __future__ import annotations

import itertools
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("optuna")
from cluster.local_cluster import RayNodes, client_env  # noqa: E402

pytestmark = pytest.mark.integration

DRIVER = Path(__file__).with_name("tuner_crash_driver.py")
SEARCHERS = ["weighted-nsga2", "reinforce", "random", "optuna"]
CRASHES = {"raise": {1}, "sigint": {0}, "sigkill": {-9}}  # the crashed driver's exit code
BUDGET = 12


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory):
    nodes = RayNodes(logs=tmp_path_factory.mktemp("crash-ray") / "logs")
    try:
        nodes.start_head(num_cpus=24)  # logical CPUs: up to twelve drivers' two trials each
        yield nodes
    finally:
        nodes.stop_all()


def _drive(head: RayNodes, mode: str, runs: dict[tuple[str, str], Path]) -> dict[tuple[str, str], subprocess.CompletedProcess]:
    """Each run's driver in ``mode`` (``restore``, or its crash when ``mode`` is None), side by side."""
    env = client_env({**head.auth_env, "RAY_ADDRESS": head.gcs_address()})

    def one(key: tuple[str, str]) -> subprocess.CompletedProcess:
        name, crash = key
        return subprocess.run([sys.executable, str(DRIVER), name, mode or crash, str(runs[key])], env=env,
                              cwd=runs[key], capture_output=True, text=True, timeout=600)

    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        return dict(zip(runs, pool.map(one, runs)))


#: Each searcher once, each crash at least once (SIGKILL twice: the crash nothing can clean up after).
ROTATED = [("weighted-nsga2", "sigkill"), ("reinforce", "sigint"), ("random", "raise"), ("optuna", "sigkill")]


@pytest.mark.parametrize("pairs", [
    # Both in `-m extended`: the default run keeps under 30 minutes with the in-process contract test.
    # Runs of 2026-12-05 saw a restore after SIGKILL come back with 1 trial, OptunaSearch's (where the kill
    # had hit Tune's copy of its state to storage: an empty experiment_state there) and, earlier,
    # WeightedNSGA2's (same symptom; its files were not kept). The driver now waits for that copy.
    pytest.param(ROTATED, id="each-searcher-and-crash", marks=pytest.mark.extended),
    pytest.param(list(itertools.product(SEARCHERS, CRASHES)), id="every-pair", marks=pytest.mark.extended),
])
def test_restore_after_a_driver_crash_finishes_the_budget_once(head, tmp_path, pairs) -> None:
    runs = {(name, crash): tmp_path / f"{name}-{crash}" for name, crash in pairs}
    for d in runs.values():
        d.mkdir()
    problems = []
    for (name, crash), proc in _drive(head, None, runs).items():
        done = (runs[name, crash] / "evaluations.jsonl").read_text().splitlines()
        if proc.returncode not in CRASHES[crash] or not 0 < len(done) < BUDGET:
            problems.append(f"{name} {crash}: rc {proc.returncode}, {len(done)} evaluations\n{proc.stderr[-2000:]}")
    assert not problems, "the drivers did not crash as planned:\n" + "\n".join(problems)
    for (name, crash), proc in _drive(head, "restore", runs).items():
        problems += [f"{name} after {crash}: {p}" for p in _problems(name, runs[name, crash], proc)]
    assert not problems, "\n".join(problems)


def _problems(name: str, run_dir: Path, proc: subprocess.CompletedProcess) -> list[str]:
    if proc.returncode != 0:
        return [f"restore failed (rc {proc.returncode}): {proc.stderr[-2000:]}"]
    outcome = json.loads((run_dir / "outcome.json").read_text())
    configs = [tuple(c) for c in outcome["configs"]]
    found = []
    if outcome["errors"]:
        found.append(f"{outcome['errors']} trials errored")
    if len(configs) != BUDGET:
        found.append(f"{len(configs)} trials, not the budget of {BUDGET}")
    if len(set(configs)) != len(configs):
        found.append(f"a candidate evaluated by two trials: {sorted(configs)}")
    if name != "optuna":
        found += _searcher_problems(name, run_dir / f"run-{run_dir.name}")
    return found


def _searcher_problems(name: str, run: Path) -> list[str]:
    """The searcher Tune checkpointed last, restored into a bare one as Ray's convention has it."""
    from searchers import SEARCHERS as REGISTRY

    searcher = REGISTRY.get(name)()
    searcher.restore_from_dir(str(run))
    found = [] if searcher.finished else ["the searcher is not finished"]
    evaluated = searcher.evaluated()
    if len(evaluated) != BUDGET or not all(e["metrics"] for e in evaluated):
        found.append(f"the searcher holds {len(evaluated)} results, {sum(not e['metrics'] for e in evaluated)} failed")
    return found
