"""``hwnas latency measure`` and ``hwnas costmodel fit|eval``: cost evaluation from the command line.

Every measurement goes through the device's latency service (a Ray actor on the node carrying
``device:NAME``; a local Ray by default) and its persistent cache, by default
``$XDG_CACHE_HOME/hwnas/latency_cache.jsonl`` (``~/.cache/hwnas/...``), or ``--cache FILE``. All
arguments are checked before Ray starts; a bad one is one line on stderr and exit 2, nothing written.
Progress goes to stderr, so ``--json`` output on stdout stays one JSON document.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from core.validation import check_out_file
from spaces import SPACES, ConfigError, SearchSpace, get_space

__all__ = ["add_cost_commands", "default_cache_path"]


def default_cache_path() -> Path:
    """``$XDG_CACHE_HOME/hwnas/latency_cache.jsonl``, or under ``~/.cache`` without XDG_CACHE_HOME.

    One cache per user, shared by every CLI call: a model measured once is never measured again on
    the same device, runtime version and input shape.
    """
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "hwnas" / "latency_cache.jsonl"


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- argument checks
def _settings_overrides(items: Sequence[str], space_name: str) -> dict[str, Any]:
    """``--set key=value`` pairs (YAML values) checked against the space's constructor."""
    from .arch_cli import setting_names

    accepted = setting_names(space_name)
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE. HINT: e.g. --set width_mult=0.5")
        if key not in accepted:
            raise ConfigError(f"--set {item!r}: space {space_name} has no setting {key!r}; its settings: "
                              f"{', '.join(accepted)}. HINT: check the spelling (`hwnas spaces` shows them).")
        try:
            out[key] = yaml.safe_load(text)
        except yaml.YAMLError:
            out[key] = text
    return out


def _build_space(name: str, settings: dict[str, Any]) -> SearchSpace:
    SPACES.get(name)  # unknown space: lists the known ones
    return get_space(name, **settings)


def _resolve_architecture(args: argparse.Namespace) -> tuple[SearchSpace, tuple[int, ...]]:
    """The arch commands' --preset / --space --arch resolution, plus --set settings."""
    from .arch_cli import resolve_architecture

    if args.space is not None:
        SPACES.get(args.space)
    space, encoding = resolve_architecture(args)
    if args.overrides:
        space = get_space(space.name, **{**space.settings, **_settings_overrides(args.overrides, space.name)})
        encoding = space.validate(encoding)
    return space, encoding


def _fit_space(args: argparse.Namespace) -> SearchSpace:
    SPACES.get(args.space)
    settings = _settings_overrides(args.overrides, args.space)
    if args.input_size is not None:
        settings["input_size"] = args.input_size
    return _build_space(args.space, settings)


def _check_out(path: str, force: bool) -> Path:
    return check_out_file("--out", path, force=force, example="costmodel.json")


def _device(name: str, address: str | None) -> Any:
    """The device's profile; on a local Ray, also check its provider here, before Ray starts."""
    from cluster import get_device, require_runtime

    profile = get_device(name)
    if address is None:
        require_runtime(profile)  # with --address the device node checks its own
    return profile


def _options(args: argparse.Namespace) -> Any:
    from cluster import MeasureOptions

    return MeasureOptions(warmup=args.warmup, min_runs=args.min_runs, max_runs=args.max_runs,
                          min_time_s=args.min_time, cv_threshold=args.cv_threshold)


def _client(args: argparse.Namespace, profile: Any, options: Any) -> Any:
    """Connect to Ray (local by default) and return a client of the device's latency actor."""
    from cluster import LatencyClient, connect, require_device

    from ._ray_env import quiet_ray

    quiet_ray()
    connect(args.address)
    require_device(profile)
    return LatencyClient(profile, str(args.cache or default_cache_path()), options=options)


def _fmt(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


# ---------------------------------------------------------------------------------------- commands
def _cmd_measure(args: argparse.Namespace) -> int:
    from cluster.calibration import ServiceMeasurer

    space, encoding = _resolve_architecture(args)
    profile, options = _device(args.device, args.address), _options(args)
    record = ServiceMeasurer(_client(args, profile, options), paired=False).measure(space, encoding)
    keys = ("median_ms", "min_ms", "p90_ms", "mean_ms", "cv", "runs", "device", "runtime", "input_shape",
            "candidate_id", "cached", "node_id")
    result = {k: record.get(k) for k in keys}
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{space.name} {space.to_string(encoding)} on {result['device']} ({result['runtime']}, input "
              f"{result['input_shape']}): median {result['median_ms']:.3f} ms, min {result['min_ms']:.3f} ms, "
              f"p90 {result['p90_ms']:.3f} ms, CV {100 * result['cv']:.1f}% over {result['runs']} runs"
              f"{' (from the cache)' if result['cached'] else ''}")
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    from cluster import COST_MODELS
    from cluster.calibration import (AUTO_HOLDOUT, MIN_SAMPLES, ServiceMeasurer, check_passes, check_samples,
                                     fit_cost_model, save_cost_model)

    COST_MODELS.get(args.kind)
    space = _fit_space(args)
    samples = _samples_argument(args.samples)
    max_samples = check_samples(args.max_samples, flag="--max-samples", minimum=AUTO_HOLDOUT + MIN_SAMPLES)
    passes = check_passes(args.score_passes, flag="--score-passes")
    out = _check_out(args.out, args.force)
    profile, options = _device(args.device, args.address), _options(args)
    measurer = ServiceMeasurer(_client(args, profile, options), progress=_progress)
    result = fit_cost_model(args.kind, space, samples=samples, seed=args.seed, measurer=measurer,
                            device=profile.name, max_samples=max_samples, score_passes=passes)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_cost_model(out, result)
    summary = {"out": str(out), "kind": args.kind, "space": space.identity, **result.info}
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        f, info = result.fidelity, result.info
        print(f"{args.kind} cost model of {space.name} on {profile.name}: fitted on {info['fit_samples']} "
              f"architectures, held out {info['holdout']}{_noisy_note(info['noisy_excluded'])}")
        for step in info.get("steps", []):
            print(f"  {step['fit_samples']} fit architectures: cross-validated r2 {_fmt(step['cv_r2'], '.4f')}, "
                  f"Kendall {_fmt(step['cv_kendall'], '.3f')}")
        print(f"held-out fidelity: {_fidelity_line(f, info['mean_holdout_ms'])}")
        print(f"saved to {out}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from cluster.calibration import ServiceMeasurer, check_passes, check_samples, evaluate_cost_model, load_cost_model

    check_samples(args.samples, flag="--samples", minimum=2)
    passes = check_passes(args.score_passes, flag="--score-passes")
    loaded = load_cost_model(args.model)
    device = args.device or loaded.info.get("device") or "cpu"
    profile, options = _device(device, args.address), _options(args)
    measurer = ServiceMeasurer(_client(args, profile, options), progress=_progress)
    report = evaluate_cost_model(loaded.model, samples=args.samples, seed=args.seed, measurer=measurer,
                                 score_passes=passes)
    report.update(model=str(args.model), kind=loaded.model.kind, device=profile.name)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{loaded.model.kind} cost model {args.model} on {profile.name}, {report['n']} fresh architectures"
              f"{_noisy_note(report['noisy_excluded'])}: {_fidelity_line(report, report['mean_ms'])}")
    return 0


def _fidelity_line(f: dict, mean_ms: float) -> str:
    return (f"r2 {_fmt(f['r2'], '.4f')}{_interval(f.get('r2_interval'), '.3f')}, RMSE {_fmt(f['rmse_ms'], '.4f')} ms "
            f"({_fmt(f['rmse_pct'], '.2f')}% of the mean {mean_ms:.3f} ms), Spearman {_fmt(f['spearman'], '.3f')}, "
            f"Kendall {_fmt(f['kendall'], '.3f')}{_interval(f.get('kendall_interval'), '.3f')}{_passes_note(f)}")


def _passes_note(f: dict) -> str:
    """How the scored latencies were measured, and how well two single passes agree."""
    passes, agreement = f.get("passes") or 1, f.get("repeatability")
    if passes == 1:
        return ""
    note = f"; measured latency: the mean of {passes} passes"
    if agreement:
        note += (f" (two single passes agree at r2 {_fmt(agreement['r2'], '.3f')}, "
                 f"Kendall {_fmt(agreement['kendall'], '.3f')})")
    return note


def _interval(bounds: Sequence[float] | None, spec: str) -> str:
    return "" if not bounds else f" (95% {format(bounds[0], spec)}..{format(bounds[1], spec)})"


def _noisy_note(noisy: int) -> str:
    return f" ({noisy} noisy measurements left out)" if noisy else ""


def _samples_argument(text: str) -> int | str:
    """``--samples``: a count (>= 4) or ``auto``."""
    from cluster.calibration import check_samples

    if text == "auto":
        return "auto"
    try:
        return check_samples(int(text), flag="--samples")
    except ValueError:
        raise ConfigError(f"--samples: must be a number of architectures (>= 4) or 'auto', got {text!r}. HINT: "
                          f"e.g. --samples 100, or --samples auto (measure until the fidelity stops improving).") from None


# ------------------------------------------------------------------------------------------ parser
def _score_passes_argument(p: argparse.ArgumentParser, which: str) -> None:
    from cluster.calibration import SCORE_PASSES

    p.add_argument("--score-passes", type=int, default=SCORE_PASSES, metavar="P",
                   help=f"measure the {which} architectures in P passes, one after the other, and score on the "
                        f"geometric mean of each one's passes; the report says how well two passes agree "
                        f"(default {SCORE_PASSES}; 1: once)")


def _service_arguments(p: argparse.ArgumentParser, *, device_default: str | None = "cpu") -> None:
    from cluster import MeasureOptions

    d = MeasureOptions()
    p.add_argument("--device", default=device_default, metavar="D",
                   help=f"latency device (default: {device_default or 'the one the model was fitted on'})")
    p.add_argument("--address", metavar="RAY_ADDRESS",
                   help="join this Ray cluster (its node with device:D measures); default: start a local Ray")
    p.add_argument("--cache", metavar="FILE",
                   help="latency cache, JSON lines, on the device node (default: $XDG_CACHE_HOME/hwnas/"
                        "latency_cache.jsonl, i.e. ~/.cache/hwnas/latency_cache.jsonl)")
    p.add_argument("--warmup", type=int, default=d.warmup, metavar="N", help=f"untimed runs first (default {d.warmup})")
    p.add_argument("--min-runs", type=int, default=d.min_runs, metavar="N",
                   help=f"fewest timed runs per round (default {d.min_runs})")
    p.add_argument("--max-runs", type=int, default=d.max_runs, metavar="N",
                   help=f"most timed runs per round (default {d.max_runs})")
    p.add_argument("--min-time", type=float, default=d.min_time_s, metavar="S",
                   help=f"shortest timed duration per round, seconds (default {d.min_time_s})")
    p.add_argument("--cv-threshold", type=float, default=d.cv_threshold, metavar="CV",
                   help=f"re-measure (up to {d.max_rounds} rounds) while the CV exceeds this (default {d.cv_threshold})")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _space_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-size", type=int, metavar="N", help="input resolution (default: the space's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a space setting, e.g. --set width_mult=0.5 (repeatable; `hwnas spaces` lists them)")


def add_cost_commands(sub: Any) -> dict[str, Any]:
    """Register ``latency`` and ``costmodel`` on the main parser; returns {command: handler}."""
    latency = sub.add_parser("latency", help="measure an architecture's latency on a device")
    lat_sub = latency.add_subparsers(dest="latency_command", metavar="ACTION", required=True)
    m = lat_sub.add_parser("measure", help="median/min/p90 latency and CV through the latency service (cached)")
    m.add_argument("--preset", metavar="NAME", help="a published architecture (see `hwnas spaces`)")
    m.add_argument("--space", metavar="NAME", help="a registered search space")
    m.add_argument("--arch", metavar="ENCODING", help="choice indices joined by '-', e.g. 8-10-6-7-1-7-6-10-5-10-6-6-9-9")
    m.add_argument("--num-classes", type=int, metavar="K", help="classifier classes (default: the space's or preset's)")
    _space_arguments(m)
    _service_arguments(m)

    cost = sub.add_parser("costmodel", help="fit or evaluate a latency cost model (kernels, linear or lookup table)")
    cost_sub = cost.add_subparsers(dest="costmodel_command", metavar="ACTION", required=True)
    f = cost_sub.add_parser("fit", help="sample and measure architectures, fit, report held-out fidelity",
                            description="Measures --samples random architectures through the latency service "
                                        "(cached), fits on 75% of them and reports r2 / RMSE / Spearman / Kendall "
                                        "on the held-out 25% (at least 2), with 95% bootstrap intervals. The "
                                        "held-out architectures are measured in --score-passes passes and scored "
                                        "on their mean. Noisy measurements (a busy node) are retried, then left out.")
    f.add_argument("--space", required=True, metavar="NAME", help="a registered search space")
    f.add_argument("--kind", required=True, choices=("kernels", "linear", "lut"),
                   help="kernels (per kernel kind: fixed, compute and memory cost; the most faithful), linear "
                        "(seed 000's per-layer regression) or lut (MoGA's lookup table)")
    f.add_argument("--samples", required=True, metavar="N|auto",
                   help="architectures to measure (>= 4; a quarter held out), or auto: 50 held out, then the fit "
                        "set grows by 50 until its cross-validated r2 stops improving")
    f.add_argument("--max-samples", type=int, default=300, metavar="N",
                   help="with --samples auto: most architectures measured in all (default 300)")
    f.add_argument("--out", required=True, metavar="FILE.json", help="where to write the model")
    f.add_argument("--force", action="store_true", help="replace an existing --out file")
    f.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the sampled architectures (default 0)")
    _score_passes_argument(f, "held-out")
    _space_arguments(f)
    _service_arguments(f)

    e = cost_sub.add_parser("eval", help="measure fresh architectures and report the model's fidelity")
    e.add_argument("--model", required=True, metavar="FILE.json", help="a model written by `hwnas costmodel fit`")
    e.add_argument("--samples", required=True, type=int, metavar="N", help="fresh architectures to measure (>= 2)")
    e.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the sampled architectures (default 0)")
    _score_passes_argument(e, "fresh")
    _service_arguments(e, device_default=None)
    return {
        "latency": lambda a: _cmd_measure(a),
        "costmodel": lambda a: {"fit": _cmd_fit, "eval": _cmd_eval}[a.costmodel_command](a),
    }
