"""``data.kind: coco``: object detection from COCO-format annotation files and image folders.

Each split is an image folder and an ``instances_*.json`` file (COCO 2017's layout, or
``hwnas data synth-coco``'s). The annotations are read with pycocotools and checked before anything
is decoded: every problem is one :class:`~core.errors.ConfigError` naming the file, the entry and the
fix. Category ids may be any integers: label ``l`` (1-based; 0 is background) is the ``l``-th
training category by id, :attr:`CocoDataset.category_ids` maps back.

Decoding is done once (:func:`prepare_coco_cache`): every image is decoded, converted to RGB and
stretched to ``image_size`` squared (no letterbox: boxes scale by ``(S/w, S/h)``) into a uint8 ``.npy``
array, next to the targets (xyxy boxes normalised to [0, 1], labels), named by the digests of the
image and annotation files. Training reads the array memory-mapped and augments in torch (flip and
photometric jitter, drawn from the seed and the batch's indices); crowd regions are never targets.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterator, Mapping

from core.digest import file_digest, json_digest
from core.errors import ConfigError
from core.jsonio import read_json, write_json_atomic
from core.seeding import torch_generator
from core.settings import Setting, boolean, integer, optional, resolve_settings

from .datasets import DATASETS, Dataset
from .imagefolder import MEAN, STD, _normalise, _take, read_image  # the same input statistics as every kind

if TYPE_CHECKING:
    import numpy as np
    import torch
    from pycocotools.coco import COCO

__all__ = ["CocoDataset", "prepare_coco_cache", "read_coco_split"]

SPLITS = ("train", "val")
BOX_TOLERANCE_PX = 1.0  # annotation tools round; a box this far past its image's edge is still accepted
POOL_FROM = 256  # images from which decoding uses a process pool (below it, starting one costs more)
CACHE_VERSION = 1  # bump when the cached arrays' layout changes
# Photometric jitter: each factor uniform in [1 - J, 1 + J], torchvision's ColorJitter(0.4, 0.4, 0.4).
JITTER = 0.4
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 weights of R, G, B: the grey that contrast and saturation use


# ---------------------------------------------------------------------------------------- settings
def _nested(where: str, key: str) -> str:
    """``config field 'data.train'`` -> ``config field 'data.train.images'`` (a key inside a setting)."""
    return f"{where[:-1]}.{key}'" if where.endswith("'") else f"{where}.{key}"


def _split_paths(where: str, value: Any, hint: str) -> dict[str, str]:
    """``{images: DIR, annotations: FILE}`` with both paths absolute (relative ones: to the current
    directory; a config file's are made absolute by :meth:`CocoDataset.resolve_paths` first)."""
    if not isinstance(value, Mapping) or set(value) != {"images", "annotations"}:
        raise ConfigError(f"{where}: must be a mapping with exactly the keys images and annotations, got "
                          f"{value!r}. HINT: {hint}")
    out = {}
    for key in ("images", "annotations"):
        path = value[key]
        if not isinstance(path, str) or not path:
            raise ConfigError(f"{_nested(where, key)}: must be a path, got {path!r}. HINT: {hint}")
        out[key] = str(Path(path).expanduser().resolve())
    return out


def _synthetic(where: str, value: Any, hint: str) -> dict[str, Any]:
    """``{dir: DIR, images: N, seed: S}``: the generated dataset of ``hwnas data synth-coco DIR``."""
    from ._synth_coco import MAX_IMAGES, MIN_IMAGES

    if not isinstance(value, Mapping) or not set(value) <= {"dir", "images", "seed"} or "dir" not in value:
        raise ConfigError(f"{where}: must be a mapping with dir and optionally images and seed, got {value!r}. "
                          f"HINT: {hint}")
    images, seed = value.get("images", 200), value.get("seed", 0)
    for key, number, low, high in (("images", images, MIN_IMAGES, MAX_IMAGES), ("seed", seed, 0, 2**32 - 1)):
        if not isinstance(number, Integral) or isinstance(number, bool) or not low <= number <= high:
            raise ConfigError(f"{_nested(where, key)}: must be a whole number in [{low}, {high}], got {number!r}. "
                              f"HINT: {hint}")
    return {"dir": _dir_path(_nested(where, "dir"), value["dir"], hint), "images": int(images), "seed": int(seed)}


def _write_synthetic_once(settings: Mapping[str, Any], printer: Callable[[str], None]) -> None:
    """Write a ``synthetic`` dataset where it is not yet (its val annotations are written last)."""
    synthetic = settings.get("synthetic")
    if synthetic is not None and not Path(settings["val"]["annotations"]).is_file():
        from ._synth_coco import write_synthetic_coco

        printer(f"[data] writing {synthetic['images']} synthetic COCO images to {synthetic['dir']} (first use)")
        write_synthetic_coco(synthetic["dir"], images=synthetic["images"], seed=synthetic["seed"])


def _dir_path(where: str, value: Any, hint: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: must be a directory path, got {value!r}. HINT: {hint}")
    return str(Path(value).expanduser().resolve())


def _check_split_files(split: Mapping[str, str], where: str) -> None:
    """The split's folder and annotation file exist (cheap: nothing is read); ``where`` names the split."""
    images, annotations = Path(split["images"]), Path(split["annotations"])
    if not images.is_dir():
        found = "is a file" if images.exists() else "does not exist"
        raise ConfigError(f"{_nested(where, 'images')}: the image folder {str(images)!r} {found}. HINT: give the "
                          f"folder that holds the split's image files (e.g. COCO's train2017/).")
    if not annotations.is_file():
        found = "is a directory" if annotations.exists() else "does not exist"
        raise ConfigError(f"{_nested(where, 'annotations')}: the annotation file {str(annotations)!r} {found}. "
                          f"HINT: give the split's COCO annotation file (e.g. annotations/instances_train2017.json).")


@DATASETS.register("coco")
class CocoDataset(Dataset):
    """Object detection on COCO-format data (see the module docstring).

    Settings: ``train`` and ``val`` (each ``{images: DIR, annotations: FILE.json}``, required),
    ``image_size`` (320, the square model input), ``skip_corrupt`` (false: an unreadable image stops
    the run, naming the file; true: it is skipped with its annotations, and counted), ``cache_dir``
    (where decoded arrays are kept; default ``~/.cache/hwnas/images``).

    Batches: images float32 ``(N, 3, S, S)``, normalised; targets a list of N dicts with ``boxes``
    (float32 ``(k, 4)``, xyxy in [0, 1] of the stretched image) and ``labels`` (int64 ``(k,)``, in
    ``1 .. len(category_ids)``), crowd regions left out; validation targets also carry ``image_id``
    (the COCO id) and ``orig_size`` (``(height, width)`` of the original image).
    """

    kind = "coco"
    task = "detection"
    PATH_SETTINGS = ("cache_dir",)  # train/val are mappings: resolve_paths handles them
    SETTINGS = (
        Setting("train", None, optional(_split_paths),
                "e.g. train: {images: coco/train2017, annotations: coco/annotations/instances_train2017.json}"),
        Setting("val", None, optional(_split_paths),
                "e.g. val: {images: coco/val2017, annotations: coco/annotations/instances_val2017.json}"),
        Setting("synthetic", None, optional(_synthetic), "e.g. synthetic: {dir: data/synth-coco, images: 400, seed: 0}"),
        Setting("image_size", 320, integer(minimum=16, maximum=1024)),
        Setting("skip_corrupt", False, boolean()),
        Setting("cache_dir", None, optional(_dir_path), "e.g. cache_dir: /scratch/hwnas-cache"),
    )

    @classmethod
    def resolve_paths(cls, settings: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
        """``settings`` with relative paths made absolute against ``base_dir`` (the config file's folder):
        ``cache_dir`` as every kind's, and the ``images``/``annotations`` inside ``train`` and ``val``;
        anything malformed is left for :meth:`check_settings` to report."""
        out = super().resolve_paths(settings, base_dir)
        synthetic = out.get("synthetic")
        if isinstance(synthetic, Mapping) and isinstance(synthetic.get("dir"), str) and synthetic["dir"]:
            out["synthetic"] = {**synthetic, "dir": str((Path(base_dir) / Path(synthetic["dir"]).expanduser()).resolve())}
        for split in SPLITS:
            value = out.get(split)
            if isinstance(value, Mapping):
                out[split] = {key: str((Path(base_dir) / Path(path).expanduser()).resolve())
                              if key in ("images", "annotations") and isinstance(path, str) and path else path
                              for key, path in value.items()}
        return out

    @classmethod
    def example_settings(cls, directory: Any) -> dict[str, Any]:
        from ._synth_coco import write_synthetic_coco

        root = Path(directory) / "coco"
        if not (root / "annotations" / "instances_val.json").is_file():  # called again: the same data
            write_synthetic_coco(root, images=40, seed=0, image_size=64)  # 32 train + 8 val
        return {"train": {"images": str(root / "train"), "annotations": str(root / "annotations/instances_train.json")},
                "val": {"images": str(root / "val"), "annotations": str(root / "annotations/instances_val.json")},
                "image_size": 64, "cache_dir": str(Path(directory) / "cache")}

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], *,
                       where: Callable[[str], str] | None = None) -> dict[str, Any]:
        where = where or (lambda n: f"dataset coco setting '{n}'")
        checked = resolve_settings(cls.SETTINGS, settings, owner="dataset coco", where=where)
        synthetic = checked["synthetic"]
        if synthetic is not None:  # hwnas data synth-coco's layout under dir, written by prepare() if absent
            root = Path(synthetic["dir"])
            derived = {split: {"images": str(root / split), "annotations": str(root / "annotations" /
                                                                            f"instances_{split}.json")}
                       for split in SPLITS}
            if any(checked[split] not in (None, derived[split]) for split in SPLITS):  # (stored configs hold both)
                raise ConfigError(f"{where('synthetic')}: give either synthetic (generated data) or train and val "
                                  f"(your data), not both. HINT: remove synthetic to use the train and val files.")
            checked.update(derived)
            if not Path(checked["val"]["annotations"]).is_file():
                return checked  # generated on first use
        for split in SPLITS:
            if checked[split] is None:
                raise ConfigError(f"{where(split)}: is required (or synthetic: generated data). HINT: e.g. {split}: "
                                  f"{{images: coco/{split}2017, annotations: coco/annotations/instances_{split}2017.json}}")
            _check_split_files(checked[split], where(split))
        return checked

    @classmethod
    def space_settings(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        if settings.get("synthetic") is not None:  # may not be written yet: its categories are known
            from ._synth_coco import CATEGORIES

            return {"input_size": settings["image_size"], "num_classes": len(CATEGORIES) + 1}
        categories = _category_ids(settings["train"]["annotations"], "config field 'data.train.annotations'")
        return {"input_size": settings["image_size"], "num_classes": len(categories) + 1}

    @classmethod
    def prepare(cls, settings: Mapping[str, Any], *, printer: Callable[[str], None] = print) -> dict[str, Any]:
        """Generate synthetic data on first use, check the annotations, decode every image into the cache
        (once) and return the data's identity."""
        _write_synthetic_once(settings, printer)
        return prepare_coco_cache(settings, printer=printer)["identity"]

    def __init__(self, *, seed: int, **settings: Any) -> None:
        super().__init__(seed=seed, **settings)
        _write_synthetic_once(self.settings, lambda line: None)  # built without prepare(), e.g. in a script
        index = prepare_coco_cache(self.settings, printer=lambda line: None)
        #: Label ``l`` is category ``category_ids[l - 1]`` (the dataset's own ids, sorted).
        self.category_ids: list[int] = list(index["categories"])
        self.val_annotation_path: str = self.settings["val"]["annotations"]
        self._train = _CachedSplit(index["train"])
        self._val = _CachedSplit(index["val"])
        #: The val images :meth:`val_batches` yields, in order: COCOeval's ``params.imgIds`` (an image
        #: skipped as unreadable is in :attr:`val_coco` but must not count as missed).
        self.val_image_ids: list[int] = [int(i) for i in self._val.image_ids]
        self._val_coco: COCO | None = None

    @property
    def num_classes(self) -> int:
        return len(self.category_ids) + 1  # from the cache: no annotation file is read again

    @property
    def image_size(self) -> int:
        return int(self.settings["image_size"])

    @property
    def val_coco(self) -> COCO:
        """The val annotation file as a pycocotools ``COCO`` (for ``COCOeval``), built on first use."""
        if self._val_coco is None:
            from pycocotools.coco import COCO

            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
                self._val_coco = COCO(self.val_annotation_path)
        return self._val_coco

    @property
    def train_size(self) -> int:
        return len(self._train)

    def train_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """Flip and photometric jitter drawn from (seed, the batch's indices): a batch is the same in
        every run and after every resume."""
        import numpy as np
        import torch

        idx = indices.numpy().astype(np.int64, copy=False)
        raw = torch.from_numpy(_take(self._train.images, idx))
        gen = torch_generator(self.seed, "coco", "augment", hashlib.sha256(idx.tobytes()).hexdigest()[:16])
        images, flipped = _augment(raw, gen)
        return images, self._train.targets(idx, flipped=flipped.numpy())

    def val_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, list[dict[str, Any]]]]:
        import numpy as np

        for start in range(0, len(self._val), batch_size):
            idx = np.arange(start, min(start + batch_size, len(self._val)))
            yield _plain(self._val.images, idx), self._val.targets(idx, with_ids=True)

    def calibration_images(self, batches: int, batch_size: int) -> list[torch.Tensor]:
        """Training images as evaluation sees them (no augmentation), fixed by the seed."""
        return [_plain(self._train.images, idx.numpy()) for idx in self.calibration_indices(batches, batch_size)]


# ---------------------------------------------------------------------------------------- batches
class _CachedSplit:
    """One decoded split: the memory-mapped images and, per image, its targets (flat arrays + offsets)."""

    def __init__(self, entry: Mapping[str, Any]) -> None:
        import numpy as np

        self.images = np.load(entry["images"], mmap_mode="r")[: entry["rows"]]
        with np.load(entry["targets"]) as held:
            self.image_ids, self.orig_hw = held["image_ids"], held["orig_hw"]
            self.boxes, self.labels, self.offsets = held["boxes"], held["labels"], held["offsets"]

    def __len__(self) -> int:
        return len(self.image_ids)

    def targets(self, idx: np.ndarray, *, flipped: np.ndarray | None = None,
                with_ids: bool = False) -> list[dict[str, Any]]:
        import torch

        out = []
        for n, i in enumerate(idx):
            lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
            boxes = torch.tensor(self.boxes[lo:hi], dtype=torch.float32).reshape(-1, 4)
            if flipped is not None and flipped[n]:  # x -> 1 - x, so the left edge comes from the right
                boxes = torch.stack([1.0 - boxes[:, 2], boxes[:, 1], 1.0 - boxes[:, 0], boxes[:, 3]], dim=1)
            target: dict[str, Any] = {"boxes": boxes, "labels": torch.tensor(self.labels[lo:hi], dtype=torch.int64)}
            if with_ids:
                target["image_id"] = int(self.image_ids[i])
                target["orig_size"] = (int(self.orig_hw[i, 0]), int(self.orig_hw[i, 1]))
            out.append(target)
        return out


def _plain(images: np.ndarray, idx: np.ndarray) -> torch.Tensor:
    """Cached NHWC uint8 rows as normalised NCHW float32, unaugmented."""
    import torch

    return _normalise(torch.from_numpy(_take(images, idx)).permute(0, 3, 1, 2))


def _augment(raw: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal flip (p = 0.5), then brightness, contrast and saturation jitter (torchvision's
    ColorJitter order and clamping), for the whole batch at once; returns the normalised images and
    which were flipped. In place on one float copy: a 64 x 320 x 320 batch is ~1.6x a plain normalise."""
    import torch

    n = raw.shape[0]
    flipped = torch.rand(n, generator=gen) < 0.5
    brightness, contrast, saturation = torch.empty(3, n).uniform_(
        1.0 - JITTER, 1.0 + JITTER, generator=gen).view(3, n, 1, 1, 1)
    luma = torch.tensor(LUMA)
    x = raw.permute(0, 3, 1, 2).contiguous()  # NCHW uint8
    if bool(flipped.any()):
        x[flipped] = x[flipped].flip(-1)  # on bytes, before the float copy: 4x less to move
    x = x.float()
    x.mul_(brightness).clamp_(0.0, 255.0)
    mean_grey = (x.mean(dim=(2, 3)) @ luma).view(n, 1, 1, 1)  # the mean of the grey image, by linearity
    x.mul_(contrast).add_((1.0 - contrast) * mean_grey).clamp_(0.0, 255.0)
    grey = torch.einsum("nchw,c->nhw", x, luma).unsqueeze(1)
    x.mul_(saturation).add_(grey.mul_(1.0 - saturation)).clamp_(0.0, 255.0)
    # imagefolder's _normalise, folded into one in-place multiply-add: (x / 255 - MEAN) / STD
    std, mean = torch.tensor(STD).view(1, 3, 1, 1), torch.tensor(MEAN).view(1, 3, 1, 1)
    return x.mul_(1.0 / (255.0 * std)).sub_(mean / std), flipped


# ------------------------------------------------------------------------------- reading annotations
class _Problem(Exception):
    """An annotation file breaks a rule: the text says where inside it, the caller names the file."""

    def __init__(self, text: str, hint: str) -> None:
        super().__init__(text)
        self.text, self.hint = text, hint


def _entry_name(kind: str, entry: Any, position: int) -> str:
    ident = entry.get("id") if isinstance(entry, Mapping) else None
    entry_text = f"entry {position} of '{kind}s'"
    return f"{kind} {ident!r} ({entry_text})" if ident is not None else entry_text


def _field(entry: Any, key: str, kind: str, position: int, hint: str) -> Any:
    if not isinstance(entry, Mapping):
        raise _Problem(f"entry {position} of '{kind}s' is {type(entry).__name__}, not an object", hint)
    if key not in entry:
        raise _Problem(f"{_entry_name(kind, entry, position)} lacks '{key}'", hint)
    return entry[key]


def _whole(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _load_json(path: str, where: str) -> Any:
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{where}: {path!r} is not JSON ({str(exc).splitlines()[0]}). HINT: give a COCO "
                          f"annotation file (instances_*.json), e.g. one written by `hwnas data synth-coco`.") from None
    except OSError as exc:
        raise ConfigError(f"{where}: {path!r} cannot be read ({exc.strerror}). HINT: check the path and its "
                          f"permissions.") from None


def _check_top(raw: Any) -> None:
    if not isinstance(raw, Mapping):
        raise _Problem(f"holds a JSON {type(raw).__name__}, not an object",
                       "a COCO file is an object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(raw.get(key), list):
            problem = "lacks" if key not in raw else "has a non-list"
            raise _Problem(f"{problem} '{key}'", "a COCO file is an object with lists images, annotations and "
                                                 "categories")


def _check_categories(raw: Mapping[str, Any]) -> dict[int, str | None]:
    """{category id: name or None}; ids unique integers."""
    hint = "every category needs an integer id (and a name)"
    out: dict[int, str | None] = {}
    for position, cat in enumerate(raw["categories"]):
        cid = _field(cat, "id", "category", position, hint)
        if not _whole(cid) or cid in out:
            raise _Problem(f"{_entry_name('category', cat, position)} has an id that is "
                           f"{'repeated' if cid in out else 'not an integer'}", hint)
        name = cat.get("name")
        out[int(cid)] = name if isinstance(name, str) else None
    if not out:
        raise _Problem("has no categories", "a detection dataset needs at least one category")
    return out


def _check_images(raw: Mapping[str, Any]) -> dict[int, Mapping[str, Any]]:
    hint = "every image needs an integer id, a file_name and integer width and height in pixels"
    out: dict[int, Mapping[str, Any]] = {}
    for position, img in enumerate(raw["images"]):
        iid = _field(img, "id", "image", position, hint)
        name = _field(img, "file_name", "image", position, hint)
        width, height = _field(img, "width", "image", position, hint), _field(img, "height", "image", position, hint)
        if not _whole(iid) or iid in out:
            raise _Problem(f"{_entry_name('image', img, position)} has an id that is "
                           f"{'repeated' if iid in out else 'not an integer'}", hint)
        if not isinstance(name, str) or not name:
            raise _Problem(f"{_entry_name('image', img, position)} has file_name {name!r}", hint)
        if not (_whole(width) and _whole(height) and width > 0 and height > 0):
            raise _Problem(f"{_entry_name('image', img, position)} has width x height {width!r} x {height!r}", hint)
        out[int(iid)] = img
    if not out:
        raise _Problem("has no images", "each split needs at least one image")
    return out


def _check_annotations(raw: Mapping[str, Any], images: Mapping[int, Mapping[str, Any]],
                       categories: Mapping[int, Any]) -> None:
    hint = "every annotation needs an id, an image_id, a category_id and a bbox [x, y, width, height]"
    for position, ann in enumerate(raw["annotations"]):
        name = _entry_name("annotation", ann, position)
        _field(ann, "id", "annotation", position, hint)
        image_id = _field(ann, "image_id", "annotation", position, hint)
        category_id = _field(ann, "category_id", "annotation", position, hint)
        bbox = _field(ann, "bbox", "annotation", position, hint)
        if not _whole(image_id) or image_id not in images:
            raise _Problem(f"{name} has image_id {image_id!r}, which no image has", "fix the id or add the image")
        if not _whole(category_id) or category_id not in categories:
            raise _Problem(f"{name} has category_id {category_id!r}, not among the file's categories "
                           f"({', '.join(map(str, sorted(categories)))})", "fix the id or add the category")
        if ann.get("iscrowd", 0) not in (0, 1):
            raise _Problem(f"{name} has iscrowd {ann['iscrowd']!r}", "iscrowd is 0 or 1")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(
                isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)):
            raise _Problem(f"{name} has bbox {bbox!r}", "a bbox is [x, y, width, height], four numbers")
        x, y, w, h = bbox
        if w <= 0 or h <= 0:
            raise _Problem(f"{name} has a box of width x height {w!r} x {h!r}",
                           "boxes need a positive width and height: fix or remove the annotation")
        img = images[image_id]
        tol = BOX_TOLERANCE_PX
        if x < -tol or y < -tol or x + w > img["width"] + tol or y + h > img["height"] + tol:
            raise _Problem(f"{name} has box {bbox!r} (x, y, width, height) outside its image {image_id} of "
                           f"{img['width']} x {img['height']} pixels", "fix the box or the image's width and height")


def read_coco_split(split: Mapping[str, str], where: str) -> COCO:
    """The split's annotation file checked (structure, ids, categories, boxes, image files present) and
    indexed by pycocotools; any problem is a ConfigError naming the file, the entry and the fix."""
    from pycocotools.coco import COCO

    path = split["annotations"]
    raw = _load_json(path, _nested(where, 'annotations'))
    try:
        _check_top(raw)
        categories = _check_categories(raw)
        images = _check_images(raw)
        _check_annotations(raw, images, categories)
    except _Problem as problem:
        raise ConfigError(f"{_nested(where, 'annotations')}: {path!r} {problem.text}. HINT: {problem.hint}.") from None
    for img in images.values():
        file = Path(split["images"]) / img["file_name"]
        if not file.is_file():
            raise ConfigError(f"{_nested(where, 'images')}: the image file {str(file)!r} of image {img['id']} in "
                              f"{path!r} does not exist. HINT: check the images folder, or remove the image and its "
                              f"annotations from the file.")
    coco = COCO()
    coco.dataset = raw
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco.createIndex()
    return coco


@lru_cache(maxsize=8)
def _categories_of(path: str, size: int, mtime_ns: int, where: str) -> tuple[int, ...]:
    raw = _load_json(path, where)
    try:
        _check_top(raw)
        return tuple(sorted(_check_categories(raw)))
    except _Problem as problem:
        raise ConfigError(f"{where}: {path!r} {problem.text}. HINT: {problem.hint}.") from None


def _category_ids(path: str, where: str) -> tuple[int, ...]:
    """The sorted category ids of an annotation file, read once per process while the file is unchanged."""
    stat = os.stat(path)
    return _categories_of(path, stat.st_size, stat.st_mtime_ns, where)


def _check_val_categories(train: COCO, val: COCO, path: str) -> None:
    """Every val category is a training category with the same name: labels mean the same in both."""
    known = {c["id"]: c.get("name") for c in train.dataset["categories"]}
    for cat in val.dataset["categories"]:
        if cat["id"] not in known:
            raise ConfigError(f"config field 'data.val.annotations': {path!r} has category {cat['id']} "
                              f"({cat.get('name')!r}), which the training annotations lack (their ids: "
                              f"{', '.join(map(str, sorted(known)))}). HINT: val must use the training categories: "
                              f"fix the ids or drop the category and its annotations.")
        if cat.get("name") != known[cat["id"]]:
            raise ConfigError(f"config field 'data.val.annotations': {path!r} names category {cat['id']} "
                              f"{cat.get('name')!r}, the training annotations {known[cat['id']]!r}. HINT: the same "
                              f"id must mean the same category in both files.")


# ------------------------------------------------------------------------------------ the decode cache
def _decode(args: tuple[str, int]) -> tuple[str, Any, tuple[int, int] | None, str | None]:
    """(sha256 of the file, its RGB pixels stretched to side x side (uint8 HWC) or None, its original
    (width, height) or None, the error or None)."""
    import numpy as np
    from PIL import Image

    path, side = args
    digest, decoded, error = read_image(path, lambda img: (
        np.asarray(img.convert("RGB").resize((side, side), Image.BILINEAR), dtype=np.uint8), img.size))
    return (digest, *decoded, None) if decoded is not None else (digest, None, None, error)


def _decode_all(files: list[str], side: int) -> Generator[tuple[str, Any, tuple[int, int] | None, str | None],
                                                          None, None]:
    """Decoded in order; a process pool for many files, consumed as it goes (never all in memory)."""
    jobs = [(f, side) for f in files]
    if len(jobs) < POOL_FROM:
        yield from map(_decode, jobs)
        return
    pool = ProcessPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1)))
    try:
        yield from pool.map(_decode, jobs, chunksize=64)
    finally:  # a bad image stops the loop: drop the files not yet decoded instead of waiting for them
        pool.shutdown(wait=True, cancel_futures=True)


def _decode_split(coco: COCO, split: Mapping[str, str], labels: Mapping[int, int], side: int, skip: bool,
                  root: Path, where: str) -> dict[str, Any]:
    """Decode one split into ``root`` (a temporary array, renamed by content); return its cache entry,
    the file digests and the skipped count. A bad image raises with nothing left behind."""
    import numpy as np

    entries = [coco.imgs[i] for i in sorted(coco.imgs)]
    files = [str(Path(split["images"]) / e["file_name"]) for e in entries]
    tmp = root / f".coco-{os.getpid()}-{hashlib.sha256(split['annotations'].encode()).hexdigest()[:8]}.npy"
    array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(files), side, side, 3))
    digests, ids, sizes, boxes, classes, offsets, skipped = [], [], [], [], [], [0], 0
    decoded = _decode_all(files, side)
    try:
        for entry, file, (digest, pixels, size, error) in zip(entries, files, decoded):
            digests.append(digest)
            if pixels is None:
                if not skip:
                    raise ConfigError(f"{_nested(where, 'images')}: image {file!r} cannot be read ({error}). "
                                      f"HINT: replace or remove it, or set data.skip_corrupt: true to skip "
                                      f"unreadable images.")
                skipped += 1  # and its annotations with it
                continue
            if size != (entry["width"], entry["height"]):
                raise ConfigError(f"{_nested(where, 'images')}: image {file!r} is {size[0]} x {size[1]} pixels, but "
                                  f"{split['annotations']!r} says {entry['width']} x {entry['height']} (image "
                                  f"{entry['id']}). HINT: fix the image's width and height in the annotations, "
                                  f"or replace the image.")
            array[len(ids)] = pixels
            ids.append(entry["id"])
            sizes.append((entry["height"], entry["width"]))
            for ann in coco.imgToAnns.get(entry["id"], []):
                if ann.get("iscrowd", 0):
                    continue  # a crowd region is neither an object to find nor background to punish
                x, y, w, h = ann["bbox"]
                boxes.append([x / entry["width"], y / entry["height"], (x + w) / entry["width"],
                              (y + h) / entry["height"]])
                classes.append(labels[ann["category_id"]])
            offsets.append(len(boxes))
        array.flush()
        del array
        content = json_digest(digests)
        final = root / f"coco-{content}-{side}.npy"
        if final.is_file():
            tmp.unlink()
        else:
            os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        decoded.close()  # now, not when the traceback is freed: the pool's workers stop at once
    targets = {"image_ids": np.asarray(ids, dtype=np.int64),
               "orig_hw": np.asarray(sizes, dtype=np.int64).reshape(-1, 2),
               "boxes": np.clip(np.asarray(boxes, dtype=np.float32).reshape(-1, 4), 0.0, 1.0),
               "labels": np.asarray(classes, dtype=np.int64), "offsets": np.asarray(offsets, dtype=np.int64)}
    return {"images": str(final), "rows": len(ids), "targets": targets, "digests": digests, "skipped": skipped}


def _save_targets(root: Path, name: str, targets: Mapping[str, Any]) -> str:
    import numpy as np

    path = root / f"{name}.npz"
    tmp = root / f".{name}.{os.getpid()}.npz"
    np.savez(tmp, **targets)
    os.replace(tmp, path)
    return str(path)


def _folder_listing(folder: str) -> str:
    """A quick key of a folder's files (name, size, mtime): a changed, added or removed image changes it
    (images in sub-folders are not listed: COCO's folders are flat)."""
    with os.scandir(folder) as it:
        rows = sorted([e.name, e.stat().st_size, e.stat().st_mtime_ns] for e in it if e.is_file())
    return json_digest(rows)


def prepare_coco_cache(settings: Mapping[str, Any], *, printer: Callable[[str], None] = print) -> dict[str, Any]:
    """Check and decode the dataset into the cache if it is not there yet; return the cache's index.

    The index is found by a quick key (annotation files' and image folders' sizes and times); inside,
    the arrays are named by the digests of the image files' bytes and the annotations, so an unchanged
    dataset is decoded once per machine and changed files make a new entry.
    """
    side = settings["image_size"]
    listing = {"version": CACHE_VERSION, "side": side, "skip_corrupt": settings["skip_corrupt"],
               "splits": {s: [settings[s]["annotations"], os.stat(settings[s]["annotations"]).st_size,
                              os.stat(settings[s]["annotations"]).st_mtime_ns, settings[s]["images"],
                              _folder_listing(settings[s]["images"])] for s in SPLITS}}
    root = Path(settings["cache_dir"] or Path.home() / ".cache" / "hwnas" / "images")
    index_path = root / f"coco-index-{json_digest(listing)}.json"
    if index_path.is_file():
        index = read_json(index_path)
        if all(Path(index[s]["images"]).is_file() and Path(index[s]["targets"]).is_file() for s in SPLITS):
            return index
    # Everything is checked before the first byte is written.
    cocos = {s: read_coco_split(settings[s], f"config field 'data.{s}'") for s in SPLITS}
    _check_val_categories(cocos["train"], cocos["val"], settings["val"]["annotations"])
    category_ids = sorted(cocos["train"].cats)
    labels = {cid: label for label, cid in enumerate(category_ids, start=1)}
    total = sum(len(c.imgs) for c in cocos.values())
    printer(f"[data] decoding {total} images into {root} (once)")
    root.mkdir(parents=True, exist_ok=True)
    decoded = {s: _decode_split(cocos[s], settings[s], labels, side, settings["skip_corrupt"], root,
                                f"config field 'data.{s}'") for s in SPLITS}
    for s in SPLITS:
        if decoded[s]["rows"] == 0:
            raise ConfigError(f"config field 'data.{s}.images': none of the {len(cocos[s].imgs)} images of "
                              f"{settings[s]['annotations']!r} can be read. HINT: check the images folder; "
                              f"skip_corrupt skips some damaged images, not all.")
    identity = {"kind": "coco", "files_sha256": json_digest({s: decoded[s]["digests"] for s in SPLITS}),
                "annotations_sha256": json_digest({s: file_digest(settings[s]["annotations"]) for s in SPLITS}),
                "images": total, "skipped": sum(decoded[s]["skipped"] for s in SPLITS), "categories": category_ids}
    index: dict[str, Any] = {"identity": identity, "categories": category_ids, "side": side}
    for s in SPLITS:
        name = f"coco-{identity['files_sha256']}-{identity['annotations_sha256']}-{side}-{s}"
        index[s] = {"images": decoded[s]["images"], "rows": decoded[s]["rows"],
                    "targets": _save_targets(root, name, decoded[s]["targets"])}
    write_json_atomic(index_path, index)
    return index
