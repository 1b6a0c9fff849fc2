"""A small, learnable COCO-format detection dataset generated from a seed.

Three categories with non-contiguous ids (3, 7, 11), each a shape in its own colour (filled red
rectangles, green ellipses, blue triangles) of varied size, aspect and position, 1-4 per image on a
noisy textured background. Images vary in size (0.75-1.25 x ``image_size`` on each side), so the
loader's stretching resize and box scaling are exercised. A few images carry a crowd region (a
cluster of small shapes of one category, ``iscrowd: 1`` with an uncompressed RLE mask, as COCO stores
crowds). The layout is COCO's::

    OUT/train/000000000001.jpg ...        OUT/annotations/instances_train.json
    OUT/val/...                           OUT/annotations/instances_val.json

Every image is drawn from its own generator, derived from (seed, image index), so the output depends
on the seed alone. Used by ``hwnas data synth-coco``, the dataset's example settings and tests.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from core.errors import ConfigError
from core.jsonio import write_json_atomic
from core.seeding import make_rng

__all__ = ["CATEGORIES", "MAX_IMAGES", "MIN_IMAGES", "SynthCocoSummary", "check_request", "write_synthetic_coco"]

#: (id, name, RGB colour) of each category; ids deliberately not 1..3 so the label mapping is exercised.
CATEGORIES = ((3, "red_rectangle", (220, 30, 30)), (7, "green_ellipse", (30, 200, 40)),
              (11, "blue_triangle", (40, 60, 230)))
MIN_IMAGES = 2  # one training and one validation image
MAX_IMAGES = 100_000
VAL_SHARE = 0.2
CROWD_EVERY = 6  # every 6th image of a split (from the third) carries a crowd region


@dataclass(frozen=True)
class SynthCocoSummary:
    """What :func:`write_synthetic_coco` wrote."""

    root: Path
    train_images: int
    val_images: int
    train_annotations: Path
    val_annotations: Path
    objects: int
    crowds: int

    def data_settings(self, image_size: int = 320) -> dict[str, Any]:
        """The ``data:`` config block that reads this dataset."""
        return {"kind": "coco",
                "train": {"images": str(self.root / "train"), "annotations": str(self.train_annotations)},
                "val": {"images": str(self.root / "val"), "annotations": str(self.val_annotations)},
                "image_size": image_size}


def check_request(out_dir: Path, images: int, *, images_name: str = "images") -> None:
    """Refuse a request that would write into existing data or make a useless/absurd dataset."""
    if isinstance(images, bool) or not isinstance(images, int) or not MIN_IMAGES <= images <= MAX_IMAGES:
        raise ConfigError(f"{images_name} {images!r}: must be an integer in [{MIN_IMAGES}, {MAX_IMAGES}] (at least "
                          f"one training and one validation image). HINT: e.g. {images_name} 200.")
    blocker = next((p for p in (out_dir.absolute(), *out_dir.absolute().parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        where = "is a file" if blocker == out_dir.absolute() else f"lies under {str(blocker)!r}, which is a file"
        raise ConfigError(f"output directory {str(out_dir)!r} {where}; nothing was written. HINT: name a new "
                          f"or empty directory.")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise ConfigError(f"output directory {str(out_dir)!r} is not empty; nothing was written. HINT: name a new "
                          f"or empty directory, or remove this one.")


def write_synthetic_coco(out_dir: str | Path, *, images: int, seed: int, image_size: int = 128) -> SynthCocoSummary:
    """Write ``images`` images (about 80% train, 20% val, each split at least one) with COCO annotations
    into ``out_dir`` (new or empty), deterministic from ``seed``; ``image_size`` is the typical side."""
    out = Path(out_dir)
    check_request(out, images)
    n_val = min(images - 1, max(1, round(images * VAL_SHARE)))
    splits = {"train": range(0, images - n_val), "val": range(images - n_val, images)}
    for folder in ("train", "val", "annotations"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    objects = crowds = 0
    paths = {}
    for split, indices in splits.items():
        coco = _empty_coco(split)
        for position, index in enumerate(indices):
            with_crowd = position % CROWD_EVERY == 2
            image, entry, anns = _draw_image(seed, index, image_size, with_crowd=with_crowd,
                                             first_ann_id=len(coco["annotations"]) + 1)
            image.save(out / split / entry["file_name"], quality=92)
            coco["images"].append(entry)
            coco["annotations"].extend(anns)
            objects += sum(1 for a in anns if not a["iscrowd"])
            crowds += sum(1 for a in anns if a["iscrowd"])
        paths[split] = out / "annotations" / f"instances_{split}.json"
        write_json_atomic(paths[split], coco)  # val's file, written last and whole, marks a complete dataset
    return SynthCocoSummary(root=out, train_images=len(splits["train"]), val_images=n_val,
                            train_annotations=paths["train"], val_annotations=paths["val"], objects=objects,
                            crowds=crowds)


def _empty_coco(split: str) -> dict[str, Any]:
    return {"info": {"description": f"hwnas synthetic shapes ({split})", "version": "1.0"}, "licenses": [],
            "images": [], "annotations": [],
            "categories": [{"id": cid, "name": name, "supercategory": "shape"} for cid, name, _ in CATEGORIES]}


def _draw_image(seed: int, index: int, size: int, *, with_crowd: bool,
                first_ann_id: int) -> tuple[Image.Image, dict[str, Any], list[dict[str, Any]]]:
    """One image (a Pillow image), its COCO image entry and its annotations."""
    rng = make_rng(seed, "synth-coco", index)
    low, high = max(16, round(size * 0.75)), max(16, round(size * 1.25))
    width, height = int(rng.integers(low, high + 1)), int(rng.integers(low, high + 1))
    canvas = _background(rng, width, height)
    image_id = 3 * index + 1  # not 0..n-1, so nothing may confuse an image's id with its position
    anns: list[dict[str, Any]] = []
    boxes: list[tuple[int, int, int, int]] = []
    crowd_boxes: list[tuple[int, int, int, int]] = []
    if with_crowd:  # first, while the image is empty; the objects then keep clear of it
        category, box, mask = _crowd(rng, canvas, width, height)
        crowd_boxes.append(box)
        anns.append(_annotation(first_ann_id, image_id, category, box, mask, crowd=True))
    for _ in range(int(rng.integers(1, 5))):
        category = int(rng.integers(len(CATEGORIES)))
        box = _free_box(rng, width, height, boxes, scale=(0.18, 0.45), clear=crowd_boxes)
        if box is None:
            continue
        boxes.append(box)
        mask = _shape_mask(category, box, width, height)
        _paint(canvas, mask, rng, category)
        anns.append(_annotation(first_ann_id + len(anns), image_id, category, _tight_box(mask), mask, crowd=False))
    noisy = canvas + rng.normal(0.0, 8.0, size=canvas.shape)  # sensor-like noise over shapes and background
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
    entry = {"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": width, "height": height}
    return image, entry, anns


def _background(rng: Any, width: int, height: int) -> np.ndarray:
    """A muted, blotchy texture: a coarse random grid blown up (low frequencies) plus fine noise."""
    coarse = rng.integers(60, 170, size=(4, 4, 3), dtype=np.uint8)
    blotches = np.asarray(Image.fromarray(coarse, "RGB").resize((width, height), Image.BILINEAR), dtype=np.float64)
    grey = blotches.mean(axis=2, keepdims=True)
    muted = 0.35 * blotches + 0.65 * grey  # little colour, so the shapes' colours stand out
    return muted + rng.normal(0.0, 14.0, size=(height, width, 1))


def _free_box(rng: Any, width: int, height: int, taken: list[tuple[int, int, int, int]],
              scale: tuple[float, float], clear: Sequence[tuple[int, int, int, int]] = (),
              ) -> tuple[int, int, int, int] | None:
    """An (x, y, w, h) box of varied size and aspect, or None when 20 tries found none. It overlaps each
    ``taken`` box by at most a quarter of the smaller one, so no object is hidden behind another (each
    stays visible and learnable), and no ``clear`` box at all."""
    short = min(width, height)
    for _ in range(20):
        side = rng.uniform(*scale) * short
        aspect = float(2.0 ** rng.uniform(-0.7, 0.7))
        w = int(max(4, min(width - 1, round(side * aspect))))
        h = int(max(4, min(height - 1, round(side / aspect))))
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        if all(_overlap((x, y, w, h), other) <= 0.25 for other in taken) and \
                all(_overlap((x, y, w, h), other) == 0 for other in clear):
            return x, y, w, h
    return None


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """The intersection of two (x, y, w, h) boxes as a share of the smaller one."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / min(a[2] * a[3], b[2] * b[3])


def _outline(category: int, box: tuple[int, int, int, int]) -> list[tuple[float, float]]:
    """The shape's polygon in pixel-edge coordinates: it spans exactly ``box`` (x, y, w, h)."""
    import math

    x, y, w, h = box
    if category == 0:  # rectangle
        return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    if category == 1:  # ellipse, as a 24-gon touching the box's sides
        return [(x + w / 2 + w / 2 * math.cos(t), y + h / 2 + h / 2 * math.sin(t))
                for t in (2 * math.pi * k / 24 for k in range(24))]
    return [(x + w / 2, y), (x + w, y + h), (x, y + h)]  # triangle, apex up


def _shape_mask(category: int, box: tuple[int, int, int, int], width: int, height: int) -> np.ndarray:
    """The shape's pixels (bool, H x W): a pixel is in when its centre is inside the outline, so the
    tight bounding box of the mask is ``box`` up to the outline's curvature."""
    x, y, w, h = box
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    if category == 0:
        draw.rectangle([x, y, x + w - 1, y + h - 1], fill=1)
    elif category == 1:
        draw.ellipse([x, y, x + w - 1, y + h - 1], fill=1)
    else:
        draw.polygon([(x + (w - 1) / 2, y), (x + w - 1, y + h - 1), (x, y + h - 1)], fill=1)
    return np.asarray(mask, dtype=bool)


def _paint(canvas: np.ndarray, mask: np.ndarray, rng: Any, category: int) -> None:
    """Fill ``mask`` with the category's colour, jittered a little per object."""
    colour = [min(255.0, max(0.0, c + rng.normal(0.0, 15.0))) for c in CATEGORIES[category][2]]
    canvas[mask] = colour


def _crowd(rng: Any, canvas: np.ndarray, width: int, height: int) -> tuple[int, tuple[int, int, int, int], np.ndarray]:
    """A cluster of 4-7 small shapes of one category: (category, tight box, union mask)."""
    region = _free_box(rng, width, height, [], scale=(0.3, 0.45))
    assert region is not None  # nothing is taken yet
    category = int(rng.integers(len(CATEGORIES)))
    rx, ry, rw, rh = region
    union = np.zeros((height, width), dtype=bool)
    for _ in range(int(rng.integers(4, 8))):
        w, h = max(3, int(rw * rng.uniform(0.2, 0.35))), max(3, int(rh * rng.uniform(0.2, 0.35)))
        x, y = rx + int(rng.integers(0, rw - w + 1)), ry + int(rng.integers(0, rh - h + 1))
        union |= _shape_mask(category, (x, y, w, h), width, height)
    _paint(canvas, union, rng, category)
    return category, _tight_box(union), union


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the pixels drawn: the box is exactly the visible object, whatever the rasteriser did."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def _annotation(ann_id: int, image_id: int, category: int, box: tuple[int, int, int, int], mask: np.ndarray,
                *, crowd: bool) -> dict[str, Any]:
    """A COCO annotation: crowds carry an uncompressed RLE mask, objects a polygon; area is the mask's."""
    segmentation: Any = _rle(mask) if crowd else [[round(v, 2) for pt in _outline(category, box) for v in pt]]
    return {"id": ann_id, "image_id": image_id, "category_id": CATEGORIES[category][0],
            "bbox": [float(v) for v in box], "area": float(mask.sum()), "iscrowd": int(crowd),
            "segmentation": segmentation}


def _rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO's uncompressed run-length encoding: run lengths over the column-major pixels, zeros first."""
    flat = mask.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(edges).tolist()
    if flat[0]:  # the first run counts zeros: here there are none
        counts = [0] + counts
    return {"counts": [int(c) for c in counts], "size": [int(mask.shape[0]), int(mask.shape[1])]}
