"""How well does a supernet rank architectures, as a fraction of what stand-alone training itself can?

The study of issue 13, on an experiment config's task (default: the quickstart's):

1. **Architectures.** ``--archs`` of them (12) spread over the space: 4000 architectures from a fixed
   seed (drawn tilted toward small or large, see :func:`spread_architectures`) are cut into ``--archs``
   bins of equal width by MAdds, and from each bin the one farthest (in per-layer choices, Hamming) from
   those already taken is kept. So the set spans the MAdds range and the block choices, not only its
   extremes.
2. **Ground truth, with its ceiling.** Each architecture is trained stand-alone with the retrain stage's
   own loop (:class:`trainers.retrain.RetrainLoop`, the config's ``retrain`` section or the quickstart's
   recipe) once per ``--standalone-seeds`` seed (a seed changes the initialisation and the batch order;
   the data stay the config's). The Kendall tau between two stand-alone seeds is the **ceiling**: no
   proxy can agree with one stand-alone run better than another run of the same training does.
3. **Supernets.** For each ``--variant NAME:KEY=VALUE,...`` (supernet settings on top of the config's), a
   supernet is trained per ``--supernet-seeds`` seed and scores every architecture as the search does
   (inherited weights, BN recalibrated). Its Kendall tau against each stand-alone seed, averaged, is
   reported absolute and as a fraction of the ceiling, each with a bootstrap interval over architectures.

Scores are measured on a validation split of ``--val-size`` images (4096 by default; the training split
does not depend on it, so the models train on exactly the config's data). Stand-alone results are cached,
one JSON file per (architecture, seed, recipe, data), so two processes can fill the cache at once::

    .venv/bin/python benchmarks/ranking_study.py --standalone-only --standalone-seeds 0 &
    .venv/bin/python benchmarks/ranking_study.py --standalone-only --standalone-seeds 1 &
    wait
    .venv/bin/python benchmarks/ranking_study.py --variant baseline: --variant longer:steps=1200
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import yaml
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trainers  # noqa: E402
from core.digest import json_digest  # noqa: E402
from core.jsonio import write_json_atomic  # noqa: E402
from core.seeding import make_rng  # noqa: E402
from orchestrator.config import load_config  # noqa: E402
from spaces import SearchSpace  # noqa: E402
from trainers.retrain import RetrainJob, RetrainLoop, check_retrain_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: The quickstart_retrain recipe, for configs without a retrain section.
DEFAULT_RECIPE = {"epochs": 10, "batch_size": 64, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9,
                  "weight_decay": 4e-5, "schedule": "cosine", "warmup_epochs": 1, "label_smoothing": 0.1}


# ------------------------------------------------------------------------------------ architectures
def spread_architectures(space: SearchSpace, n: int, seed: int, pool: int = 4000) -> list[tuple[int, ...]]:
    """``n`` architectures, one per MAdds bin (equal widths over the pool's range), each the farthest (in
    per-layer choices) from those already taken.

    A uniform sample crowds around the median MAdds, so the pool is drawn tilted: each architecture has a
    size level ``t`` and each layer takes, half the time, the choice at ``t`` of its range (choices are
    listed cheap to costly), else a uniform one. That reaches both ends of the range with mixed blocks.
    """
    rng = make_rng(seed, "benchmark", "ranking-study", "pool")
    sizes = [d.size for d in space.dims]
    candidates = set()
    for _ in range(pool):
        t = rng.random()
        candidates.add(tuple(int(rng.integers(size)) if rng.random() < 0.5 else
                             min(size - 1, int(t * size)) for size in sizes))
    ordered = sorted(candidates)
    madds = np.array([space.count(e)["madds"] for e in ordered])
    edges = np.linspace(madds.min(), madds.max(), n + 1)
    chosen: list[tuple[int, ...]] = []
    for k in range(n):
        members = [i for i in range(len(ordered)) if edges[k] <= madds[i] <= edges[k + 1]]
        middle = (edges[k] + edges[k + 1]) / 2

        def distance(i: int) -> tuple[int, float]:
            enc = np.array(ordered[i])
            nearest = min((int((enc != np.array(c)).sum()) for c in chosen), default=len(enc))
            return nearest, -abs(float(madds[i]) - middle)  # ties: nearest the bin's middle
        chosen.append(ordered[max(members, key=distance)])
    return chosen


# ------------------------------------------------------------------------------------ stand-alone
def standalone(space_name: str, space_settings: dict, data_kind: str, data_settings: dict, data_seed: int,
               recipe: dict, encoding: Sequence[int], seed: int, cache: Path, tag: str) -> dict[str, Any]:
    key = json_digest({"space": [space_name, space_settings], "data": [data_kind, data_settings, data_seed],
                       "recipe": recipe, "encoding": list(encoding), "seed": seed}, length=16)
    path = cache / f"standalone-{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    # The seed changes the initialisation and the batch order (both drawn from the candidate id); the
    # data come from the config's seed, so every seed trains on the same images.
    job = RetrainJob(retrain_id=f"study-{key}", candidate_id=f"{tag}-s{seed}", encoding=tuple(encoding),
                     space_name=space_name, space_settings=space_settings, data_kind=data_kind,
                     data_settings=data_settings, seed=data_seed, settings=recipe)
    loop = RetrainLoop(job)
    started = time.perf_counter()
    for _ in range(recipe["epochs"]):
        loop.train_epoch()
    metrics = loop.evaluate()
    row = {"encoding": list(encoding), "seed": seed, **metrics, "seconds": time.perf_counter() - started}
    write_json_atomic(path, row)
    return row


# ------------------------------------------------------------------------------------ supernets
def supernet_scores(cfg: Any, space: SearchSpace, data: trainers.Dataset, data_settings: dict[str, Any],
                    archs: list[tuple[int, ...]], overrides: dict[str, Any], seed: int, cache: Path) -> dict[str, Any]:
    """Train the supernet of the config's settings with ``overrides`` and score ``archs`` as the search does
    (cached by everything that decides them)."""
    settings = trainers.SupernetTrainSettings(**{**vars(cfg.supernet), "threads": 1, **overrides})
    key = json_digest({"space": [cfg.space.name, cfg.space_settings()], "data": [cfg.data.kind, data_settings, cfg.seed], "supernet": _identity(settings), "evaluation": vars(cfg.evaluation),
                       "seed": seed, "archs": [list(a) for a in archs]}, length=16)
    path = cache / f"supernet-{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    task = trainers.make_task(data.task, vars(settings))
    checkpoint = cache / f"supernet-{key}.pt"
    checkpoint.unlink(missing_ok=True)
    trainer = trainers.SupernetTrainer(space=space, task=task, dataset=data, settings=settings, seed=seed,
                                       checkpoint_path=checkpoint)
    started = time.perf_counter()
    info = trainer.train_steps(settings.steps)
    train_seconds = time.perf_counter() - started
    quality = task.METRICS[0]
    metrics = []
    for enc in archs:
        model = trainers.inherit_and_calibrate(space=space, supernet=trainer.model, encoding=enc, dataset=data,
                                               bn_batches=cfg.evaluation.bn_batches,
                                               bn_batch_size=cfg.evaluation.bn_batch_size)
        metrics.append(trainers.score(task, model, data, batch_size=cfg.evaluation.batch_size))
    checkpoint.unlink(missing_ok=True)
    row = {"scores": [m[quality] for m in metrics], "metrics": metrics, "train_seconds": train_seconds,
           "seconds_per_step": train_seconds / settings.steps,
           "final_train_accuracy": info["train_accuracy"], "final_loss": info["loss"]}
    write_json_atomic(path, row)
    return row


def _identity(settings: trainers.SupernetTrainSettings) -> dict[str, Any]:
    """The settings that decide a supernet: a setting added since the study began counts only off its default,
    so the cached supernets stay valid."""
    return {k: v for k, v in vars(settings).items() if not (k == "kernel_weights" and v == "shared")}


# ------------------------------------------------------------------------------------ statistics
def kendall(a: Sequence[float], b: Sequence[float]) -> float:
    tau = stats.kendalltau(a, b).statistic
    return 0.0 if np.isnan(tau) else float(tau)


def agreement(proxy: np.ndarray, truth: np.ndarray) -> float:
    """Mean Kendall tau of ``proxy`` against each stand-alone seed (rows of ``truth``)."""
    return float(np.mean([kendall(proxy, t) for t in truth]))


def bootstrap(proxy: np.ndarray, truth: np.ndarray, rounds: int, seed: int) -> dict[str, list[float]]:
    """95% percentile intervals, resampling architectures: of the agreement, the ceiling and their ratio."""
    rng = make_rng(seed, "benchmark", "ranking-study", "bootstrap")
    n = len(proxy)
    values: dict[str, list[float]] = {"tau": [], "ceiling": [], "fraction": []}
    for _ in range(rounds):
        idx = rng.integers(0, n, n)
        tau, ceiling = agreement(proxy[idx], truth[:, idx]), kendall(truth[0, idx], truth[1, idx])
        values["tau"].append(tau)
        values["ceiling"].append(ceiling)
        if ceiling > 0:
            values["fraction"].append(tau / ceiling)
    return {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in values.items() if v}


# ------------------------------------------------------------------------------------ main
def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    name, _, body = text.partition(":")
    overrides = {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition("=")
        overrides[key.strip()] = yaml.safe_load(value.strip())
    return name or "baseline", overrides


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=ROOT / "examples" / "quickstart.yaml")
    p.add_argument("--archs", type=int, default=12)
    p.add_argument("--val-size", type=int, default=4096, help="validation images of a generated classification "
                   "set (a detection config names its own val split)")
    p.add_argument("--metric", default=None, help="the score to rank by (default: the task's first, accuracy or map)")
    p.add_argument("--standalone-seeds", default="0,1")
    p.add_argument("--standalone-only", action="store_true")
    p.add_argument("--supernet-only", action="store_true", help="train and score the variants' supernets only")
    p.add_argument("--variant", action="append", default=[], help="NAME:KEY=VALUE,... supernet settings")
    p.add_argument("--supernet-seeds", default="0")
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--cache", type=Path, default=Path("/tmp/hwnas-bench/ranking-study"))
    p.add_argument("--json", type=Path, default=None, help="append one JSON line per variant here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    cfg = load_config(args.config)
    space = cfg.build_space()
    kind = trainers.DATASETS.get(cfg.data.kind)
    has_val_size = any(setting.name == "val_size" for setting in kind.SETTINGS)
    data_settings = {**cfg.data.settings, **({"val_size": args.val_size} if has_val_size else {})}
    metric = args.metric or trainers.TASKS.get(kind.task).METRICS[0]
    recipe = check_retrain_settings(cfg.retrain or DEFAULT_RECIPE)
    archs = spread_architectures(space, args.archs, cfg.seed)
    args.cache.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.standalone_seeds.split(",")]
    print(f"{len(archs)} architectures, MAdds {[space.count(a)['madds'] for a in archs]}", flush=True)
    data = trainers.make_dataset(cfg.data.kind, seed=cfg.seed, settings=data_settings)
    if args.supernet_only:
        for text in args.variant:
            name, overrides = parse_variant(text)
            for seed in [int(s) for s in args.supernet_seeds.split(",")]:
                row = supernet_scores(cfg, space, data, data_settings, archs, overrides, seed, args.cache)
                print(f"{name} seed {seed}: scores {[round(v, 4) for v in row['scores']]} train "
                      f"{row['train_seconds']:.0f} s ({row['seconds_per_step']:.3f} s/step)", flush=True)
        return
    truth = []
    for seed in seeds:
        row = []
        for i, enc in enumerate(archs):
            r = standalone(cfg.space.name, cfg.space_settings(), cfg.data.kind, data_settings, cfg.seed, recipe,
                           enc, seed, args.cache, tag=f"a{i:02d}")
            print(f"  stand-alone seed {seed} {space.to_string(enc)} {metric} {r[metric]:.4f} "
                  f"({r['seconds']:.0f} s)", flush=True)
            row.append(r[metric])
        truth.append(row)
    if args.standalone_only:
        return
    truth_arr = np.array(truth)
    ceiling = kendall(truth_arr[0], truth_arr[1])
    print(f"ceiling (stand-alone seed {seeds[0]} vs {seeds[1]}): Kendall tau {ceiling:.3f}", flush=True)
    for text in args.variant:
        name, overrides = parse_variant(text)
        for seed in [int(s) for s in args.supernet_seeds.split(",")]:
            info = supernet_scores(cfg, space, data, data_settings, archs, overrides, seed, args.cache)
            proxy = np.array([m[metric] for m in info["metrics"]] if "metrics" in info else info["scores"])
            tau = agreement(proxy, truth_arr)
            interval = bootstrap(proxy, truth_arr, args.bootstrap, seed)
            result = {"variant": name, "overrides": overrides, "supernet_seed": seed, "n": len(archs), "metric": metric,
                      "tau": tau, "ceiling": ceiling, "fraction": tau / ceiling if ceiling > 0 else None,
                      "interval": interval, "tau_vs_mean": kendall(proxy, truth_arr.mean(0)),
                      "madds_tau": kendall(proxy, [space.count(a)["madds"] for a in archs]),
                      "standalone": truth, **info}
            frac = f"{result['fraction']:.2f}" if result["fraction"] is not None else "n/a"
            print(f"{name} seed {seed}: tau {tau:.3f} {_rounded(interval.get('tau'))}, fraction of ceiling {frac} "
                  f"{_rounded(interval.get('fraction'))}, vs MAdds {result['madds_tau']:.3f}, train "
                  f"{info['train_seconds']:.0f} s ({info['seconds_per_step']:.3f} s/step)", flush=True)
            if args.json:
                with args.json.open("a") as fh:
                    fh.write(json.dumps(result) + "\n")


def _rounded(values: Sequence[float] | None) -> str:
    return "[n/a]" if values is None else "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


if __name__ == "__main__":
    main()
