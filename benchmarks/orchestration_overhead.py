"""Orchestration overhead per candidate, measured as four ways of running the same cheap search.

1. plain loop:  the searcher and a trivially cheap evaluation called directly in Python;
2. Tune only:   the same through ``ray.tune.Tuner`` (reused actors), no journal, no cache, no MLflow;
3. hwnas without MLflow: Tuner + evaluation cache + journal;
4. hwnas:       the same through hwnas's search stage: Tuner + evaluation cache + journal + MLflow
                (SQLite store, logged by the tracking process), the code path of ``hwnas search``.
The cheap evaluation is the MoGA space's analytic params/MAdds count plus a fixed accuracy proxy, so
the difference between the rows is orchestration, not work. All four run in one process, one after
the other, so they share the machine's state (this machine is shared and noisy: compare ratios).

The first search through Tune after Ray starts also pays Ray's first-use costs (worker start-up),
which by default land in the "Tune only" row; ``--tune-warmup`` runs one unreported Tune-only search
first, so that every row is measured warm.

Usage: python benchmarks/orchestration_overhead.py [--candidates 200] [--concurrency 1] [--rounds 1]
       [--tune-warmup]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from orchestrator.cache import EvaluationCache
from orchestrator.config import SearchConfig
from orchestrator.journal import Journal
from orchestrator.metrics import TIMING_KEYS, candidate_metrics
from orchestrator.search import SearchProgress, make_searcher, param_space_of, run_search
from orchestrator.tracking import Tracker
from searchers import GENERATION_KEY
from spaces import get_space

SPACE_SETTINGS = {"width_mult": 0.35, "input_size": 32, "num_classes": 10, "stem_stride": 2, "dropout": 0.0}


def cheap_score(space: Any, encoding: tuple[int, ...]) -> dict[str, Any]:
    began, started = time.time(), time.perf_counter()
    counts = space.count(encoding)
    return {"accuracy": (sum(encoding) % 17) / 17, "latency_ms": counts["madds"] / 1e6,
            "params": counts["params"], "madds": counts["madds"], "eval_started": began,
            "eval_seconds": time.perf_counter() - started}


def search_config(candidates: int, concurrency: int) -> SearchConfig:
    population = 20
    return SearchConfig(settings={"population_size": population, "generations": candidates // population},
                        max_concurrent=concurrency)


def plain_loop(cfg: SearchConfig) -> int:
    space = get_space("moga", **SPACE_SETTINGS)
    searcher = make_searcher(cfg, param_space=param_space_of(space), seed=0)
    n = 0
    while True:
        config = searcher.suggest(f"t{n}")
        if config is None or config == "FINISHED":
            return n
        encoding = tuple(int(config[d.name]) for d in space.dims)
        searcher.on_trial_complete(f"t{n}", cheap_score(space, encoding))
        n += 1


class CheapContext:
    """Stands in for EvalContext: same cache discipline, trivially cheap score."""

    def __init__(self, experiment_dir: str, use_cache: bool) -> None:
        self.experiment_dir, self.use_cache = experiment_dir, use_cache

    @property
    def space(self) -> Any:
        return get_space("moga", **SPACE_SETTINGS)


_CACHES: dict[str, EvaluationCache] = {}


def _worker_cache(experiment_dir: str) -> EvaluationCache:
    """One cache per worker process, read incrementally, as the evaluator's worker state keeps it."""
    if experiment_dir not in _CACHES:
        _CACHES[experiment_dir] = EvaluationCache(Path(experiment_dir) / "evaluations.jsonl")
    return _CACHES[experiment_dir]


def cheap_trial(config: dict[str, Any], ctx: CheapContext) -> None:
    from ray import tune

    space = ctx.space
    encoding = tuple(int(config[d.name]) for d in space.dims)
    cid = space.candidate_id(encoding)
    metrics, cached = None, False
    if ctx.use_cache:
        cache = _worker_cache(ctx.experiment_dir)
        metrics = cache.get(cid, "bench")
        cached = metrics is not None
    if metrics is None:
        metrics = cheap_score(space, encoding)
        if ctx.use_cache:
            cache.put(cid, "bench", metrics)
    tune.report({**metrics, "candidate_id": cid, "encoding": space.to_string(encoding),
                 "generation": int(config.get(GENERATION_KEY, 0)), "cached": cached})


SETUP: dict[str, float] = {}  # once per search, outside the per-candidate rows: the tracker's start


def through_tune(cfg: SearchConfig, workdir: Path, *, hwnas: bool, total: int, mlflow: bool = True) -> Any:
    """Set up as a search does (the MLflow store, its tracking process and the search run: once per search,
    timed into SETUP), then return the function that runs the search itself, to the last candidate logged."""
    space = get_space("moga", **SPACE_SETTINGS)
    journal = Journal(workdir / "journal.jsonl")
    # As the pipeline logs: per-layer params from the space, the search's identifying tags on every run.
    tracker = Tracker(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}", experiment_name="bench", uid=workdir.name,
                      printer=lambda s: None, space_name="moga", space=space, description="benchmark",
                      run_tags={"hwnas_experiment": "bench", "hwnas_space": "moga", "hwnas_task": "classification",
                                "hwnas_searcher": "weighted-nsga2", "hwnas_cost": "madds", "hwnas_device": "cpu",
                                "hwnas_uid": workdir.name}, in_process=False)
    mlflow = hwnas and mlflow
    if mlflow:
        started = time.perf_counter()
        tracker.start(params={"bench": 1}, tags={})
        SETUP["tracker start (new store, tracking process, search run)"] = time.perf_counter() - started

    def on_candidate(result: dict[str, Any]) -> None:  # what hwnas's search stage does (orchestrator.pipeline)
        if hwnas:
            record = {"candidate_id": result["candidate_id"], "encoding": result["encoding"], "space": "moga",
                      "generation": int(result["generation"]), **candidate_metrics(result),
                      **{k: float(result[k]) for k in TIMING_KEYS if result.get(k) is not None}}
            journal.append("candidate", **record)
            if mlflow:
                tracker.log_candidate({**record, "time": time.time()})

    def search() -> int:
        progress = SearchProgress(total=total, known=set(), on_candidate=on_candidate,
                                  on_failure=lambda t, r: None, printer=lambda s: None)
        run_search(cfg=cfg, space=space, ctx=CheapContext(str(workdir), use_cache=hwnas), seed=0, attempt=1,
                   progress=progress, trial_fn=cheap_trial)
        tracker.close()  # the run is not over until MLflow holds every candidate
        return progress.done
    return search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the four ways this many times in turn; the ratio is reported per round and as "
                             "the median (the machine's noise moves single runs by +-20%%)")
    parser.add_argument("--tune-warmup", action="store_true",
                        help="run one unreported Tune-only search first (Ray's first-use costs in no row)")
    args = parser.parse_args()
    import ray

    from cluster import connect

    cfg = search_config(args.candidates, args.concurrency)
    plain_loop(cfg)  # warm-up: imports and first-use costs are not orchestration
    connect(None)
    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.tune_warmup:
            through_tune(cfg, _mk(tmp, "warmup"), hwnas=False, total=args.candidates)()
        for r in range(args.rounds):
            rounds.append(_one_round(cfg, tmp, r, args.candidates))
    ray.shutdown()
    _report(rounds)


def _one_round(cfg: SearchConfig, tmp: str, r: int, candidates: int) -> dict[str, float]:
    rows = {}
    for name, make in (
        ("plain loop", lambda: lambda: plain_loop(cfg)),
        ("Tune only", lambda: through_tune(cfg, _mk(tmp, f"tune{r}"), hwnas=False, total=candidates)),
        ("hwnas without MLflow (Tune + cache + journal)",
         lambda: through_tune(cfg, _mk(tmp, f"nomlflow{r}"), hwnas=True, total=candidates, mlflow=False)),
        ("hwnas (Tune + cache + journal + MLflow)",
         lambda: through_tune(cfg, _mk(tmp, f"hwnas{r}"), hwnas=True, total=candidates)),
    ):
        fn = make()  # the once-per-search set-up, not per candidate (SETUP says what it costs)
        start = time.perf_counter()
        n = fn()
        rows[name] = (time.perf_counter() - start) / n * 1000
    return rows


def _report(rounds: list[dict[str, float]]) -> None:
    hwnas, tune = "hwnas (Tune + cache + journal + MLflow)", "Tune only"
    for i, rows in enumerate(rounds):
        plain = rows["plain loop"]
        print(f"round {i + 1}:" if len(rounds) > 1 else "")
        for name, ms in rows.items():
            print(f"  {name:<46} {ms:8.2f} ms/candidate  (+{ms - plain:7.2f} ms over the plain loop)")
        print(f"  hwnas adds {rows[hwnas] - rows[tune]:.2f} ms per candidate to Tune alone "
              f"(ratio {rows[hwnas] / rows[tune]:.2f})")
        print(json.dumps({k: round(v, 3) for k, v in rows.items()}))
    ratios = sorted(rows[hwnas] / rows[tune] for rows in rounds)
    print(f"hwnas / Tune alone, per round: {', '.join(f'{x:.2f}' for x in ratios)}; "
          f"median {statistics.median(ratios):.2f}")
    for name, seconds in SETUP.items():
        print(f"once per search: {name} {seconds:.2f} s (the last round's)")


def _mk(tmp: str, name: str) -> Path:
    path = Path(tmp) / name
    path.mkdir()
    return path


if __name__ == "__main__":
    main()
