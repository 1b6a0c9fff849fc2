"""Machine faults and damaged state, reproduced the way they happen: real processes, real signals,
real files. A fault is retried or refused with one clear line; it never changes the answer."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from cli_helpers import (
    assert_gone,
    assert_same_result,
    candidates,
    run_cli,
    run_until,
    start_cli,
    tiny_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKER_TITLE = b"ray::ImplicitFunc.train"  # a Tune function trial while it evaluates a candidate


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _one_line_error(proc, pattern: str) -> str:
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("hwnas: error: ") and pattern in lines[0], proc.stderr
    return lines[0]


def _kill_one_trial_worker(driver_pid: int, timeout: float) -> int | None:
    """SIGKILL the first trial worker seen evaluating; return its pid (None if none was seen in time)."""
    from core.reaper import descendants

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid, _ in descendants(driver_pid):
            try:
                title = (Path("/proc") / str(pid) / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(WORKER_TITLE):
                os.kill(pid, signal.SIGKILL)
                return pid
        time.sleep(0.01)
    return None


def _kill_trainer_at(proc, lines: list[str], step_line: str) -> bool:
    """Read the driver's lines until ``step_line``; then SIGKILL the supernet trainer's process."""
    from core.reaper import descendants

    for line in proc.stdout:
        lines.append(line)
        if line.startswith(step_line):
            for pid, _ in descendants(proc.pid):
                try:
                    title = (Path("/proc") / str(pid) / "cmdline").read_bytes()
                except OSError:
                    continue
                if title.startswith(b"ray::_TrainerHost"):
                    os.kill(pid, signal.SIGKILL)
                    return True
            return False
    return False


def test_killed_trainer_and_trial_worker_are_retried_and_change_nothing(tmp_path: Path, reference_run: Path) -> None:
    cfg = tiny_config(tmp_path, name="workers-killed")
    proc = start_cli("search", str(cfg), "--storage", str(tmp_path / "runs"), cwd=tmp_path)
    lines: list[str] = []
    trainer_killed = _kill_trainer_at(proc, lines, "[train_supernet] step 10/40")
    for line in proc.stdout:  # type: ignore[union-attr]
        lines.append(line)
        if line.startswith("[search] gen 0 candidates 1/"):
            break
    worker_killed = _kill_one_trial_worker(proc.pid, timeout=60)
    out = "".join(lines) + proc.stdout.read()  # type: ignore[union-attr]
    assert proc.wait(timeout=300) == 0, out[-3000:]
    assert trainer_killed and worker_killed is not None, out[-3000:]
    assert "[train_supernet] the trainer died" in out and "restarting it from the last checkpoint (1 of 3" in out
    assert "retrying (1 of 3 retries)" in out, out[-3000:]
    exp_dir = tmp_path / "runs" / "workers-killed"
    events = [json.loads(ln)["event"] for ln in (exp_dir / "journal.jsonl").read_text().splitlines()]
    assert "candidate_failed" not in events
    assert_same_result(exp_dir, reference_run)


def test_a_corrupt_checkpoint_in_training_is_named_then_retrained_and_a_torn_journal_cut(
        tmp_path: Path, reference_run: Path) -> None:
    cfg = tiny_config(tmp_path, name="corrupt-training")
    exp_dir = tmp_path / "runs" / "corrupt-training"
    _, below = run_until(["search", str(cfg), "--storage", str(tmp_path / "runs")], tmp_path,
                         r"\[train_supernet\] step 20/40")
    assert_gone(below, within=10)
    checkpoint = exp_dir / "supernet" / "supernet.pt"
    checkpoint.write_bytes(os.urandom(4096))
    before = _snapshot(exp_dir)
    line = _one_line_error(run_cli("resume", str(exp_dir), cwd=tmp_path), "is corrupt")
    assert str(checkpoint) in line and "delete it" in line
    assert _snapshot(exp_dir) == before, "a refused resume writes nothing"

    checkpoint.unlink()
    out, _ = run_until(["resume", str(exp_dir)], tmp_path, r"\[search\] gen 0 candidates 2/8")
    assert "resuming from checkpoint" not in out  # trained again from step 0

    # Killed again, with a record cut short at the end of the journal (a write torn by a power loss).
    journal = exp_dir / "journal.jsonl"
    with open(journal, "ab") as fh:
        fh.write(b'{"event": "candidate", "candidate_id": "0123')
    final = run_cli("resume", str(exp_dir), cwd=tmp_path)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    assert "journal.jsonl ended in a torn record" in final.stdout
    for line in journal.read_text().splitlines():
        json.loads(line)  # every record readable, the resume's own included
    assert (exp_dir / "journal.jsonl.torn").read_bytes().startswith(b'{"event": "candidate", "candidate_id": "0123')
    assert_same_result(exp_dir, reference_run)


def test_a_corrupt_checkpoint_after_training_never_scores_a_candidate(tmp_path: Path, reference_run: Path) -> None:
    cfg = tiny_config(tmp_path, name="corrupt-search")
    exp_dir = tmp_path / "runs" / "corrupt-search"
    _, below = run_until(["search", str(cfg), "--storage", str(tmp_path / "runs")], tmp_path,
                         r"\[search\] gen 0 candidates 2/8")
    assert_gone(below, within=10)  # a trial of the killed driver could still be adding to the cache
    scored = len(candidates(exp_dir))
    checkpoint = exp_dir / "supernet" / "supernet.pt"
    checkpoint.write_bytes(os.urandom(4096))
    before = _snapshot(exp_dir)
    line = _one_line_error(run_cli("resume", str(exp_dir), cwd=tmp_path), "recorded when its training finished")
    assert str(checkpoint) in line
    assert _snapshot(exp_dir) == before
    status = json.loads(run_cli("status", str(exp_dir), "--json", cwd=tmp_path).stdout)
    assert status["stage"] == "search" and status["candidates_evaluated"] == scored

    # Deleted, it is trained again from the seed and must match the recorded digest bit for bit.
    checkpoint.unlink()
    final = run_cli("resume", str(exp_dir), cwd=tmp_path)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    assert "training it again from the seed" in final.stdout
    assert_same_result(exp_dir, reference_run)
