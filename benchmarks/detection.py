"""Detection: the supernet's training step rate at 320 px, and one candidate's scoring time by phase.

    python benchmarks/detection.py [--space mobiledet] [--width 1.0] [--batch 8] [--steps 6] [--images 60]

Writes a synthetic COCO dataset (``hwnas data synth-coco``'s generator) into a temporary directory,
trains the space's SSDLite supernet for a few single-path steps at 320x320 (the MobileDets setting) and
reports steps/s and images/s; then scores one candidate as the search does and splits the time into
BN recalibration, inference, NMS (with box decoding) and COCOeval.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mobiledet")
    parser.add_argument("--width", type=float, default=1.0, help="the space's width_mult")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--images", type=int, default=60, help="synthetic images (80%% train, 20%% val)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from spaces import get_space
    from trainers import SupernetTrainSettings, SupernetTrainer, make_dataset, make_task, recalibrate_bn
    from trainers._synth_coco import write_synthetic_coco
    from trainers.detect import DetectionTask

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_synthetic_coco(root / "coco", images=args.images, seed=0, image_size=320)
        settings = {"synthetic": {"dir": str(root / "coco"), "images": args.images, "seed": 0}, "image_size": 320,
                    "cache_dir": str(root / "cache")}
        dataset = make_dataset("coco", seed=0, settings=settings)
        extra = {"target": "cpu"} if args.space == "mobiledet" else {}
        space = get_space(args.space, task="detection", input_size=320, num_classes=dataset.num_classes,
                          width_mult=args.width, **extra)
        train = SupernetTrainSettings(steps=args.steps + 1, batch_size=args.batch, lr=0.05, momentum=0.9,
                                      weight_decay=4e-5, label_smoothing=0.0, checkpoint_every=10**6,
                                      threads=args.threads)
        trainer = SupernetTrainer(space=space, task=make_task("detection", {}), dataset=dataset, settings=train,
                                  seed=0, checkpoint_path=root / "supernet.pt")
        trainer.train_steps(1)  # warm-up: first-touch allocation
        began = time.perf_counter()
        trainer.train_steps(args.steps)
        seconds = time.perf_counter() - began
        step_rate = args.steps / seconds

        torch.set_num_threads(1)  # as a search trial scores
        task = DetectionTask()
        task.bind(space)
        encoding = space.default_encoding()
        began = time.perf_counter()
        model = space.extract(trainer.model, encoding)
        recalibrate_bn(model, dataset.calibration_images(4, 16))
        recal = time.perf_counter() - began
        metrics = task.evaluate(model.eval(), dataset, batch_size=16)
        timings = task.last_timings
    print(json.dumps({
        "space": args.space, "width_mult": args.width, "input": 320, "batch": args.batch, "threads": args.threads,
        "anchors": len(space.detection_anchors()), "steps_per_s": round(step_rate, 3),
        "images_per_s": round(step_rate * args.batch, 2),
        "scoring_s": {"bn_recalibration": round(recal, 3), "inference": round(timings["inference"], 3),
                      "nms": round(timings["nms"], 3), "cocoeval": round(timings["cocoeval"], 3)},
        "val_images": len(dataset.val_image_ids), "detections": len(detections), "map_50": round(metrics["map_50"], 4),
    }, indent=1))


if __name__ == "__main__":
    main()
