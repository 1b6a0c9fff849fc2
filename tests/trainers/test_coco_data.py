"""``data.kind: coco``: the synthetic generator, the label mapping, box scaling and flipping, crowds,
validation order, determinism, the decode cache, and every bad input refused with one line naming the
file before anything is written."""
from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from PIL import Image

from core.errors import ConfigError
from trainers import DATASETS
from trainers import coco as coco_module
from trainers._synth_coco import check_request, write_synthetic_coco
from trainers.coco import CocoDataset
from trainers.imagefolder import MEAN, STD

SIZE = 64  # model input of the generated dataset's tests


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 generated images (32 train, 8 val), never modified: tests that corrupt data copy it."""
    root = tmp_path_factory.mktemp("synth") / "coco"
    write_synthetic_coco(root, images=40, seed=0, image_size=64)
    return root


def _settings(root: Path, cache: Path, **extra: Any) -> dict[str, Any]:
    return {"train": {"images": str(root / "train"), "annotations": str(root / "annotations/instances_train.json")},
            "val": {"images": str(root / "val"), "annotations": str(root / "annotations/instances_val.json")},
            "image_size": SIZE, "cache_dir": str(cache), **extra}


@pytest.fixture(scope="module")
def dataset(synth: Path, tmp_path_factory: pytest.TempPathFactory) -> CocoDataset:
    return CocoDataset(seed=0, **_settings(synth, tmp_path_factory.mktemp("cache")))


def _quiet_coco(path: Path) -> Any:
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


# ----------------------------------------------------------------------------------------- generator
def test_generated_data_loads_in_pycocotools_and_perfect_detections_score_ap_1(synth: Path) -> None:
    from pycocotools.cocoeval import COCOeval

    for split, count in (("train", 32), ("val", 8)):
        gt = _quiet_coco(synth / f"annotations/instances_{split}.json")
        assert len(gt.getImgIds()) == count and sorted(gt.getCatIds()) == [3, 7, 11]
        anns = gt.dataset["annotations"]
        assert any(a["iscrowd"] for a in anns), f"{split} has no crowd region to exercise"
        assert all(a["area"] > 0 for a in anns)
        for a in anns:  # each file exists, and its size is the one annotated
            img = gt.imgs[a["image_id"]]
            with Image.open(synth / split / img["file_name"]) as im:
                assert im.size == (img["width"], img["height"])
        crowd = next(a for a in anns if a["iscrowd"])
        assert gt.annToMask(crowd).sum() == crowd["area"]  # the RLE is COCO's, as pycocotools reads it
    sizes = {(i["width"], i["height"]) for i in gt.dataset["images"]}
    assert any(w != h for w, h in sizes) and len({w for w, _ in sizes}) > 1  # resizing is exercised
    # The ground truth as detections: COCOeval must accept the file (crowds included) and give AP 1.
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
               for a in anns if not a["iscrowd"]]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0)


def test_the_generator_is_deterministic_from_its_seed(tmp_path: Path) -> None:
    a = write_synthetic_coco(tmp_path / "a", images=6, seed=5)
    b = write_synthetic_coco(tmp_path / "b", images=6, seed=5)
    c = write_synthetic_coco(tmp_path / "c", images=6, seed=6)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 6 + 2
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert a.train_annotations.read_bytes() != c.train_annotations.read_bytes()
    assert (a.train_images, a.val_images) == (5, 1)


@pytest.mark.parametrize("images", [0, 1, 100_001])
def test_the_generator_refuses_a_useless_count_writing_nothing(tmp_path: Path, images: int) -> None:
    with pytest.raises(ConfigError, match=r"images .*HINT"):
        write_synthetic_coco(tmp_path / "out", images=images, seed=0)
    assert not (tmp_path / "out").exists()


def test_the_generator_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"is not empty; nothing was written"):
        check_request(tmp_path, 10)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


# ----------------------------------------------------------------------------- labels, boxes, crowds
def test_labels_round_trip_the_non_contiguous_category_ids(dataset: CocoDataset) -> None:
    assert dataset.category_ids == [3, 7, 11] and dataset.num_classes == 4
    assert CocoDataset.space_settings(dataset.settings) == {"input_size": SIZE, "num_classes": 4}
    gt = dataset.val_coco
    for _, targets in dataset.val_batches(5):
        for t in targets:
            want = sorted(a["category_id"] for a in gt.imgToAnns[t["image_id"]] if not a["iscrowd"])
            assert sorted(dataset.category_ids[int(l) - 1] for l in t["labels"]) == want
            assert t["labels"].dtype == torch.int64 and t["boxes"].dtype == torch.float32


def test_crowd_regions_are_never_training_targets(dataset: CocoDataset, synth: Path) -> None:
    gt = _quiet_coco(synth / "annotations/instances_train.json")
    ids = sorted(gt.imgs)
    _, targets = dataset.train_batch(torch.arange(dataset.train_size))
    crowds = 0
    for image_id, t in zip(ids, targets):
        anns = gt.imgToAnns[image_id]
        crowds += sum(a["iscrowd"] for a in anns)
        assert len(t["boxes"]) == len(t["labels"]) == sum(1 for a in anns if not a["iscrowd"])
    assert crowds > 0


def _handmade(root: Path) -> None:
    """A COCO set whose pixels and boxes are known exactly: train image 5 (100 x 80 PNG) holds a red
    rectangle at x 20-50, y 10-50 (category 7 -> label 2) and a crowd of category 3; image 2 a blue one."""
    cats = [{"id": 9, "name": "blue"}, {"id": 3, "name": "crowd"}, {"id": 7, "name": "red"}]
    for split, ids in (("train", (5, 2)), ("val", (10,))):
        (root / split).mkdir(parents=True)
        images, anns = [], []
        for iid in ids:
            w, h = (100, 80) if iid != 2 else (60, 60)
            pixels = np.full((h, w, 3), 128, np.uint8)
            if iid == 2:
                pixels[5:25, 30:50] = (0, 0, 255)
                anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": 9, "bbox": [30, 5, 20, 20],
                             "area": 400, "iscrowd": 0})
            else:
                pixels[10:50, 20:50] = (255, 0, 0)
                anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": 7, "bbox": [20, 10, 30, 40],
                             "area": 1200, "iscrowd": 0})
                anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": 3, "bbox": [70, 50, 20, 20],
                             "area": 400, "iscrowd": 1, "segmentation": {"counts": [w * h], "size": [h, w]}})
            Image.fromarray(pixels).save(root / split / f"{iid}.png")
            images.append({"id": iid, "file_name": f"{iid}.png", "width": w, "height": h})
        (root / "annotations").mkdir(exist_ok=True)
        (root / f"annotations/instances_{split}.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": cats}))


@pytest.fixture(scope="module")
def handmade(tmp_path_factory: pytest.TempPathFactory) -> CocoDataset:
    root = tmp_path_factory.mktemp("handmade")
    _handmade(root)
    return CocoDataset(seed=1, **_settings(root, root / "cache"))


RED_BOX = [20 / 100, 10 / 80, 50 / 100, 50 / 80]  # bbox [20, 10, 30, 40] of a 100 x 80 image, xyxy in [0, 1]


def test_training_boxes_are_the_annotation_boxes_scaled(handmade: CocoDataset) -> None:
    assert handmade.category_ids == [3, 7, 9]  # sorted ids, whatever the file's order
    _, targets = handmade.train_batch(torch.zeros(16, dtype=torch.int64))  # train index 0 = image 2
    flipped = [1 - RED_BOX[2], RED_BOX[1], 1 - RED_BOX[0], RED_BOX[3]]
    _, red = handmade.train_batch(torch.ones(16, dtype=torch.int64))  # train index 1 = image 5
    seen = set()
    for t in red:
        assert t["labels"].tolist() == [2]  # category 7; the crowd of category 3 is left out
        box = t["boxes"][0].tolist()
        is_plain = box == pytest.approx(RED_BOX)
        assert is_plain or box == pytest.approx(flipped), box
        seen.add(is_plain)
    assert seen == {True, False}  # 16 draws saw both
    assert all(t["labels"].tolist() == [3] for t in targets)


def _red_extent(image: torch.Tensor) -> list[float]:
    """xyxy (pixel edges) of the clearly red pixels of a normalised CHW image."""
    rgb = image * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
    redness = rgb[0] - rgb[1:].max(dim=0).values
    ys, xs = torch.nonzero(redness > 0.5 * redness.max(), as_tuple=True)
    return [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


def test_a_flip_moves_the_box_with_the_pixels(handmade: CocoDataset) -> None:
    images, targets = handmade.train_batch(torch.ones(12, dtype=torch.int64))
    lefts = set()
    for image, t in zip(images, targets):
        assert _red_extent(image) == pytest.approx((t["boxes"][0] * SIZE).tolist(), abs=1.01)
        lefts.add(round(t["boxes"][0, 0].item(), 3))
    assert len(lefts) == 2  # flipped and not, both checked against the pixels


def test_validation_is_in_image_id_order_with_ids_and_original_sizes(handmade: CocoDataset,
                                                                    dataset: CocoDataset) -> None:
    (images, targets), = list(handmade.val_batches(8))
    assert [t["image_id"] for t in targets] == [10] and targets[0]["orig_size"] == (80, 100)
    assert targets[0]["boxes"].tolist() == [pytest.approx(RED_BOX)]  # unflipped, crowd left out
    assert _red_extent(images[0]) == pytest.approx([v * SIZE for v in RED_BOX], abs=1.01)
    gt = dataset.val_coco
    ids, sizes = [], []
    for _, batch in dataset.val_batches(3):
        ids += [t["image_id"] for t in batch]
        sizes += [t["orig_size"] for t in batch]
    assert ids == sorted(gt.imgs) and len(ids) == 8
    assert sizes == [(gt.imgs[i]["height"], gt.imgs[i]["width"]) for i in ids]


def test_the_same_batch_is_identical_every_time(dataset: CocoDataset, synth: Path) -> None:
    indices = torch.tensor([3, 0, 7, 7, 12])
    first = dataset.train_batch(indices)
    again = CocoDataset(seed=0, **dataset.settings).train_batch(indices)
    assert torch.equal(first[0], again[0])
    assert all(torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["labels"], b["labels"])
               for a, b in zip(first[1], again[1]))
    other_seed = CocoDataset(seed=1, **dataset.settings).train_batch(indices)
    assert not torch.equal(first[0], other_seed[0])  # the augmentation is drawn from the seed
    plain = torch.cat([b for b, _ in dataset.val_batches(100)])
    assert torch.equal(plain, torch.cat([b for b, _ in dataset.val_batches(3)]))


def test_photometric_jitter_changes_colours_only_within_bounds(handmade: CocoDataset) -> None:
    images, _ = handmade.train_batch(torch.zeros(8, dtype=torch.int64))
    rgb = images * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
    assert rgb.min() >= -1e-5 and rgb.max() <= 1 + 1e-5
    grey_levels = {round(v, 3) for v in rgb[:, :, 40, 5].mean(dim=1).tolist()}  # a background pixel per image
    assert len(grey_levels) > 4  # brightness / contrast differ from image to image


# ------------------------------------------------------------------------------------ settings, cache
def test_nested_paths_resolve_against_the_config_folder_and_the_cwd(tmp_path: Path, synth: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    raw = {"train": {"images": "d/train", "annotations": "d/a.json"}, "val": {"images": 3, "annotations": ""},
           "image_size": 64, "cache_dir": "../cache"}
    out = CocoDataset.resolve_paths(raw, tmp_path / "configs")
    assert out["cache_dir"] == str(tmp_path / "cache") and out["image_size"] == 64
    assert out["train"] == {"images": str(tmp_path / "configs/d/train"),
                            "annotations": str(tmp_path / "configs/d/a.json")}
    assert out["val"] == raw["val"] and raw["train"]["images"] == "d/train"  # malformed left for the check
    monkeypatch.chdir(synth)
    checked = CocoDataset.check_settings({
        "train": {"images": "train", "annotations": "annotations/instances_train.json"},
        "val": {"images": "val", "annotations": "annotations/instances_val.json"}})
    assert checked["train"]["images"] == str(synth / "train") and checked["image_size"] == 320
    with pytest.raises(ConfigError, match=r"^config field 'data.val': must be a mapping with exactly the keys"):
        CocoDataset.check_settings({**checked, "val": "val"}, where=lambda n: f"config field 'data.{n}'")


def test_the_cache_is_reused_and_a_changed_image_changes_the_identity(tmp_path: Path, synth: Path) -> None:
    root = tmp_path / "coco"
    shutil.copytree(synth, root)
    settings = CocoDataset.check_settings(_settings(root, tmp_path / "cache"))
    lines: list[str] = []
    first = CocoDataset.prepare(settings, printer=lines.append)
    assert first == {"kind": "coco", "files_sha256": first["files_sha256"],
                     "annotations_sha256": first["annotations_sha256"], "images": 40, "skipped": 0,
                     "categories": [3, 7, 11]}
    assert CocoDataset.prepare(settings, printer=lines.append) == first
    assert len(lines) == 1 and "decoding 40 images" in lines[0]  # decoded once
    victim = next((root / "val").iterdir())
    with Image.open(victim) as im:
        im.convert("RGB").save(victim, quality=50)  # same size, other bytes
    changed = CocoDataset.prepare(settings, printer=lines.append)
    assert changed["files_sha256"] != first["files_sha256"]
    assert changed["annotations_sha256"] == first["annotations_sha256"]


def test_the_process_pool_decodes_the_same_arrays(tmp_path: Path, synth: Path, monkeypatch: pytest.MonkeyPatch,
                                                  dataset: CocoDataset) -> None:
    monkeypatch.setattr(coco_module, "POOL_FROM", 1)
    pooled = CocoDataset(seed=0, **_settings(synth, tmp_path / "cache"))
    assert np.array_equal(np.asarray(pooled._train.images), np.asarray(dataset._train.images))
    assert np.array_equal(pooled._val.boxes, dataset._val.boxes)
    root = tmp_path / "coco"
    shutil.copytree(synth, root)
    broken = _truncate(root)
    with pytest.raises(ConfigError, match=re.escape(repr(str(broken)))):
        CocoDataset.prepare(CocoDataset.check_settings(_settings(root, tmp_path / "cache2")), printer=lambda line: None)
    assert not any((tmp_path / "cache2").iterdir())


# ------------------------------------------------------------------------------------------ bad input
def _edit_json(relative: str, change: Callable[[dict], None]) -> Callable[[Path], Path]:
    def corrupt(root: Path) -> Path:
        path = root / relative
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
        return path
    return corrupt


def _first_image(root: Path, split: str = "train") -> Path:
    data = json.loads((root / f"annotations/instances_{split}.json").read_text())
    return root / split / min(data["images"], key=lambda i: i["id"])["file_name"]


def _truncate(root: Path) -> Path:
    path = _first_image(root)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a download cut short
    return path


def _delete(root: Path) -> Path:
    path = _first_image(root, "val")
    path.unlink()
    return path


def _not_json(root: Path) -> Path:
    path = root / "annotations/instances_train.json"
    path.write_text('{"images": [')
    return path


def _no_folder(root: Path) -> Path:
    shutil.rmtree(root / "val")
    return root / "val"


def _no_annotations(root: Path) -> Path:
    path = root / "annotations/instances_val.json"
    path.unlink()
    return path


TRAIN, VAL = "annotations/instances_train.json", "annotations/instances_val.json"


def _first(key: str) -> Callable[[dict], dict]:
    return lambda d: d[key][0]


BAD_INPUTS = {
    "missing images folder": (_no_folder, r"data.val.images': the image folder .* does not exist"),
    "missing annotation file": (_no_annotations, r"data.val.annotations': the annotation file .* does not exist"),
    "not JSON": (_not_json, r"is not JSON"),
    "no categories": (_edit_json(TRAIN, lambda d: d.pop("categories")), r"lacks 'categories'"),
    "image lacks file_name": (_edit_json(VAL, lambda d: d["images"][0].pop("file_name")),
                              r"image \d+ .*lacks 'file_name'"),
    "image lacks width": (_edit_json(TRAIN, lambda d: d["images"][1].pop("width")), r"lacks 'width'"),
    "annotation lacks bbox": (_edit_json(TRAIN, lambda d: d["annotations"][2].pop("bbox")),
                              r"annotation \d+ .*lacks 'bbox'"),
    "annotation lacks image_id": (_edit_json(VAL, lambda d: d["annotations"][0].pop("image_id")), r"lacks 'image_id'"),
    "annotation lacks category_id": (_edit_json(TRAIN, lambda d: d["annotations"][0].pop("category_id")),
                                     r"lacks 'category_id'"),
    "annotation lacks id": (_edit_json(TRAIN, lambda d: d["annotations"][0].pop("id")),
                            r"entry 0 of 'annotations' lacks 'id'"),
    "category lacks id": (_edit_json(TRAIN, lambda d: d["categories"][1].pop("id")), r"lacks 'id'"),
    "unknown category": (_edit_json(TRAIN, lambda d: d["annotations"][3].update(category_id=99)),
                         r"category_id 99, not among the file's categories \(3, 7, 11\)"),
    "unknown image": (_edit_json(TRAIN, lambda d: d["annotations"][3].update(image_id=123456)), r"image_id 123456"),
    "box outside": (_edit_json(VAL, lambda d: d["annotations"][0]["bbox"].__setitem__(0, d["images"][0]["width"])),
                    r"outside its image"),
    "zero width": (_edit_json(TRAIN, lambda d: d["annotations"][0]["bbox"].__setitem__(2, 0)),
                   r"box of width x height 0 x"),
    "missing image file": (_delete, r"the image file .* does not exist"),
    "truncated image": (_truncate, r"image .* cannot be read \(OSError: image file is truncated"),
    "size disagrees": (_edit_json(TRAIN, lambda d: d["images"][0].update(width=d["images"][0]["width"] + 7)),
                       r"pixels, but .* says"),
    "val category unknown to train": (
        _edit_json(VAL, lambda d: d["categories"].append({"id": 12, "name": "purple_star"})),
        r"has category 12 \('purple_star'\), which the training annotations lack"),
    "val category renamed": (_edit_json(VAL, lambda d: d["categories"][0].update(name="cat")),
                             r"names category 3 'cat'"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_naming_the_file_before_anything_is_written(case: str, tmp_path: Path,
                                                                          synth: Path) -> None:
    corrupt, pattern = BAD_INPUTS[case]
    root = tmp_path / "coco"
    shutil.copytree(synth, root)
    named = corrupt(root)
    cache = tmp_path / "cache"
    with pytest.raises(ConfigError) as caught:
        settings = CocoDataset.check_settings(_settings(root, cache), where=lambda n: f"config field 'data.{n}'")
        CocoDataset.prepare(settings, printer=lambda line: None)
    message = str(caught.value)
    assert "\n" not in message and "HINT: " in message, message
    assert repr(str(named)) in message, f"{case}: the file is not named: {message}"
    assert re.search(pattern, message), message
    assert not cache.exists() or not any(cache.iterdir()), f"{case}: wrote {list(cache.iterdir())}"


def test_skip_corrupt_skips_unreadable_images_and_their_boxes_and_counts_them(tmp_path: Path, synth: Path) -> None:
    root = tmp_path / "coco"
    shutil.copytree(synth, root)
    val = json.loads((root / VAL).read_text())
    broken = sorted(val["images"], key=lambda i: i["id"])[1]
    for path in (_first_image(root), root / "val" / broken["file_name"]):
        path.write_bytes(b"not an image at all")
    settings = _settings(root, tmp_path / "cache", skip_corrupt=True)
    identity = CocoDataset.prepare(CocoDataset.check_settings(settings), printer=lambda line: None)
    assert identity["skipped"] == 2 and identity["images"] == 40
    data = CocoDataset(seed=0, **settings)
    assert data.train_size == 31
    ids = [t["image_id"] for _, batch in data.val_batches(100) for t in batch]
    assert len(ids) == 7 and broken["id"] not in ids and ids == sorted(ids)
    with pytest.raises(ConfigError, match=r"cannot be read .*set data.skip_corrupt: true"):
        CocoDataset.prepare(CocoDataset.check_settings({**settings, "skip_corrupt": False}), printer=lambda line: None)


def test_coco_is_registered_for_detection() -> None:
    assert DATASETS.get("coco") is CocoDataset and CocoDataset.task == "detection"


def test_synthetic_data_is_written_on_first_use_and_a_stored_config_reloads(tmp_path: Path) -> None:
    root = tmp_path / "synth"
    settings = CocoDataset.check_settings({"synthetic": {"dir": str(root), "images": 10}, "image_size": 32,
                                           "cache_dir": str(tmp_path / "cache")})
    assert not root.exists() and CocoDataset.space_settings(settings)["num_classes"] == 4  # nothing read yet
    lines: list[str] = []
    identity = CocoDataset.prepare(settings, printer=lines.append)
    assert "writing 10 synthetic COCO images" in lines[0] and identity["categories"] == [3, 7, 11]
    assert (root / "annotations" / "instances_val.json").is_file()
    assert CocoDataset.check_settings(settings) == settings  # experiment.json holds synthetic and the paths
    assert CocoDataset.prepare(settings, printer=lines.append) == identity and len(lines) == 2  # written once
    other = {"images": str(tmp_path), "annotations": str(root / "annotations" / "instances_val.json")}
    with pytest.raises(ConfigError, match="give either synthetic .* or train and val"):
        CocoDataset.check_settings({**settings, "train": other})
