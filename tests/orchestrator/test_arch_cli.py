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
        (["arch", "describe", "--preset", "mobiledet-edgtpu"], "mobiledet-edgetpu"),
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


def test_describe_mobiledet_preset_is_a_320_detector(capsys) -> None:
    code, out, _ = _run(capsys, "arch", "describe", "--preset", "mobiledet-dsp", "--json")
    info = json.loads(out)
    assert code == 0 and info["space"] == "mobiledet" and info["task"] == "detection" and info["input_size"] == 320
    assert abs(info["madds"] - 2.82e9) / 2.82e9 < 0.02 and len(info["layers"]) == 30


def test_task_switches_a_mobiledet_between_detector_and_classifier(capsys) -> None:
    base = ["arch", "describe", "--preset", "mobiledet-cpu", "--num-classes", "10", "--json"]
    _, det, _ = _run(capsys, *base)
    _, cls, _ = _run(capsys, *base, "--task", "classification")
    det, cls = json.loads(det), json.loads(cls)
    assert det["task"] == "detection" and cls["task"] == "classification"
    assert det["encoding"] == cls["encoding"] and det["madds"] > cls["madds"]
    assert det["candidate_id"] != cls["candidate_id"]  # another head, another model


def test_export_detector_has_two_outputs(capsys, tmp_path: Path) -> None:
    import onnx

    out_file = tmp_path / "det.onnx"
    arch = "-".join(["0"] * 30)
    code, out, _ = _run(capsys, "arch", "export", "--space", "mobiledet", "--arch", arch, "--input-size", "64",
                        "--num-classes", "5", "--task", "detection", "--out", str(out_file))
    info = json.loads(out)
    assert code == 0 and info["onnxruntime_max_rel_diff"] < 1e-4
    # Exported as deployed: boxes decoded to input pixels, per-class scores (NMS outside the graph).
    assert [o.name for o in onnx.load(str(out_file)).graph.output] == ["boxes", "scores"]


def test_every_space_becomes_a_detector(capsys) -> None:
    base = ["arch", "describe", "--preset", "moga-a", "--num-classes", "91", "--input-size", "320", "--json"]
    _, det, _ = _run(capsys, *base, "--task", "detection")
    _, cls, _ = _run(capsys, *base)
    det, cls = json.loads(det), json.loads(cls)
    assert det["task"] == "detection" and det["madds"] > cls["madds"] and det["candidate_id"] != cls["candidate_id"]
