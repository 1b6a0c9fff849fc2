"""The joint search (TuNAS, issue 14) against weighted NSGA-II and random search at equal supernet budget.

Per seed, on the quickstart's task with MAdds as the cost (1 M = 1 ms, deterministic) and one target cost
(``--fraction`` of the space's range):

* **joint**: one supernet trained ``--steps`` steps together with the controller (TuNAS absolute reward);
  its answer is the controller's argmax architecture.
* **weighted NSGA-II** and **random**: a supernet of the same settings trained the same ``--steps`` steps
  alone; each searcher then scores ``--evaluations`` candidates on it (inherited weights, BN recalibrated,
  as the search does), restricted to the target's window (cost within +-10%: NSGA-II by constraints, random
  by drawing only in-window architectures); its answer is the best-scoring candidate in the window.

Each answer is then scored three ways: on the plain supernet (the yardstick NSGA-II and random used), on
the joint supernet, and trained stand-alone with the retrain stage's loop and the quickstart_retrain
recipe (``benchmarks/ranking_study.py``'s ``standalone``, cached). Each seed's row is cached, so seeds can
run as separate processes and a last run prints the table::

    .venv/bin/python benchmarks/joint_vs_searchers.py --seeds 0 &
    .venv/bin/python benchmarks/joint_vs_searchers.py --seeds 1 &
    wait
    .venv/bin/python benchmarks/joint_vs_searchers.py --seeds 0,1,2

Runs in this process, without Ray. The joint search needs no candidate evaluations beyond its answer;
NSGA-II and random each spend ``--evaluations`` of them on top of the same supernet training.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import trainers  # noqa: E402
from benchmarks.joint_search import trainer  # noqa: E402
from benchmarks.ranking_study import DEFAULT_RECIPE, standalone  # noqa: E402
from core.digest import json_digest  # noqa: E402
from core.jsonio import write_json_atomic  # noqa: E402
from core.seeding import make_rng  # noqa: E402
from orchestrator.config import load_config  # noqa: E402
from orchestrator.joint import JointSettings  # noqa: E402
from orchestrator.search import param_space_of  # noqa: E402
from searchers import WeightedNSGA2Searcher  # noqa: E402
from trainers.retrain import check_retrain_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("joint", "weighted-nsga2", "random")
WINDOW = 0.10  # "at the same target cost": within 10% of it, TuNAS's targeting tolerance


def scorer(cfg: Any, space: Any, supernet: Any, data: Any) -> Callable[[Sequence[int]], float]:
    """An architecture's accuracy on the validation split with weights inherited from ``supernet``."""
    task = trainers.make_task(data.task, vars(cfg.supernet))

    def score(encoding: Sequence[int]) -> float:
        model = trainers.inherit_and_calibrate(space=space, supernet=supernet, encoding=tuple(encoding), dataset=data,
                                               bn_batches=cfg.evaluation.bn_batches,
                                               bn_batch_size=cfg.evaluation.bn_batch_size)
        return float(trainers.score(task, model, data, batch_size=cfg.evaluation.batch_size)["accuracy"])
    return score


def nsga2_answer(space: Any, score: Callable, cost: Callable, target: float, evaluations: int, seed: int) -> list[int]:
    """Weighted NSGA-II (accuracy max, cost min, the window as constraints): its best in-window candidate."""
    population = 12
    searcher = WeightedNSGA2Searcher(
        param_space=param_space_of(space), metric=["accuracy", "madds_m"], mode=["max", "min"], seed=seed,
        constraints=[("madds_m", "<=", target * (1 + WINDOW)), ("madds_m", ">=", target * (1 - WINDOW))],
        population_size=population, generations=-(-evaluations // population))
    found: list[tuple[float, list[int]]] = []
    for i in range(evaluations):
        config = searcher.suggest(f"t{i}")
        if not isinstance(config, dict):
            break
        encoding = [int(config[d.name]) for d in space.dims]
        c = cost(encoding)
        accuracy = score(encoding)
        searcher.on_trial_complete(f"t{i}", result={"accuracy": accuracy, "madds_m": c})
        if abs(c / target - 1) <= WINDOW:
            found.append((accuracy, encoding))
    return max(found)[1]


def random_answer(space: Any, score: Callable, cost: Callable, target: float, evaluations: int, seed: int) -> list[int]:
    """Uniformly drawn architectures, only those in the window scored: the best of ``evaluations``."""
    rng = make_rng(seed, "benchmark", "joint-vs-searchers", "random")
    found: list[tuple[float, list[int]]] = []
    while len(found) < evaluations:
        encoding = [int(rng.integers(d.size)) for d in space.dims]
        if abs(cost(encoding) / target - 1) <= WINDOW:
            found.append((score(encoding), encoding))
    return max(found)[1]


def one_seed(cfg: Any, seed: int, *, steps: int, lr: float, target: float, evaluations: int, epochs: int,
             cache: Path) -> dict[str, Any]:
    recipe = check_retrain_settings({**DEFAULT_RECIPE, "epochs": epochs})
    key = json_digest({"config": cfg.to_dict(), "seed": seed, "steps": steps, "lr": lr, "target": target,
                       "evaluations": evaluations, "recipe": recipe}, length=16)
    path = cache / f"compare-{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    space = cfg.build_space()
    cost = lambda e: space.count(tuple(e))["madds"] / 1e6  # noqa: E731
    data = trainers.make_dataset(cfg.data.kind, seed=cfg.seed, settings=cfg.data.settings)
    work = cache / f"work-{key}"
    work.mkdir(parents=True, exist_ok=True)
    joint = trainer(cfg, work, "joint.pt", steps=steps, joint=JointSettings(cost_target=target, lr=lr), seed=seed)
    joint.train_steps(steps)
    plain = trainer(cfg, work, "plain.pt", steps=steps, joint=None, seed=seed)
    plain.train_steps(steps)
    on_plain, on_joint = scorer(cfg, space, plain.model, data), scorer(cfg, space, joint.model, data)
    answers = {"joint": list(joint.controller.argmax()),
               "weighted-nsga2": nsga2_answer(space, on_plain, cost, target, evaluations, seed),
               "random": random_answer(space, on_plain, cost, target, evaluations, seed)}
    row: dict[str, Any] = {"seed": seed, "target": target, "entropy": joint.controller.entropy()}
    for method, encoding in answers.items():
        retrained = standalone(cfg.space.name, cfg.space_settings(), cfg.data.kind, dict(cfg.data.settings), cfg.seed,
                               recipe, encoding, 0, cache, tag=f"{method}-s{seed}")
        row[method] = {"encoding": space.to_string(tuple(encoding)), "cost": cost(encoding),
                       "plain_supernet": on_plain(encoding), "joint_supernet": on_joint(encoding),
                       "retrained": retrained["accuracy"]}
    write_json_atomic(path, row)
    return row


def report(rows: list[dict[str, Any]]) -> None:
    print("| seed | method | cost (M MAdds) | off target | plain supernet | joint supernet | retrained |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        for method in METHODS:
            r = row[method]
            print(f"| {row['seed']} | {method} | {r['cost']:.3f} | {100 * (r['cost'] / row['target'] - 1):+.1f}% | "
                  f"{r['plain_supernet']:.4f} | {r['joint_supernet']:.4f} | {r['retrained']:.4f} |")
    print("\n| method | mean plain supernet | mean joint supernet | mean retrained | retrained best of the 3 |")
    print("| --- | --- | --- | --- | --- |")
    for method in METHODS:
        def mean(k: str) -> float:
            return statistics.fmean(row[method][k] for row in rows)
        wins = sum(row[method]["retrained"] == max(row[m]["retrained"] for m in METHODS) for row in rows)
        print(f"| {method} | {mean('plain_supernet'):.4f} | {mean('joint_supernet'):.4f} | "
              f"{mean('retrained'):.4f} | {wins} of {len(rows)} seeds |")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=ROOT / "examples" / "quickstart.yaml")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=300, help="supernet steps of every method (the equal budget)")
    p.add_argument("--lr", type=float, default=0.05, help="the controller's learning rate (as the targets benchmark)")
    p.add_argument("--fraction", type=float, default=0.5, help="the target, as a fraction of the space's cost range")
    p.add_argument("--evaluations", type=int, default=48, help="candidates NSGA-II and random each score")
    p.add_argument("--epochs", type=int, default=DEFAULT_RECIPE["epochs"], help="stand-alone training epochs")
    p.add_argument("--cache", type=Path, default=Path("/tmp/hwnas-bench/joint-vs-searchers"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = load_config(args.config)
    space = cfg.build_space()
    low = space.count(space.smallest_encoding())["madds"] / 1e6
    high = space.count(space.largest_encoding())["madds"] / 1e6
    target = low + args.fraction * (high - low)
    print(f"target {target:.3f} M MAdds (space {low:.3f} .. {high:.3f}); window +-{WINDOW:.0%}", flush=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = [one_seed(cfg, int(s), steps=args.steps, lr=args.lr, target=target, evaluations=args.evaluations,
                     epochs=args.epochs, cache=args.cache) for s in args.seeds.split(",")]
    report(rows)


if __name__ == "__main__":
    main()
