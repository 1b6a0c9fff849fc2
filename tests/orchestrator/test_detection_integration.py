"""A detection search end to end through the real CLI, on synthetic COCO data generated on first use:
SSDLite supernet training, COCOeval scoring, the Pareto front in mAP, detector ONNX with box decoding,
and `hwnas evaluate --out` whose file, scored by pycocotools here, gives the reported mAP."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import onnx
import pytest
import yaml

from cli_helpers import run_cli

pytestmark = pytest.mark.integration

CONFIG = {
    "name": "det",
    "seed": 0,
    "space": {"name": "moga", "settings": {"width_mult": 0.35, "stem_stride": 1, "head_depths": [32, 16, 16, 16]}},
    "data": {"kind": "coco", "synthetic": {"dir": "coco", "images": 30, "seed": 0}, "image_size": 32,
             "cache_dir": "cache"},
    "detection": {"loss": "hard_negative"},
    "supernet": {"steps": 30, "batch_size": 8, "checkpoint_every": 10, "lr": 0.05},
    "evaluation": {"bn_batches": 2, "bn_batch_size": 8, "batch_size": 16},
    "search": {"searcher": "weighted-nsga2", "settings": {"population_size": 4, "generations": 2}},
    "cost": {"kind": "madds"},
}


@pytest.fixture(scope="module")
def detection_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("detection")
    (root / "det.yaml").write_text(yaml.safe_dump(CONFIG))
    result = run_cli("search", "det.yaml", "--storage", "runs", cwd=root, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[data] writing 30 synthetic COCO images" in result.stdout
    return root


def test_search_scores_candidates_by_coco_map(detection_run: Path) -> None:
    exp = detection_run / "runs" / "det"
    summary = json.loads((exp / "summary.json").read_text())
    assert summary["candidates"] == 8 and summary["pareto"]
    for row in summary["pareto"]:
        assert 0.0 <= row["map"] <= 1.0 and "accuracy" not in row
    assert (exp / "pareto.csv").read_text().splitlines()[0].split(",")[2] == "map"
    records = [json.loads(line) for line in (exp / "journal.jsonl").read_text().splitlines()]
    scored = [r for r in records if r.get("event") == "candidate"]
    assert scored and all({"map", "map_50", "map_75"} <= set(r) for r in scored)
    graph = onnx.load(str(next((exp / "onnx").iterdir())))
    assert [o.name for o in graph.graph.output] == ["boxes", "scores"]  # decoded in the graph; NMS outside
    status = run_cli("status", str(exp), cwd=detection_run)
    assert status.returncode == 0 and " map " in status.stdout


def test_evaluate_out_file_scored_by_cocoeval_gives_the_reported_map(detection_run: Path) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    exp = detection_run / "runs" / "det"
    candidate = json.loads((exp / "summary.json").read_text())["pareto"][0]["candidate_id"]
    result = run_cli("evaluate", str(exp), "--candidate", candidate, "--out", "det.json", "--json", cwd=detection_run)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["metrics"]["map"] == pytest.approx(report["recorded"]["map"], abs=1e-9)  # the search's score
    detections = json.loads((detection_run / "det.json").read_text())
    assert len(detections) == report["detections_count"] > 0
    assert {d["category_id"] for d in detections} <= {3, 7, 11}  # the dataset's own ids
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(detection_run / "coco" / "annotations" / "instances_val.json"))
        evaluator = COCOeval(gt, gt.loadRes(str(detection_run / "det.json")), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    assert report["metrics"]["map"] == pytest.approx(max(0.0, evaluator.stats[0]), abs=1e-9)
    assert report["metrics"]["map_50"] == pytest.approx(max(0.0, evaluator.stats[1]), abs=1e-9)


def test_a_detector_retrains_on_ray_train_and_ships_with_its_box_decoding(detection_run: Path) -> None:
    """Last in the module: it adds a retrain to the shared experiment."""
    import mlflow
    import mlflow.onnx

    exp = detection_run / "runs" / "det"
    result = run_cli("retrain", str(exp), "--top", "1", "--set", "retrain.epochs=1", "--set", "retrain.batch_size=8",
                     "--set", "retrain.label_smoothing=0", "--set", "retrain.lr=0.01", cwd=detection_run)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "retrained map" in result.stdout
    [done] = [json.loads(line) for line in (exp / "journal.jsonl").read_text().splitlines()
              if json.loads(line)["event"] == "retrain_completed"]
    assert {"map", "map_50", "map_75"} <= set(done["final"]) and done["onnx_max_rel_diff"] < 1e-4
    graph = onnx.load(done["files"]["onnx"])
    assert [o.name for o in graph.graph.output] == ["boxes", "scores"]
    mlflow.set_tracking_uri(f"sqlite:///{detection_run / 'mlflow.db'}")
    [run] = mlflow.search_runs(experiment_names=["det"], filter_string="tags.hwnas_role = 'retrain'",
                               output_format="list")
    signature = mlflow.models.get_model_info(run.data.tags["model_uri"]).signature
    assert [o.name for o in signature.outputs.inputs] == ["boxes", "scores"]
    assert mlflow.onnx.load_model(run.data.tags["model_uri"]).graph.output[0].name == "boxes"
