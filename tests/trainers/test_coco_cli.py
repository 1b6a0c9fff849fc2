"""``hwnas data synth-coco`` through the real CLI: a good run prints a ``data:`` block that loads as a
coco dataset; refusals are one stderr line, exit code 2, and write nothing."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "orchestrator"))
from cli_helpers import run_cli  # noqa: E402

from trainers.coco import CocoDataset  # noqa: E402


def _data_block(stdout: str) -> dict:
    """The YAML printed after 'paste into a config:'."""
    _, marker, block = stdout.partition("paste into a config:\n")
    assert marker, stdout
    return yaml.safe_load(block)["data"]


def test_synth_coco_writes_a_dataset_the_printed_config_block_reads(tmp_path: Path) -> None:
    proc = run_cli("data", "synth-coco", "out", "--images", "30", "--seed", "3", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "wrote 30 synthetic COCO images" in proc.stdout and "(24 train, 6 val;" in proc.stdout
    data = _data_block(proc.stdout)
    assert data["kind"] == "coco" and data["train"]["images"] == str(tmp_path / "out" / "train")
    assert len(list((tmp_path / "out" / "train").iterdir())) == 24
    assert len(list((tmp_path / "out" / "val").iterdir())) == 6
    settings = CocoDataset.check_settings({k: v for k, v in data.items() if k != "kind"})
    assert CocoDataset.space_settings(settings) == {"input_size": 128, "num_classes": 4}

    again = run_cli("data", "synth-coco", str(tmp_path / "again"), "--images", "30", "--seed", "3", cwd=tmp_path,
                    timeout=120)
    assert again.returncode == 0, again.stderr
    for name in ("instances_train.json", "instances_val.json"):  # the seed decides everything
        first, second = tmp_path / "out/annotations" / name, tmp_path / "again/annotations" / name
        assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("args, pattern", [
    (["--images", "0"], "--images 0: must be an integer in [2, 100000]"),
    (["--images", "100001"], "--images 100001: must be an integer in [2, 100000]"),
])
def test_synth_coco_refuses_a_bad_count_writing_nothing(tmp_path: Path, args: list[str], pattern: str) -> None:
    proc = run_cli("data", "synth-coco", "out", *args, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hwnas: error: ") and pattern in lines[0], proc.stderr
    assert "HINT: " in lines[0] and proc.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_synth_coco_refuses_a_non_empty_directory_leaving_it_alone(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    proc = run_cli("data", "synth-coco", str(out), cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "is not empty; nothing was written. HINT: " in lines[0], proc.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"

    blocked = run_cli("data", "synth-coco", str(out / "notes.txt" / "sub"), cwd=tmp_path, timeout=120)
    assert blocked.returncode == 2 and len(blocked.stderr.splitlines()) == 1
    assert "which is a file; nothing was written" in blocked.stderr
