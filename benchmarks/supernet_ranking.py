"""Does the supernet rank architectures like stand-alone training does?

Ground truth: 8 diverse MoGA architectures (all-0, all-11, all-6, all-4 and 4 random ones from a fixed
seed) are each trained STAND-ALONE (``space.build`` + the supernet's optimiser recipe: SGD with Nesterov
momentum, cosine LR with warm-up, label smoothing; ``--standalone-steps`` steps) and scored on the
validation split (accuracy and mean cross-entropy). Then a supernet is trained at the same setting
(``--steps``, ``--sampling``) and the same 8 architectures are scored with inherited weights and
recalibrated BN, exactly as the search does. Reported: Kendall tau and Spearman rho of the supernet's
ranking vs the stand-alone one (by accuracy and by -loss), the spread of both, the cross-seed agreement
of the supernets (``--seeds 0,1``) and wall times. The last line is one JSON object for BENCHMARKS.md.

The stand-alone results depend only on the data, the space and ``--standalone-steps``; they are cached
in ``--cache`` (keyed by those) so several supernet settings can be compared against one ground truth.

    .venv/bin/python benchmarks/supernet_ranking.py --stem-stride 1 --width 0.35 --noise 0.45 \
        --val-size 2048 --steps 600 --sampling fair --standalone-steps 600 --seeds 0,1
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trainers  # noqa: E402
from cluster.costmodels import kendall_tau, spearman_rho  # noqa: E402
from spaces import MogaSpace  # noqa: E402
from core.seeding import make_rng, torch_generator  # noqa: E402

SEED = 0  # the data, the random architectures, the stand-alone initialisations
RECIPE = {"batch_size": 64, "lr": 0.1, "momentum": 0.9, "weight_decay": 4e-5, "label_smoothing": 0.1}
TASK = trainers.ClassificationTask()  # scores validation accuracy (label smoothing only affects the training loss)


# Rank statistics are the ones the cost models report (tested against scipy there).
spearman, kendall = spearman_rho, kendall_tau


# ------------------------------------------------------------------------------------ pieces
def architectures(space: MogaSpace, n_random: int) -> list[tuple[int, ...]]:
    rng = make_rng(SEED, "benchmark", "ranking", "architectures")
    fixed = [(0,) * 14, (11,) * 14, (6,) * 14, (4,) * 14]
    return fixed + [space.sample(rng) for _ in range(n_random)]


def lr_at(step: int, steps: int, lr: float) -> float:  # the supernet trainer's schedule
    warmup = max(1, steps // 20)
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * lr * (1 + np.cos(np.pi * progress))


def val_scores(model: nn.Module, dataset: trainers.Dataset, batch_size: int = 512) -> tuple[float, float]:
    """Validation accuracy (the task's metric, as the search scores it) and mean cross-entropy."""
    acc = trainers.score(TASK, model, dataset, batch_size=batch_size)["accuracy"]  # puts the model in eval mode
    loss, seen = 0.0, 0
    with torch.no_grad():
        for x, y in dataset.val_batches(batch_size):
            loss += float(nn.functional.cross_entropy(model(x), y, reduction="sum"))
            seen += len(y)
    return acc, loss / seen


def train_standalone(space: MogaSpace, encoding: Sequence[int], data: trainers.Dataset,
                     steps: int) -> dict[str, Any]:
    tag = space.to_string(encoding)
    model = space.build(encoding, generator=torch_generator(SEED, "benchmark", "standalone", tag))
    opt = torch.optim.SGD(model.parameters(), lr=RECIPE["lr"], momentum=RECIPE["momentum"],
                          weight_decay=RECIPE["weight_decay"], nesterov=True)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=RECIPE["label_smoothing"])
    n, bs = data.train_size, RECIPE["batch_size"]
    per_epoch = n // bs
    started = time.perf_counter()
    model.train()
    for step in range(steps):
        epoch, k = divmod(step, per_epoch)
        perm = torch.randperm(n, generator=torch_generator(SEED, "benchmark", "standalone-epoch", epoch))
        idx = perm[k * bs : (k + 1) * bs]
        x, y = data.train_batch(idx)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, RECIPE["lr"])
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
    seconds = time.perf_counter() - started
    acc, loss = val_scores(model, data)
    return {"encoding": tag, "accuracy": acc, "val_loss": loss, "seconds": seconds,
            "seconds_per_step": seconds / steps, **space.count(encoding)}


def ground_truth(space: MogaSpace, encodings: list[tuple[int, ...]], data: trainers.Dataset,
                 data_settings: dict[str, Any], steps: int, cache: Path) -> list[dict[str, Any]]:
    key = json.dumps({"space": space.settings, "data": data_settings, "steps": steps, "seed": SEED,
                      "recipe": RECIPE}, sort_keys=True)
    store = json.loads(cache.read_text()) if cache.exists() else {}
    rows = store.get(key, {})
    out = []
    for enc in encodings:
        tag = space.to_string(enc)
        if tag not in rows:
            rows[tag] = train_standalone(space, enc, data, steps)
            store[key] = rows
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(store, indent=1))
            r = rows[tag]
            print(f"  stand-alone {tag:<42} acc {r['accuracy']:.4f}  loss {r['val_loss']:.4f}  "
                  f"{r['seconds']:.0f} s ({r['seconds_per_step']:.3f} s/step)", flush=True)
        else:
            r = rows[tag]
            print(f"  stand-alone {tag:<42} acc {r['accuracy']:.4f}  loss {r['val_loss']:.4f}  (cached)", flush=True)
        out.append(rows[tag])
    return out


def train_supernet(space: MogaSpace, data: trainers.Dataset, args: argparse.Namespace,
                   seed: int) -> trainers.SupernetTrainer:
    checkpoint = args.checkpoint_dir / f"supernet_ranking_{seed}.pt"
    checkpoint.unlink(missing_ok=True)
    settings = trainers.SupernetTrainSettings(
        steps=args.steps, checkpoint_every=args.steps, threads=1, sampling=args.sampling, **RECIPE,
    )  # fmt: skip
    task = trainers.make_task(data.task, vars(settings))  # its training loss smooths labels by the recipe
    return trainers.SupernetTrainer(space=space, task=task, dataset=data, settings=settings, seed=seed,
                                    checkpoint_path=checkpoint)


def supernet_scores(trainer: trainers.SupernetTrainer, encodings: list[tuple[int, ...]],
                    bn_batches: int, bn_batch_size: int) -> tuple[list[dict[str, Any]], float]:
    rows, started = [], time.perf_counter()
    for enc in encodings:
        model = trainers.inherit_and_calibrate(  # BN batches drawn from the dataset's seed, SEED
            space=trainer.space, supernet=trainer.model, encoding=enc, dataset=trainer.dataset,
            bn_batches=bn_batches, bn_batch_size=bn_batch_size,
        )  # fmt: skip
        acc, loss = val_scores(model, trainer.dataset)
        rows.append({"encoding": trainer.space.to_string(enc), "accuracy": acc, "val_loss": loss})
    return rows, (time.perf_counter() - started) / len(encodings)


def compare(truth: list[dict[str, Any]], scored: list[dict[str, Any]]) -> dict[str, float]:
    ta, sa = [r["accuracy"] for r in truth], [r["accuracy"] for r in scored]
    tl, sl = [-r["val_loss"] for r in truth], [-r["val_loss"] for r in scored]
    return {"kendall_acc": kendall(sa, ta), "spearman_acc": spearman(sa, ta),
            "kendall_loss": kendall(sl, tl), "spearman_loss": spearman(sl, tl),
            "kendall_supernet_loss_vs_true_acc": kendall(sl, ta)}


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stem-stride", type=int, default=2)
    p.add_argument("--width", type=float, default=0.35)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--noise", type=float, default=0.45)
    p.add_argument("--train-size", type=int, default=4096)
    p.add_argument("--val-size", type=int, default=1024)
    p.add_argument("--steps", type=int, default=600, help="supernet steps")
    p.add_argument("--sampling", choices=("uniform", "fair"), default="uniform")
    p.add_argument("--standalone-steps", type=int, default=600)
    p.add_argument("--random-archs", type=int, default=4)
    p.add_argument("--seeds", default="0", help="supernet seeds, e.g. 0,1 (cross-seed agreement)")
    p.add_argument("--bn-batches", type=int, default=4)
    p.add_argument("--bn-batch-size", type=int, default=128)
    p.add_argument("--truth-only", action="store_true", help="only train (or load) the stand-alone ground truth")
    p.add_argument("--cache", type=Path, default=Path("/tmp/hwnas-bench/standalone_cache.json"))
    p.add_argument("--checkpoint-dir", type=Path, default=Path("/tmp/hwnas-bench"))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    space_settings = {"width_mult": args.width, "input_size": args.image_size, "num_classes": args.num_classes,
                      "stem_stride": args.stem_stride, "dropout": 0.0}
    data_settings = {"num_classes": args.num_classes, "image_size": args.image_size, "train_size": args.train_size,
                     "val_size": args.val_size, "noise": args.noise}
    space = MogaSpace(**space_settings)
    data = trainers.SyntheticDataset(seed=SEED, **data_settings)
    encodings = architectures(space, args.random_archs)
    print(f"setting: {space_settings} {data_settings}", flush=True)

    print(f"=== stand-alone ground truth ({args.standalone_steps} steps each)", flush=True)
    t0 = time.perf_counter()
    truth = ground_truth(space, encodings, data, data_settings, args.standalone_steps, args.cache)
    accs = [r["accuracy"] for r in truth]
    se = float(np.sqrt(np.mean(accs) * (1 - np.mean(accs)) / args.val_size))  # binomial s.e. of one accuracy
    print(f"stand-alone accuracy min {min(accs):.4f} median {statistics.median(accs):.4f} max {max(accs):.4f} "
          f"spread {max(accs) - min(accs):.4f} (binomial s.e. of one accuracy {se:.4f})  "
          f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    result: dict[str, Any] = {
        "benchmark": "supernet_ranking", "space": space_settings, "data": data_settings,
        "standalone_steps": args.standalone_steps, "supernet_steps": args.steps, "sampling": args.sampling,
        "standalone": {"spread": max(accs) - min(accs), "min": min(accs), "max": max(accs), "se": se,
                       "seconds_per_step_mean": statistics.mean(r["seconds_per_step"] for r in truth),
                       "rows": truth},
        "runs": [],
    }
    if not args.truth_only:
        for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
            print(f"=== supernet seed {seed}: {args.steps} steps, {args.sampling} sampling", flush=True)
            trainer = train_supernet(space, data, args, seed)
            t0 = time.perf_counter()
            info = trainer.train_steps(args.steps)
            train_s = time.perf_counter() - t0
            rows, eval_s = supernet_scores(trainer, encodings, args.bn_batches, args.bn_batch_size)
            for r, t in zip(rows, truth):
                print(f"  {r['encoding']:<42} supernet acc {r['accuracy']:.4f} loss {r['val_loss']:.4f}   "
                      f"stand-alone acc {t['accuracy']:.4f} loss {t['val_loss']:.4f}")
            sa = [r["accuracy"] for r in rows]
            stats = compare(truth, rows)
            run = {"seed": seed, "train_seconds": train_s, "seconds_per_step": train_s / args.steps,
                   "final_train_accuracy_last_chunk": info["train_accuracy"],
                   "eval_seconds_per_candidate": eval_s, "spread": max(sa) - min(sa),
                   "median": statistics.median(sa), **stats, "rows": rows}
            result["runs"].append(run)
            print(f"  supernet spread {run['spread']:.4f} median {run['median']:.4f};  vs stand-alone: "
                  f"Kendall acc {stats['kendall_acc']:.3f}  Spearman acc {stats['spearman_acc']:.3f}  "
                  f"Kendall -loss {stats['kendall_loss']:.3f}  Spearman -loss {stats['spearman_loss']:.3f};  "
                  f"train {train_s:.0f} s ({run['seconds_per_step']:.3f} s/step), "
                  f"eval {eval_s:.2f} s/candidate", flush=True)
        runs = result["runs"]
        if len(runs) >= 2:
            a, b = runs[0]["rows"], runs[1]["rows"]
            result["across_seeds"] = {
                "kendall_acc": kendall([r["accuracy"] for r in a], [r["accuracy"] for r in b]),
                "spearman_acc": spearman([r["accuracy"] for r in a], [r["accuracy"] for r in b]),
                "kendall_loss": kendall([r["val_loss"] for r in a], [r["val_loss"] for r in b]),
            }
            print(f"across supernet seeds {runs[0]['seed']} vs {runs[1]['seed']}: {result['across_seeds']}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    brief = {k: v for k, v in result.items() if k not in ("standalone", "runs")}
    brief["standalone"] = {k: v for k, v in result["standalone"].items() if k != "rows"}
    brief["standalone"]["accuracy"] = {r["encoding"]: round(r["accuracy"], 4) for r in truth}
    brief["runs"] = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "rows"}
                     for r in result["runs"]]
    print(json.dumps(brief))


if __name__ == "__main__":
    main()
