"""``data.kind: imagefolder``: classification images from disk, one sub-folder per class.

The layout is torchvision's ImageFolder: ``train/<class>/<image>``; the class list is the sorted
sub-folders of ``train``. Validation is ``val`` in the same layout (no class ``train`` lacks) or a
seeded ``val_fraction`` of ``train``. JPEG, PNG and WebP are read with Pillow.

Decoding is done once: every image is decoded, resized (shorter side) and centre-cropped to a square
of :func:`cache_side` pixels, a little above ``image_size``, into a uint8 array cached as a ``.npy``
file keyed by the digest of the files' bytes (:func:`prepare_cache`). Training then reads that array
(memory-mapped) and augments in torch (random resized crop, horizontal flip); evaluation takes the
centre ``image_size`` crop (ratio 0.875, the usual 224/256). So supernet training and BN recalibration
are never bound by JPEG decoding.
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from core.digest import json_digest
from core.errors import ConfigError
from core.jsonio import read_json, write_json_atomic
from core.seeding import make_rng, torch_generator
from core.settings import REQUIRED, Setting, boolean, integer, number, optional, resolve_settings

from .datasets import DATASETS, Dataset

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["ImageFolderDataset", "cache_side", "prepare_cache", "scan"]

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
MEAN = (0.485, 0.456, 0.406)  # ImageNet's per-channel statistics, as timm and torchvision use
STD = (0.229, 0.224, 0.225)
CROP_RATIO = 0.875


def cache_side(image_size: int) -> int:
    """Side of the cached squares: the evaluation crop of ``image_size`` is their centre 87.5%."""
    return int(round(image_size / CROP_RATIO))


def _path(where: str, value: Any, hint: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: must be a directory path, got {value!r}. HINT: {hint}")
    return value


def scan(root: str | os.PathLike[str], where: str) -> list[tuple[str, list[Path]]]:
    """The classes of an image folder (sorted) with their image files (sorted); raises naming the problem."""
    root = Path(root)
    if not root.is_dir():
        found = "is a file" if root.exists() else "does not exist"
        raise ConfigError(f"{where}: the image folder {str(root)!r} {found}. HINT: give a directory with one "
                          f"sub-folder of images per class.")
    classes = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p for p in sub.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)
        if not files:
            raise ConfigError(f"{where}: class folder {str(sub)!r} holds no images ({', '.join(EXTENSIONS)}). "
                              f"HINT: add images or remove the folder.")
        classes.append((sub.name, files))
    if len(classes) < 2:
        raise ConfigError(f"{where}: {str(root)!r} has {len(classes)} class folder(s); a classifier needs at "
                          f"least 2. HINT: put each class's images in its own sub-folder.")
    return classes


@DATASETS.register("imagefolder")
class ImageFolderDataset(Dataset):
    """Classification images from disk (see the module docstring).

    Settings: ``train`` (a directory, required), ``val`` (a directory) or ``val_fraction`` (in (0, 1)),
    ``image_size`` (224), ``skip_corrupt`` (false: an unreadable image stops the run, naming the file;
    true: skipped and counted), ``cache_dir`` (where decoded arrays are kept; default
    ``~/.cache/hwnas/images``). Relative paths in a config are relative to the config file.
    """

    kind = "imagefolder"
    task = "classification"
    PATH_SETTINGS = ("train", "val", "cache_dir")
    SETTINGS = (
        Setting("train", REQUIRED, _path, "e.g. train: data/train (one sub-folder per class)"),
        Setting("val", None, optional(_path), "e.g. val: data/val, or val_fraction: 0.1"),
        Setting("val_fraction", None, optional(number(low=0.0, high=1.0, low_open=True, high_open=True)),
                "e.g. val_fraction: 0.1"),
        Setting("image_size", 224, integer(minimum=16, maximum=1024)),
        Setting("skip_corrupt", False, boolean()),
        Setting("cache_dir", None, optional(_path), "e.g. cache_dir: /scratch/hwnas-cache"),
    )

    @classmethod
    def example_settings(cls, directory: Any) -> dict[str, Any]:
        write_example_folder(Path(directory) / "images", classes=3, per_class=8, size=40, seed=0)
        return {"train": str(Path(directory) / "images"), "val_fraction": 0.25, "image_size": 32,
                "cache_dir": str(Path(directory) / "cache")}

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], *, where: Callable[[str], str] | None = None) -> dict[str, Any]:
        where = where or (lambda n: f"dataset imagefolder setting '{n}'")
        checked = resolve_settings(cls.SETTINGS, settings, owner="dataset imagefolder", where=where)
        if (checked["val"] is None) == (checked["val_fraction"] is None):
            raise ConfigError(f"{where('val')}: give exactly one of val (a folder) and val_fraction (a share of "
                              f"train). HINT: e.g. val_fraction: 0.1.")
        train = scan(checked["train"], where("train"))
        if checked["val"] is not None:
            known = {name for name, _ in train}
            for name, _ in scan(checked["val"], where("val")):
                if name not in known:
                    raise ConfigError(f"{where('val')}: class {name!r} is not among the training classes "
                                      f"({', '.join(sorted(known))}). HINT: remove it or add it to train.")
        return checked

    @classmethod
    def space_settings(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        classes = [p.name for p in Path(settings["train"]).iterdir() if p.is_dir()]
        return {"input_size": settings["image_size"], "num_classes": len(classes)}

    @classmethod
    def prepare(cls, settings: Mapping[str, Any], *, printer: Callable[[str], None] = print) -> dict[str, Any]:
        """Decode every image into the cache (once; later calls find it) and return the data's identity."""
        return prepare_cache(settings, printer=printer)["identity"]

    def __init__(self, *, seed: int, **settings: Any) -> None:
        import numpy as np

        super().__init__(seed=seed, **settings)
        cache = prepare_cache(self.settings, printer=lambda line: None)
        self.classes: list[str] = cache["classes"]
        images = np.load(cache["train_path"], mmap_mode="r")
        labels = np.asarray(cache["train_labels"], dtype=np.int64)
        if self.settings["val"] is not None:
            self._train, self._train_y = images, labels
            self._val = np.load(cache["val_path"], mmap_mode="r")
            self._val_y = np.asarray(cache["val_labels"], dtype=np.int64)
        else:  # a seeded split of train, the same for every process of the experiment
            order = make_rng(seed, "imagefolder", "val-split").permutation(len(labels))
            n_val = max(1, int(round(len(labels) * self.settings["val_fraction"])))
            val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
            self._train, self._train_y = _Subset(images, train_idx), labels[train_idx]
            self._val, self._val_y = _Subset(images, val_idx), labels[val_idx]

    @property
    def train_size(self) -> int:
        return len(self._train_y)

    def train_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Random-resized-crop and flip augmentation, drawn from (seed, the batch's indices): a batch is
        augmented the same way in every run and after every resume."""
        import torch

        idx = indices.numpy()
        raw = torch.from_numpy(_take(self._train, idx))
        gen = torch_generator(self.seed, "imagefolder", "augment", hashlib.sha256(idx.tobytes()).hexdigest()[:16])
        return _augment(raw, self.image_size, gen), torch.from_numpy(self._train_y[idx])

    def val_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        import numpy as np
        import torch

        for start in range(0, len(self._val_y), batch_size):
            idx = np.arange(start, min(start + batch_size, len(self._val_y)))
            yield _centre(torch.from_numpy(_take(self._val, idx)), self.image_size), torch.from_numpy(self._val_y[idx])

    def calibration_images(self, batches: int, batch_size: int) -> list[torch.Tensor]:
        """Training images as evaluation sees them (centre crop, no augmentation), fixed by the seed."""
        import torch

        return [_centre(torch.from_numpy(_take(self._train, idx.numpy())), self.image_size)
                for idx in self.calibration_indices(batches, batch_size)]


class _Subset:
    """Rows ``rows`` of a (memory-mapped) array, indexable like it."""

    def __init__(self, array: np.ndarray, rows: np.ndarray) -> None:
        self.array, self.rows = array, rows

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        return self.array[self.rows[idx]]


def _take(array: Any, idx: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.ascontiguousarray(array[idx])


def _normalise(x: torch.Tensor) -> torch.Tensor:
    import torch

    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x.float().div(255.0) - mean) / std


def _centre(raw: torch.Tensor, size: int) -> torch.Tensor:
    """NHWC uint8 squares -> the centre ``size`` crop, normalised NCHW float32."""
    side = raw.shape[1]
    top = (side - size) // 2
    crop = raw[:, top:top + size, top:top + size, :]
    return _normalise(crop.permute(0, 3, 1, 2))


def _augment(raw: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Random resized crop (area 25-100%, aspect 3/4-4/3) and horizontal flip, the whole batch in one
    bilinear ``grid_sample`` (a crop is at most 1.14x downscaled, so no antialiasing is needed)."""
    import math

    import torch
    import torch.nn.functional as F

    n, side = raw.shape[0], raw.shape[1]
    area = torch.empty(n).uniform_(0.25, 1.0, generator=gen) * side * side
    ratio = torch.exp(torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3), generator=gen))
    w = torch.sqrt(area * ratio).round().clamp(1, side)
    h = torch.sqrt(area / ratio).round().clamp(1, side)
    left = (torch.rand(n, generator=gen) * (side - w + 1)).floor()
    top = (torch.rand(n, generator=gen) * (side - h + 1)).floor()
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = w / side * flip
    theta[:, 0, 2] = (2 * left + w) / side - 1
    theta[:, 1, 1] = h / side
    theta[:, 1, 2] = (2 * top + h) / side - 1
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    images = raw.permute(0, 3, 1, 2).float()
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return _normalise(out)


# ---------------------------------------------------------------------- the decode cache
def read_image(path: str, convert: Callable[[Any], Any]) -> tuple[str, Any, str | None]:
    """(sha256 of the file's bytes, ``convert(image)`` of the loaded Pillow image or None, the error or
    None): a damaged file is reported, never raised, so one pass over a dataset names every bad file."""
    import io

    from PIL import Image

    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return digest, convert(img), None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for a damaged file
        detail = str(exc).split(" <_io.")[0]  # Pillow names the in-memory buffer, not the file: drop it
        return digest, None, f"{type(exc).__name__}: {detail}"


def _centre_square(img: Any, side: int) -> Any:
    """The image resized (shorter side ``side``) and centre-cropped to ``side`` squared, uint8 HWC."""
    import numpy as np
    from PIL import Image

    img = img.convert("RGB")
    w, h = img.size
    scale = side / min(w, h)
    img = img.resize((max(side, round(w * scale)), max(side, round(h * scale))), Image.BILINEAR)
    w, h = img.size
    left, top = (w - side) // 2, (h - side) // 2
    return np.asarray(img.crop((left, top, left + side, top + side)), dtype=np.uint8)


def _decode(args: tuple[str, int]) -> tuple[str, Any, str | None]:
    """(sha256 of the file, the decoded square uint8 HWC array or None, the error or None)."""
    path, side = args
    return read_image(path, lambda img: _centre_square(img, side))


def _decode_all(files: Sequence[Path], side: int) -> list[tuple[str, Any, str | None]]:
    jobs = [(str(f), side) for f in files]
    if len(jobs) < 256:
        return [_decode(j) for j in jobs]
    with ProcessPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        return list(pool.map(_decode, jobs, chunksize=64))


def _split_arrays(classes: Sequence[str], folders: list[tuple[str, list[Path]]], side: int, skip: bool,
                  where: str) -> tuple[Any, list[int], list[str], int]:
    """Decode one split: (N x side x side x 3 uint8, labels, file digests, skipped count)."""
    import numpy as np

    label_of = {name: i for i, name in enumerate(classes)}
    files = [(f, label_of[name]) for name, paths in folders for f in paths]
    decoded = _decode_all([f for f, _ in files], side)
    arrays, labels, digests, skipped = [], [], [], 0
    for (path, label), (digest, array, error) in zip(files, decoded):
        digests.append(digest)
        if array is None:
            if not skip:
                raise ConfigError(f"{where}: image {str(path)!r} cannot be read ({error}). HINT: replace or remove "
                                  f"it, or set data.skip_corrupt: true to skip unreadable images.")
            skipped += 1
            continue
        arrays.append(array)
        labels.append(label)
    return np.stack(arrays) if arrays else np.zeros((0, side, side, 3), np.uint8), labels, digests, skipped


def prepare_cache(settings: Mapping[str, Any], *, printer: Callable[[str], None] = print) -> dict[str, Any]:
    """Decode the dataset into the cache if it is not there yet; return the cache's index.

    The cache is keyed by the digest of every file's bytes and the cached side, so changed images make
    a new entry and an unchanged dataset is decoded once per machine.
    """
    import numpy as np

    side = cache_side(settings["image_size"])
    train = scan(settings["train"], "config field 'data.train'")
    val = scan(settings["val"], "config field 'data.val'") if settings["val"] is not None else None
    classes = [name for name, _ in train]
    listing = {"side": side, "classes": classes, "skip_corrupt": settings["skip_corrupt"],
               "files": [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for _, ps in train + (val or []) for p in ps]}
    root = Path(settings["cache_dir"] or Path.home() / ".cache" / "hwnas" / "images")
    index_path = root / f"{json_digest(listing)}.json"  # a quick key; the content digest is inside
    if index_path.is_file():
        index = read_json(index_path)
        if Path(index["train_path"]).is_file():
            return index
    printer(f"[data] decoding {len(listing['files'])} images into {root} (once)")
    root.mkdir(parents=True, exist_ok=True)
    skip = settings["skip_corrupt"]
    train_x, train_y, train_d, skipped = _split_arrays(classes, train, side, skip, "config field 'data.train'")
    index: dict[str, Any] = {"classes": classes, "side": side, "train_labels": train_y, "skipped": skipped}
    digests = {"train": train_d}
    if val is not None:
        val_x, val_y, val_d, more = _split_arrays(classes, val, side, skip, "config field 'data.val'")
        index.update(val_labels=val_y, skipped=skipped + more)
        digests["val"] = val_d
    index["identity"] = {"kind": "imagefolder", "classes": classes, "files_sha256": json_digest(digests),
                         "images": len(listing["files"]), "skipped": index["skipped"]}
    for name, array in [("train", train_x)] + ([("val", val_x)] if val is not None else []):
        path = root / f"{index['identity']['files_sha256']}-{side}-{name}.npy"
        if not path.is_file():
            tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
            np.save(tmp, array)
            os.replace(tmp, path)
        index[f"{name}_path"] = str(path)
    write_json_atomic(index_path, index)
    return index


def write_example_folder(root: Path, *, classes: int, per_class: int, size: int, seed: int) -> None:
    """A small learnable image folder: class ``k`` is a bright square in a class-specific position on
    noise, saved as PNG (for tests and examples)."""
    import numpy as np
    from PIL import Image

    rng = make_rng(seed, "imagefolder", "example")
    for k in range(classes):
        folder = root / f"class_{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 96, size=(size, size + 8, 3), dtype=np.uint8)
            top = (k * size // classes) % (size - size // 3)
            pixels[top:top + size // 3, top:top + size // 3, k % 3] = 250
            Image.fromarray(pixels).save(folder / f"img_{i:03d}.png")
