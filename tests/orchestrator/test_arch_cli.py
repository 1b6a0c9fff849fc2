"""`hwnas spaces` and `hwnas arch describe|export` (in process: no Ray involved)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.cli import main


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_spaces_lists_dims_and_presets(capsys) -> None:
    code, out, _ = _run(capsys, "spaces", "--json")
    assert code == 0
    by_name = {item["space"]: item for item in json.loads(out)}
    assert len(by_name["moga"]["dims"]) == 14
    assert {"moga-a", "moga-b", "moga-c"} <= set(by_name["moga"]["presets"])


def test_describe_preset_matches_published_counts(capsys) -> None:
    code, out, _ = _run(capsys, "arch", "describe", "--preset", "moga-a", "--json")
    info = json.loads(out)
    assert code == 0 and info["space"] == "moga" and len(info["layers"]) == 14
    assert abs(info["madds"] - 304e6) / 304e6 < 0.02
    assert {"space", "encoding", "candidate_id", "params", "madds", "layers"} <= set(info)


def test_describe_space_arch_with_overrides(capsys) -> None:
    code, out, _ = _run(capsys, "arch", "describe", "--space", "moga", "--arch", "0-0-0-0-0-0-0-0-0-0-0-0-0-0",
                        "--input-size", "32", "--num-classes", "10", "--json")
    info = json.loads(out)
    assert code == 0 and info["settings"]["input_size"] == 32 and info["settings"]["num_classes"] == 10


@pytest.mark.parametrize(
    "argv, message",
    [
        (["arch", "describe", "--space", "moga", "--arch", "1-2-3"], "encoding has 3 choices"),
        (["arch", "describe", "--space", "moga", "--arch", "12-0-0-0-0-0-0-0-0-0-0-0-0-0"], "layer_00 has choice 12"),
        (["arch", "describe", "--preset", "moga-z"], "moga-a, moga-b, moga-c"),
        (["arch", "describe", "--space", "mogo", "--arch", "0"], "known search spaces:"),
        (["arch", "describe", "--space", "moga"], "needs --arch"),
        (["arch", "describe"], "either --preset"),
        (["arch", "describe", "--preset", "moga-a", "--task", "detection"], "detection"),
    ],
)
def test_bad_architectures_exit_2_with_one_message(capsys, argv, message) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 2 and message in err and err.startswith("hwnas: error: ")


def test_export_writes_a_checked_onnx_file(capsys, tmp_path: Path) -> None:
    out_file = tmp_path / "m.onnx"
    code, out, _ = _run(capsys, "arch", "export", "--space", "moga", "--arch", "11-0-11-0-11-0-11-0-11-0-11-0-11-0",
                        "--input-size", "32", "--num-classes", "10", "--out", str(out_file))
    info = json.loads(out)
    assert code == 0 and out_file.stat().st_size == info["bytes"] > 0
    assert info["onnxruntime_max_rel_diff"] < 1e-4
