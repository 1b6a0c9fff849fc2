"""How fast the MoGA supernet learns, and whether its candidate accuracies rank architectures.

Trains the supernet with uniformly sampled single paths on the synthetic task, prints the train
accuracy curve and the time per step, then scores 20 random candidates plus all-0 and all-11 with
inherited weights (BN recalibrated): the spread of their validation accuracy and loss, a repeat
evaluation that must be identical, and the Spearman correlation with params and MAdds. Candidates are
scored at the end and at the optional ``--eval-at`` steps; the Spearman correlation of the candidate
accuracies at each of those steps with the final ones says whether the ranking is stable. With
``--seeds 0,1`` one supernet is trained per seed (same data, generated from seed 0) and the final
rankings are compared across seeds.

    .venv/bin/python benchmarks/supernet_learning.py [--steps 600] [--eval-at 300,450] [--noise 0.6] \
        [--seeds 0,1] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trainers  # noqa: E402
from cluster.costmodels import spearman_rho as spearman  # noqa: E402
from spaces import MogaSpace  # noqa: E402
from core.seeding import make_rng  # noqa: E402

SPACE_SETTINGS = {"width_mult": 0.35, "input_size": 32, "num_classes": 10, "stem_stride": 2, "dropout": 0.0}
DATA_SETTINGS = {"num_classes": 10, "image_size": 32, "train_size": 4096, "val_size": 1024, "noise": 0.6}
SEED = 0  # the data and the candidates; --seeds picks the supernets' own seeds


def train(
    steps: int, checkpoint: Path, chunk: int, eval_at: Sequence[int], *, noise: float, supernet_seed: int
) -> tuple[trainers.SupernetTrainer, list[dict[str, Any]], list[dict[str, Any]]]:
    checkpoint.unlink(missing_ok=True)  # always a fresh run: an old checkpoint would be resumed
    settings = trainers.SupernetTrainSettings(
        steps=steps, batch_size=64, lr=0.1, momentum=0.9, weight_decay=4e-5, label_smoothing=0.1,
        checkpoint_every=100, threads=1,
    )  # fmt: skip
    dataset = trainers.SyntheticDataset(seed=SEED, **{**DATA_SETTINGS, "noise": noise})
    task = trainers.make_task(dataset.task, vars(settings))  # the task takes label_smoothing from the settings
    trainer = trainers.SupernetTrainer(
        space=MogaSpace(**SPACE_SETTINGS), task=task, dataset=dataset, settings=settings, seed=supernet_seed,
        checkpoint_path=checkpoint,
    )  # fmt: skip
    curve, evaluations = [], []
    while trainer.step < steps:
        start = trainer.step
        info = trainer.train_steps(chunk)
        info["steps_run"] = info["step"] - start
        info["seconds_per_step"] = info["seconds"] / info["steps_run"]
        curve.append(info)
        print(
            f"step {info['step']:4d}  loss {info['loss']:.3f}  train acc (last {info['steps_run']}) "
            f"{info['train_accuracy']:.3f}  {info['seconds_per_step']:.3f} s/step", flush=True,
        )  # fmt: skip
        if trainer.step in eval_at and trainer.step < steps:
            evaluations.append(evaluate(trainer))  # scores copies: the supernet and its training are untouched
    evaluations.append(evaluate(trainer))
    return trainer, curve, evaluations


def score(trainer: trainers.SupernetTrainer, encoding: Sequence[int]) -> tuple[float, float]:
    """Validation accuracy and mean cross-entropy (which keeps ranking once accuracy saturates)."""
    model = trainers.inherit_and_calibrate(  # BN batches drawn from the dataset's seed (SEED), as before
        space=trainer.space, supernet=trainer.model, encoding=encoding, dataset=trainer.dataset,
        bn_batches=4, bn_batch_size=128,
    )  # fmt: skip
    acc = trainers.score(trainer.task, model, trainer.dataset, batch_size=256)["accuracy"]
    total = seen = 0.0
    with torch.no_grad():
        for x, y in trainer.dataset.val_batches(256):
            total += float(torch.nn.functional.cross_entropy(model(x), y, reduction="sum"))
            seen += len(y)
    return acc, total / seen


def evaluate(trainer: trainers.SupernetTrainer) -> dict[str, Any]:
    space = trainer.space
    rng = make_rng(SEED, "benchmark", "candidates")
    encodings = [space.sample(rng) for _ in range(20)] + [(0,) * 14, (11,) * 14]
    rows = []
    print(f"candidates at step {trainer.step} (supernet seed {trainer.seed}):")
    for encoding in encodings:
        counts = space.count(encoding)
        acc, loss = score(trainer, encoding)
        rows.append({"encoding": space.to_string(encoding), "accuracy": acc, "val_loss": loss, **counts})
        print(f"  {rows[-1]['encoding']:<42} acc {acc:.4f}  val loss {loss:.4f}  params {counts['params']:>7}  "
              f"MAdds {counts['madds']:>9}", flush=True)
    accs, losses = [r["accuracy"] for r in rows], [r["val_loss"] for r in rows]
    params, madds = [r["params"] for r in rows], [r["madds"] for r in rows]
    repeat = [score(trainer, encodings[0]) for _ in range(2)]
    result = {
        "step": trainer.step, "supernet_seed": trainer.seed, "candidates": rows,
        "all0": accs[-2], "all11": accs[-1], "spread": max(accs) - min(accs),
        "min": min(accs), "median": statistics.median(accs), "max": max(accs),
        "loss_min": min(losses), "loss_median": statistics.median(losses), "loss_max": max(losses),
        "repeat": {"encoding": rows[0]["encoding"], "first": (accs[0], losses[0]), "again": repeat},
        "spearman_params": spearman(accs, params), "spearman_madds": spearman(accs, madds),
        "spearman_neg_loss_params": spearman([-v for v in losses], params),
        "spearman_neg_loss_madds": spearman([-v for v in losses], madds),
    }  # fmt: skip
    report(result)
    return result


def report(r: dict[str, Any]) -> None:
    rep = r["repeat"]
    print(f"step {r['step']} (seed {r['supernet_seed']}): candidate accuracy min {r['min']:.4f}  "
          f"median {r['median']:.4f}  max {r['max']:.4f}  spread {r['spread']:.4f};  "
          f"all-0 {r['all0']:.4f}  all-11 {r['all11']:.4f};  "
          f"val loss min {r['loss_min']:.4f}  median {r['loss_median']:.4f}  max {r['loss_max']:.4f}")
    print(f"  same architecture scored 3 times (acc, loss): {rep['first']} {rep['again'][0]} {rep['again'][1]}  "
          f"identical: {len({tuple(rep['first']), *map(tuple, rep['again'])}) == 1}")
    print(f"  Spearman with params / MAdds: accuracy {r['spearman_params']:.3f} / {r['spearman_madds']:.3f};  "
          f"-val loss {r['spearman_neg_loss_params']:.3f} / {r['spearman_neg_loss_madds']:.3f}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--chunk", type=int, default=50, help="steps per printed point of the curve")
    parser.add_argument("--checkpoint", type=Path, default=Path("/tmp/hwnas-bench/supernet_learning.pt"))
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--eval-at", default="", help="extra steps to score the candidates at, e.g. 300,450")
    parser.add_argument("--noise", type=float, default=DATA_SETTINGS["noise"], help="data.noise")
    parser.add_argument("--seeds", default="0", help="supernet seeds, one training run each, e.g. 0,1")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    eval_at = {int(v) for v in args.eval_at.split(",") if v.strip()}
    seeds = [int(v) for v in args.seeds.split(",") if v.strip()]
    runs = []
    for seed in seeds:
        print(f"=== supernet seed {seed}, noise {args.noise}", flush=True)
        _, curve, evaluations = train(
            args.steps, args.checkpoint, args.chunk, eval_at, noise=args.noise, supernet_seed=seed
        )
        timed = curve[1:] or curve  # the first chunk includes warm-up
        seconds_per_step = sum(c["seconds"] for c in timed) / sum(c["steps_run"] for c in timed)
        runs.append({"seed": seed, "curve": curve, "seconds_per_step": seconds_per_step, "evaluations": evaluations})

    summary: dict[str, Any] = {"noise": args.noise, "stability": [], "across_seeds": []}
    print()
    for run in runs:
        print(f"supernet seed {run['seed']}: mean time per step (after the first chunk) {run['seconds_per_step']:.3f} s")
        print("  train accuracy curve: " + ", ".join(f"{c['step']}:{c['train_accuracy']:.3f}" for c in run["curve"]))
        for evaluation in run["evaluations"]:
            report(evaluation)
        final = [c["accuracy"] for c in run["evaluations"][-1]["candidates"]]
        for evaluation in run["evaluations"][:-1]:
            rho = spearman([c["accuracy"] for c in evaluation["candidates"]], final)
            summary["stability"].append({"seed": run["seed"], "step": evaluation["step"], "spearman_vs_final": rho})
            print(f"  Spearman of candidate accuracy, step {evaluation['step']} vs step {run['evaluations'][-1]['step']}: "
                  f"{rho:.3f}")  # fmt: skip
    for i in range(len(runs)):
        for j in range(i + 1, len(runs)):
            a, b = ([c["accuracy"] for c in r["evaluations"][-1]["candidates"]] for r in (runs[i], runs[j]))
            rho = spearman(a, b)
            summary["across_seeds"].append({"seeds": [runs[i]["seed"], runs[j]["seed"]], "spearman": rho})
            print(f"Spearman of final candidate accuracy, supernet seed {runs[i]['seed']} vs {runs[j]['seed']}: {rho:.3f}")
    if args.json is not None:
        args.json.write_text(json.dumps({"runs": runs, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
