"""Image folders from disk, through the real CLI: a search on a tiny generated folder, paths relative
to the config file, the decode cache reused, and a resume on changed images refused."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "orchestrator"))
from cli_helpers import run_cli, tiny_config  # noqa: E402

from trainers.imagefolder import write_example_folder  # noqa: E402

pytestmark = [pytest.mark.integration]


def _folder_config(tmp_path: Path) -> Path:
    write_example_folder(tmp_path / "data" / "images", classes=3, per_class=12, size=40, seed=0)
    raw = yaml.safe_load(tiny_config(tmp_path, name="folders").read_text())
    raw["data"] = {"kind": "imagefolder", "train": "../data/images", "val_fraction": 0.25, "image_size": 32,
                   "cache_dir": "../cache"}
    raw["evaluation"].update(bn_batches=2, bn_batch_size=8, batch_size=64)
    raw["supernet"].update(batch_size=8)
    (tmp_path / "configs").mkdir()
    path = tmp_path / "configs" / "folders.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_an_image_folder_search_runs_end_to_end_and_pins_its_data(tmp_path: Path) -> None:
    config = _folder_config(tmp_path)
    (tmp_path / "work").mkdir()
    proc = run_cli("search", str(config), "--storage", str(tmp_path / "runs"), cwd=tmp_path / "work")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[data] decoding 36 images" in proc.stdout
    exp_dir = tmp_path / "runs" / "folders"
    stored = json.loads((exp_dir / "experiment.json").read_text())["config"]["data"]
    assert stored["train"] == str((tmp_path / "data" / "images").resolve())  # relative to the config file
    assert stored["cache_dir"] == str((tmp_path / "cache").resolve())
    summary = json.loads((exp_dir / "summary.json").read_text())
    assert summary["candidates"] == 8 and all(0.0 <= r["accuracy"] <= 1.0 for r in summary["pareto"])
    identity = [json.loads(ln) for ln in (exp_dir / "journal.jsonl").read_text().splitlines()
                if json.loads(ln)["event"] == "data"]
    assert len(identity) == 1 and identity[0]["identity"]["classes"] == ["class_0", "class_1", "class_2"]

    again = run_cli("resume", str(exp_dir), cwd=tmp_path)  # unchanged data: the cache answers, all done
    assert again.returncode == 0 and "[data] decoding" not in again.stdout, again.stderr[-2000:]

    victim = tmp_path / "data" / "images" / "class_1" / "img_000.png"
    victim.write_bytes((tmp_path / "data" / "images" / "class_2" / "img_000.png").read_bytes())
    changed = run_cli("resume", str(exp_dir), cwd=tmp_path)
    assert changed.returncode == 2, changed.stdout[-2000:]
    lines = [ln for ln in changed.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "the data changed since experiment" in lines[0] and "files_sha256" in lines[0]
