"""Training input pipeline: hwnas's image-folder dataset (decoded once into a memory-mapped cache,
augmented in torch) against a plain ``torch.utils.data.DataLoader`` that decodes the same JPEG files
with Pillow on every read, in one run, on the same cores (``--workers`` torch threads for hwnas,
``--workers`` loader processes for the DataLoader). Reports images/s of each and the ratio.

    .venv/bin/python benchmarks/input_pipeline.py --images 1024 --size 224 --batch 64 --workers 2
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainers.imagefolder import MEAN, STD, ImageFolderDataset  # noqa: E402


def write_jpegs(root: Path, images: int, classes: int, side: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(images):
        folder = root / f"c{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, size=(side, int(side * 1.33), 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)


class PlainFolder(torch.utils.data.Dataset):
    """What a user writes without hwnas: decode with Pillow on every read, random resized crop and flip."""

    def __init__(self, root: Path, size: int) -> None:
        self.files = sorted(root.rglob("*.jpg"))
        self.classes = sorted({f.parent.name for f in self.files})
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        with Image.open(self.files[i]) as img:
            x = torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1).float()
        _, h, w = x.shape
        area = np.random.uniform(0.25, 1.0) * h * w
        ratio = math.exp(np.random.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = min(w, int(math.sqrt(area * ratio))), min(h, int(math.sqrt(area / ratio)))
        top, left = np.random.randint(0, h - ch + 1), np.random.randint(0, w - cw + 1)
        crop = F.interpolate(x[None, :, top:top + ch, left:left + cw], size=(self.size, self.size),
                             mode="bilinear", align_corners=False, antialias=True)[0]
        if np.random.rand() < 0.5:
            crop = crop.flip(2)
        mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
        return (crop / 255.0 - mean) / std, self.classes.index(self.files[i].parent.name)


def time_hwnas(settings: dict, batch: int, batches: int) -> float:
    dataset = ImageFolderDataset(seed=0, **ImageFolderDataset.check_settings(settings))
    gen = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    for _ in range(batches):
        dataset.train_batch(torch.randint(0, dataset.train_size, (batch,), generator=gen))
    return batch * batches / (time.perf_counter() - started)


def time_plain(root: Path, size: int, batch: int, batches: int, workers: int) -> float:
    loader = torch.utils.data.DataLoader(PlainFolder(root, size), batch_size=batch, shuffle=True,
                                         num_workers=workers, persistent_workers=workers > 0)
    it, done = iter(loader), 0
    next(it)  # worker start-up is not the steady state
    started = time.perf_counter()
    while done < batches:
        try:
            next(it)
        except StopIteration:
            it = iter(loader)
            continue
        done += 1
    return batch * batches / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        write_jpegs(root, args.images, classes=10, side=int(args.size * 1.3))
        settings = {"train": str(root), "val_fraction": 0.1, "image_size": args.size, "cache_dir": str(Path(tmp) / "c")}
        started = time.perf_counter()
        ImageFolderDataset.prepare(ImageFolderDataset.check_settings(settings), printer=lambda s: None)
        decode_s = time.perf_counter() - started
        torch.set_num_threads(max(1, args.workers))  # the same cores for both: threads here, processes there
        hwnas = time_hwnas(settings, args.batch, args.batches)
        torch.set_num_threads(1)
        plain = time_plain(root, args.size, args.batch, args.batches, args.workers)
    print(f"one-time decode into the cache: {args.images} images in {decode_s:.1f} s")
    print(f"hwnas imagefolder ({args.workers} threads, cache):    {hwnas:8.1f} images/s")
    print(f"DataLoader + Pillow ({args.workers} workers, per read): {plain:8.1f} images/s")
    print(f"ratio hwnas / DataLoader: {hwnas / plain:.2f}")


if __name__ == "__main__":
    main()
