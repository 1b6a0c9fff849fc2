"""Do hwnas's searchers search well? Hypervolume, REINFORCE hit rate, and per-trial overhead.

1. Hypervolume after the same number of evaluations, mean and std over seeds, on the problems of
   ``benchmarks/nas_problems.py`` (discretised ZDT1/2/3; the MoGA space with LUT latency and a
   proxy accuracy, 2 and 3 objectives), for WeightedNSGA2Searcher (equal weights), Ray Tune's
   OptunaSearch with Optuna's NSGAIISampler (same population size) and RandomSearcher.
2. REINFORCE: on the MoGA problem restricted to 3 choices per layer (3^14 candidates, enumerated),
   the architecture maximising TuNAS's absolute reward for a latency target is known; the fraction
   of seeds whose ReinforceSearcher evaluates it within N samples, against RandomSearcher.
3. Overhead per trial (suggest + on_trial_complete) in microseconds, all searchers in this run.

Every searcher goes through the same plain sequential Tune-Searcher loop
(:func:`nas_problems.drive`); no Ray cluster is started. Needs the ``bench`` extra (optuna).

Usage: python benchmarks/searcher_quality.py [--seeds 5] [--evals 2000] [--population 50]
           [--reinforce-seeds 10] [--reinforce-samples 4000] [--quick] [--overhead-only] [--json OUT]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.nas_problems import MogaLutProblem, NasProblem, drive, make_problem  # noqa: E402
from searchers import RandomSearcher, ReinforceSearcher, WeightedNSGA2Searcher  # noqa: E402

#: "weighted-nsga2" runs MoGA's operators (single-point crossover, every child mutated);
#: "weighted-nsga2-uniform" the searcher's defaults (uniform crossover, no forced mutation). Both are
#: spelled out, so the recorded figures keep their meaning whatever the defaults become.
QUALITY_SEARCHERS = ("weighted-nsga2", "weighted-nsga2-uniform", "optuna-nsga2", "random")
NSGA2_OPERATORS = {
    "weighted-nsga2": {"crossover": "single-point", "force_mutation": True},
    "weighted-nsga2-uniform": {"crossover": "uniform", "force_mutation": False},
}
QUALITY_PROBLEMS = ("zdt1", "zdt2", "zdt3", "moga2", "moga3")
#: REINFORCE problem: per layer t3k3, t6k5 or t6k7SE; target = median latency of those 3^14.
REINFORCE_CHOICES = (0, 8, 11)


# ------------------------------------------------------------------------------------------ searchers
def make_searcher(name: str, problem: NasProblem, *, seed: int, evaluations: int,
                  population: int) -> Any:
    """A fresh searcher over ``problem``'s ``tune.choice`` space, with its metrics and modes."""
    metric, mode = list(problem.metrics), list(problem.modes)
    if name in NSGA2_OPERATORS:
        searcher = WeightedNSGA2Searcher(metric=metric, mode=mode, seed=seed,
                                         population_size=population,
                                         generations=math.ceil(evaluations / population),
                                         **NSGA2_OPERATORS[name])
    elif name == "random":
        searcher = RandomSearcher(metric=metric, mode=mode, seed=seed, num_samples=evaluations)
    elif name == "optuna-nsga2":
        import optuna
        from optuna.samplers import NSGAIISampler
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = NSGAIISampler(population_size=population, seed=seed)
        searcher = OptunaSearch(metric=metric, mode=mode, sampler=sampler)
    else:
        raise ValueError(f"unknown searcher {name!r}; known: {QUALITY_SEARCHERS}")
    # The space arrives as a Tuner hands it over: its param_space of tune.choice entries.
    searcher.set_search_properties(metric, mode, problem.tune_space())
    return searcher


def _summary(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


# ------------------------------------------------------------------------------------------ quality
def quality(problem_names: tuple[str, ...], *, seeds: int, evaluations: int, population: int,
            log: Callable[[str], None]) -> dict[str, Any]:
    """Hypervolume per problem and searcher over ``seeds`` seeds, plus per-trial overhead."""
    out: dict[str, Any] = {}
    for name in problem_names:
        problem = make_problem(name)
        entry: dict[str, Any] = {"problem": problem.describe(), "searchers": {}}
        if hasattr(problem, "ceiling"):
            entry["ceiling_hv"] = problem.ceiling()
            entry["continuous_front_hv"] = problem.continuous_ceiling()
        for searcher_name in QUALITY_SEARCHERS:
            hvs, overheads, duplicates = [], [], []
            for seed in range(seeds):
                searcher = make_searcher(searcher_name, problem, seed=seed, evaluations=evaluations,
                                         population=population)
                run = drive(searcher, problem, evaluations)
                hvs.append(problem.hypervolume(run.results))
                overheads.append(run.overhead_us)
                duplicates.append(len(run.configs) - len({problem.chromosome(c) for c in run.configs}))
            entry["searchers"][searcher_name] = {
                "hv": _summary(hvs), "hv_per_seed": hvs, "overhead_us": _summary(overheads),
                "duplicate_evaluations": _summary([float(d) for d in duplicates])}
            log(f"{name:7s} {searcher_name:15s} HV {statistics.fmean(hvs):.4f} "
                f"+- {entry['searchers'][searcher_name]['hv']['std']:.4f}  "
                f"{statistics.fmean(overheads):8.0f} us/trial  dup {statistics.fmean(duplicates):.1f}")
        out[name] = entry
    return out


# ------------------------------------------------------------------------------------------ REINFORCE
def reinforce_problem() -> tuple[MogaLutProblem, float]:
    """The restricted MoGA problem and its latency target (median latency over all 3^14)."""
    problem = MogaLutProblem(objectives=2, choices=REINFORCE_CHOICES)
    return problem, problem.median_latency()


def reinforce_benchmark(*, seeds: int, samples: int, tau: float, lr: float, batch_size: int,
                        log: Callable[[str], None]) -> dict[str, Any]:
    """Fraction of seeds that evaluate the reward-optimal architecture within ``samples``."""
    problem, target = reinforce_problem()
    reward = lambda acc, lat: acc + tau * np.abs(lat / target - 1.0)  # noqa: E731  TuNAS absolute
    best, best_value = problem.best_reward(reward)
    common = dict(param_space=problem.tune_space(), metric=list(problem.metrics),
                  mode=list(problem.modes), num_samples=samples)
    rows: dict[str, Any] = {}
    for name in ("reinforce", "random"):
        found, argmax_hits, first_hit, regrets, overhead = [], [], [], [], []
        for seed in range(seeds):
            if name == "reinforce":
                searcher = ReinforceSearcher(seed=seed, quality_metric="accuracy",
                                             cost_metric="latency_ms", cost_target=target, tau=tau,
                                             lr=lr, batch_size=batch_size, **common)
            else:
                searcher = RandomSearcher(seed=seed, **common)
            run = drive(searcher, problem, samples)
            chromosomes = [problem.chromosome(c) for c in run.configs]
            hit = best in chromosomes
            found.append(hit)
            first_hit.append(chromosomes.index(best) + 1 if hit else None)
            rewards = [float(reward(r["accuracy"], r["latency_ms"])) for r in run.results]
            regrets.append(best_value - max(rewards))
            overhead.append(run.overhead_us)
            if name == "reinforce":
                argmax_hits.append(tuple(searcher.best()["chromosome"]) == best)
        rows[name] = {"found_fraction": sum(found) / seeds, "found_per_seed": found,
                      "first_hit_sample": first_hit, "regret": _summary(regrets),
                      "overhead_us": _summary(overhead)}
        if argmax_hits:
            rows[name]["argmax_is_best_fraction"] = sum(argmax_hits) / seeds
        log(f"reinforce-problem {name:10s} found {sum(found)}/{seeds}  "
            f"regret {statistics.fmean(regrets):.5f}  first hits {first_hit}")
    return {"problem": problem.describe(), "choices": [list(REINFORCE_CHOICES)],
            "candidates": problem.volume, "latency_target_ms": target, "tau": tau, "lr": lr,
            "batch_size": batch_size, "samples": samples, "seeds": seeds,
            "best_chromosome": list(best), "best_encoding": list(problem.encoding(best)),
            "best_reward": best_value, "searchers": rows}


# ------------------------------------------------------------------------------------------ overhead
def overhead(*, evaluations: int, population: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Mean microseconds per trial in suggest + on_trial_complete, every searcher, one problem."""
    problem = make_problem("moga2")
    target = 7.0
    rows = {}
    for name in QUALITY_SEARCHERS + ("reinforce",):
        if name == "reinforce":
            searcher = ReinforceSearcher(param_space=problem.tune_space(), metric=list(problem.metrics),
                                         mode=list(problem.modes), seed=0, num_samples=evaluations,
                                         quality_metric="accuracy", cost_metric="latency_ms",
                                         cost_target=target, batch_size=population)
        else:
            searcher = make_searcher(name, problem, seed=0, evaluations=evaluations,
                                     population=population)
        rows[name] = drive(searcher, problem, evaluations).overhead_us
    base = rows["random"]
    log("overhead (moga2): " + ", ".join(f"{k} {v:.0f} us ({v / base:.1f}x)" for k, v in rows.items()))
    return {"problem": "moga2", "evaluations": evaluations, "population": population,
            "us_per_trial": rows, "ratio_to_random": {k: v / base for k, v in rows.items()}}


# ------------------------------------------------------------------------------------------ CLI
def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=_positive, default=5, help="seeds per searcher and problem")
    parser.add_argument("--evals", type=_positive, default=2000, help="evaluations per run")
    parser.add_argument("--population", type=_positive, default=50,
                        help="population of both NSGA-IIs")
    parser.add_argument("--problems", default=",".join(QUALITY_PROBLEMS))
    parser.add_argument("--reinforce-seeds", type=_positive, default=10)
    parser.add_argument("--reinforce-samples", type=_positive, default=4000)
    parser.add_argument("--reinforce-lr", type=float, default=0.05)
    parser.add_argument("--reinforce-batch", type=_positive, default=10)
    parser.add_argument("--tau", type=float, default=-0.5, help="TuNAS absolute-reward weight (< 0)")
    parser.add_argument("--quick", action="store_true",
                        help="2 seeds, 300 evaluations, population 20: a smoke run, not a result")
    parser.add_argument("--overhead-only", action="store_true",
                        help="measure only the per-trial overhead (part 3; seconds, not minutes)")
    parser.add_argument("--json", type=Path, default=None, help="also write all numbers here")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.evals, args.population = 2, 300, 20
        args.reinforce_seeds, args.reinforce_samples = 2, 300
    if args.population < 2:
        parser.error("--population must be >= 2 (NSGA-II needs two parents)")
    args.problems = tuple(p for p in args.problems.split(",") if p)
    unknown = sorted(set(args.problems) - set(QUALITY_PROBLEMS))
    if unknown:
        parser.error(f"unknown problems {unknown}; choose from {list(QUALITY_PROBLEMS)}")
    if not args.tau < 0:
        parser.error(f"--tau must be < 0 (TuNAS's absolute reward), got {args.tau}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if importlib.util.find_spec("optuna") is None:
        sys.exit("searcher_quality needs optuna: pip install -e '.[bench]' (optuna==5.0.0)")
    import torch

    torch.set_num_threads(1)
    log = lambda text: print(text, flush=True)  # noqa: E731
    start = time.perf_counter()
    report: dict[str, Any] = {
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
                     if k != "json"}}
    if not args.overhead_only:
        report["quality"] = quality(args.problems, seeds=args.seeds, evaluations=args.evals,
                                    population=args.population, log=log)
        report["reinforce"] = reinforce_benchmark(
            seeds=args.reinforce_seeds, samples=args.reinforce_samples, tau=args.tau,
            lr=args.reinforce_lr, batch_size=args.reinforce_batch, log=log)
    report["overhead"] = overhead(evaluations=args.evals, population=args.population, log=log)
    report["seconds"] = time.perf_counter() - start
    print(json.dumps(report, indent=1, default=str) if args.json is None else f"took {report['seconds']:.0f} s")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return report


if __name__ == "__main__":
    main()
