"""``hwnas data synth-coco``: write a small, learnable COCO-format detection dataset to try detection on.

No Ray, no MLflow: the images and annotation files are drawn on this machine from the seed
(:mod:`trainers._synth_coco`). Arguments are checked before anything is written; a refusal is one
line on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import yaml

__all__ = ["add_data_commands"]

DEFAULT_IMAGES = 200


def _cmd_synth_coco(args: argparse.Namespace) -> int:
    from trainers._synth_coco import CATEGORIES, check_request, write_synthetic_coco

    out = Path(args.out_dir)
    check_request(out, args.images, images_name="--images")  # before the first byte is written
    start = time.monotonic()
    summary = write_synthetic_coco(out.resolve(), images=args.images, seed=args.seed)  # absolute paths printed
    seconds = time.monotonic() - start
    categories = ", ".join(f"{cid} {name}" for cid, name, _ in CATEGORIES)
    print(f"hwnas: wrote {summary.train_images + summary.val_images} synthetic COCO images to {out} in "
          f"{seconds:.1f} s ({summary.train_images} train, {summary.val_images} val; {summary.objects} objects, "
          f"{summary.crowds} crowd regions; categories {categories})")
    for path in (summary.root / "train", summary.root / "val", summary.train_annotations, summary.val_annotations):
        print(f"  {path}")
    print("paste into a config:")
    block = {"data": summary.data_settings(image_size=128)}  # the generated images are about 128 px
    print(yaml.safe_dump(block, sort_keys=False, default_flow_style=False).rstrip())
    return 0


def add_data_commands(sub: Any) -> dict[str, Any]:
    """Register ``data`` on the main parser; returns {command: handler}."""
    data = sub.add_parser("data", help="generate example datasets")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    s = data_sub.add_parser(
        "synth-coco", help="write a small synthetic COCO-format detection dataset",
        description="Draws 3 shape categories (ids 3, 7, 11) on noisy backgrounds, 1-4 objects per image and a few "
                    "crowd regions, split about 80/20 into train and val with COCO annotation files. Deterministic "
                    "from --seed.")
    s.add_argument("out_dir", metavar="OUT_DIR", help="a new or empty directory to write into")
    s.add_argument("--images", type=int, default=DEFAULT_IMAGES, metavar="N",
                   help=f"images in all, 2 to 100000 (default {DEFAULT_IMAGES})")
    s.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the drawing (default 0)")
    return {"data": lambda a: {"synth-coco": _cmd_synth_coco}[a.data_command](a)}
