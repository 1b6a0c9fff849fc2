"""Hostile input, through the real CLI: config files, `--set` values, every command's arguments and the
files of an experiment directory. Each case must give one line on stderr naming what is wrong
(`hwnas: error: ...`), exit code 2, no traceback, and leave its directory byte for byte as it was.

The cases run a few at a time in one module fixture, each case then its own test. The CLI's start-up
(Python and its imports: seconds) would dominate, so the cases run as children forked from one process
that imported the CLI (``cli_forkserver``); a few, one of each kind, run as a fresh ``python -m
orchestrator.cli`` process too (:data:`REAL_PROCESS`).
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import yaml

from cli_forkserver import CliForkServer
from cli_helpers import cli_env, run_cli, tiny_config

MOGA_ARCH = "8-10-6-7-1-7-6-10-5-10-6-6-9-9"


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    pattern: str  # a substring of the one error line
    setup: Callable[[Path], object] | None = None  # prepares files in the case's directory
    holds_lock: bool = False  # run while this test process holds the experiment's lock


def _search(*overrides: str) -> tuple[str, ...]:
    args: list[str] = ["search", "config.yaml", "--storage", "runs"]
    for item in overrides:
        args += ["--set", item]
    return tuple(args)


def _tiny(case_dir: Path, **changes: object) -> None:
    """config.yaml: the tiny config with ``changes`` (dotted keys) applied as written."""
    raw = yaml.safe_load(tiny_config(case_dir, name="case").read_text())
    (case_dir / "case.yaml").unlink()
    for dotted, value in changes.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    (case_dir / "config.yaml").write_text(yaml.safe_dump(raw))


def _file(name: str, content: bytes) -> Callable[[Path], None]:
    return lambda d: (d / name).write_bytes(content)


def _experiment(case_dir: Path) -> Path:
    """A fresh experiment directory `exp` (created, never run) of the tiny config."""
    from orchestrator.config import load_config
    from orchestrator.experiment import Experiment

    exp = Experiment.create(load_config(tiny_config(case_dir, name="exp")), case_dir, "sqlite:///unused.db")
    (case_dir / "exp.yaml").unlink()
    return exp.directory


def _damaged(name: str, content: bytes | Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def setup(case_dir: Path) -> None:
        path = _experiment(case_dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content(path.read_bytes()) if callable(content) else content)
    return setup


def _journal(*records: object) -> Callable[[Path], None]:
    return _damaged("journal.jsonl", b"".join(json.dumps(r).encode() + b"\n" for r in records))


def _completed_training(case_dir: Path) -> None:
    """A journal whose training finished with a digest, and a checkpoint that is not that file."""
    exp = _experiment(case_dir)
    (exp / "journal.jsonl").write_text(
        json.dumps({"event": "stage_completed", "stage": "train_supernet", "schema": 2, "time": 0,
                    "result": {"steps": 40, "digest": "0" * 64}}) + "\n")
    (exp / "supernet").mkdir()
    (exp / "supernet" / "supernet.pt").write_bytes(b"not the recorded file")


def _set_config(**changes: object) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        meta = json.loads(data)
        for dotted, value in changes.items():
            node = meta
            *parents, leaf = dotted.split(".")
            for p in parents:
                node = node[p]
            node[leaf] = value
        return json.dumps(meta).encode()
    return edit


CONFIG_FILE_CASES = [
    Case("config-missing", ("search", "missing.yaml"), "does not exist"),
    Case("config-is-a-directory", ("search", "."), "is a directory, not a file"),
    Case("config-random-bytes", ("search", "config.yaml"), "is not UTF-8 text",
         _file("config.yaml", b"\xe4\x00\xff" + os.urandom(200))),
    Case("config-yaml-syntax", ("search", "config.yaml"), "is not valid YAML",
         _file("config.yaml", b"name: x\nspace:\n  name: moga\n settings: {}\n")),
    Case("config-a-list", ("search", "config.yaml"), "must hold a mapping of fields",
         _file("config.yaml", b"- a\n- b\n")),
    Case("config-a-scalar", ("search", "config.yaml"), "must hold a mapping of fields", _file("config.yaml", b"42\n")),
    Case("config-empty", ("search", "config.yaml"), "'name': is required", _file("config.yaml", b"")),
    Case("config-unknown-key", _search(), "'colour': unknown key", lambda d: _tiny(d, colour="red")),
    Case("config-bad-name", _search(), "'name': must be 1-64 letters", lambda d: _tiny(d, name="a/b")),
    Case("config-negative-seed", _search(), "'seed': must be an integer in [0,", lambda d: _tiny(d, seed=-1)),
    Case("config-data-not-mapping", _search(), "'data': must be a mapping", lambda d: _tiny(d, data=5)),
    Case("config-unknown-data-kind", _search(), "unknown dataset kind", lambda d: _tiny(d, **{"data.kind": "nope"})),
    Case("config-unknown-space", _search(), "unknown search space", lambda d: _tiny(d, **{"space.name": "nope"})),
    Case("config-unknown-space-setting", _search(), "unknown setting for space moga",
         lambda d: _tiny(d, **{"space.settings.depth": 3})),
    Case("config-width-mult-huge", _search(), "'space.settings.width_mult': must be a finite number in (0, 8]",
         lambda d: _tiny(d, **{"space.settings.width_mult": 1e6})),
    Case("config-input-size-conflict", _search(), "which data.kind synthetic fixes",
         lambda d: _tiny(d, **{"space.settings.input_size": 64})),
    Case("config-objectives-empty", _search(), "'search.objectives': must be a non-empty list",
         lambda d: _tiny(d, **{"search.objectives": []})),
    Case("config-objective-metric", _search(), "'search.objectives[0].metric': must be one of",
         lambda d: _tiny(d, **{"search.objectives": [{"metric": "speed", "mode": "max", "weight": 1.0}]})),
    Case("config-objective-mode", _search(), "'search.objectives[0].mode': must be one of",
         lambda d: _tiny(d, **{"search.objectives": [{"metric": "accuracy", "mode": "up", "weight": 1.0}]})),
    Case("config-objective-weight", _search(), "'search.objectives[0].weight'",
         lambda d: _tiny(d, **{"search.objectives": [{"metric": "accuracy", "mode": "max", "weight": -1.0}]})),
    Case("config-constraint-op", _search(), "search.constraints[0]",
         lambda d: _tiny(d, **{"search.constraints": [{"metric": "latency_ms", "op": "~", "value": 1.0}]})),
    Case("config-cost-kind", _search(), "'cost.kind': must be one of", lambda d: _tiny(d, **{"cost.kind": "guess"})),
    Case("config-cost-device", _search(), "'cost.device': must be one of",
         lambda d: _tiny(d, **{"cost.kind": "measured", "cost.device": "tpu9"})),
    Case("config-cost-model-missing", _search(), "cost.model",
         lambda d: _tiny(d, **{"cost.kind": "linear", "cost.model": "missing.json"})),
    Case("config-cost-model-garbage", _search(), "cost.model",
         lambda d: (_tiny(d, **{"cost.kind": "linear", "cost.model": "model.json"}),
                    (d / "model.json").write_bytes(os.urandom(100)))),
]

SET_CASES = [
    Case("set-no-equals", _search("supernet.steps"), "expected KEY=VALUE", lambda d: _tiny(d)),
    Case("set-unknown-key", _search("bogus=1"), "'bogus': unknown key", lambda d: _tiny(d)),
    Case("set-not-a-section", _search("supernet.steps.x=1"), "'steps' is not a section", lambda d: _tiny(d)),
    Case("set-steps-zero", _search("supernet.steps=0"), "'supernet.steps': must be an integer in [1, 10000000]",
         lambda d: _tiny(d)),
    Case("set-steps-1e20", _search("supernet.steps=1e20"), "'supernet.steps': must be an integer", lambda d: _tiny(d)),
    Case("set-steps-huge", _search("supernet.steps=100000000000"), "in [1, 10000000], got 100000000000",
         lambda d: _tiny(d)),
    Case("set-steps-bool", _search("supernet.steps=true"), "'supernet.steps': must be an integer", lambda d: _tiny(d)),
    Case("set-lr-inf", _search("supernet.lr=.inf"), "'supernet.lr': must be a finite number", lambda d: _tiny(d)),
    Case("set-lr-nan", _search("supernet.lr=.nan"), "'supernet.lr': must be a finite number", lambda d: _tiny(d)),
    Case("set-lr-negative", _search("supernet.lr=-0.1"), "'supernet.lr': must be a finite number in",
         lambda d: _tiny(d)),
    Case("set-momentum-one", _search("supernet.momentum=1"), "'supernet.momentum': must be a finite number in [0, 1)",
         lambda d: _tiny(d)),
    Case("set-sampling", _search("supernet.sampling=greedy"), "'supernet.sampling': must be one of",
         lambda d: _tiny(d)),
    Case("set-sandwich", _search("supernet.sandwich=max-max"), "'supernet.sandwich': must be one of off, max, max-min",
         lambda d: _tiny(d)),
    Case("set-distill-string", _search("supernet.distill=maybe"), "'supernet.distill': must be true or false",
         lambda d: _tiny(d)),
    Case("set-compute-device", _search("compute.device=gpu"), "'compute.device': must be one of auto, cpu, cuda",
         lambda d: _tiny(d)),
    Case("set-compute-precision", _search("compute.precision=fp8"), "'compute.precision': must be one of",
         lambda d: _tiny(d)),
    Case("set-compute-fp16-on-cpu", _search("compute.device=cpu", "compute.precision=fp16"),
         "'compute.precision': compute precision fp16 needs compute device cuda", lambda d: _tiny(d)),
    Case("set-compute-gpus-per-trial", _search("compute.gpus_per_trial=2"), "'compute.gpus_per_trial'",
         lambda d: _tiny(d)),
    Case("set-joint-needs-reinforce", _search("search.mode=joint"),
         "'search.mode': joint trains the REINFORCE controller with the supernet, so search.searcher must be "
         "reinforce", lambda d: _tiny(d)),
    Case("set-search-mode", _search("search.mode=both"), "'search.mode': must be one of trials, joint",
         lambda d: _tiny(d)),
    Case("set-joint-target-zero", _search("search.searcher=reinforce", "search.mode=joint",
                                          "search.settings={cost_target: 0}"),
         "'search.settings.cost_target': must be a finite number > 0", lambda d: _tiny(d)),
    Case("set-joint-warmup-one", _search("search.searcher=reinforce", "search.mode=joint",
                                         "search.settings={cost_target: 1.0, warmup: 1.0}"),
         "'search.settings.warmup': must be a finite number in [0, 1)", lambda d: _tiny(d)),
    Case("set-joint-reward", _search("search.searcher=reinforce", "search.mode=joint",
                                     "search.settings={cost_target: 1.0, reward: relative}"),
         "'search.settings.reward': must be one of absolute, mnas", lambda d: _tiny(d)),
    Case("set-distill-without-sandwich", _search("supernet.distill=true"),
         "'supernet.distill': needs supernet.sandwich max or max-min", lambda d: _tiny(d)),
    Case("set-largest-warmup-all-steps", _search("supernet.largest_warmup_steps=1000000"),
         "'supernet.largest_warmup_steps': must be < supernet.steps", lambda d: _tiny(d)),
    Case("set-largest-warmup-negative", _search("supernet.largest_warmup_steps=-1"),
         "'supernet.largest_warmup_steps': must be an integer in [0, 10000000]", lambda d: _tiny(d)),
    Case("set-noise-nan", _search("data.noise=.nan"), "'data.noise': must be a finite number", lambda d: _tiny(d)),
    Case("set-train-size-1e15", _search("data.train_size=1e15"), "'data.train_size': must be an integer",
         lambda d: _tiny(d)),
    Case("set-train-size-memory", _search("data.train_size=9000000", "data.image_size=256"),
         "over the synthetic data limit of 8 GiB", lambda d: _tiny(d)),
    Case("set-image-size-huge", _search("data.image_size=100000"), "'data.image_size': must be an integer in [16, 1024]",
         lambda d: _tiny(d)),
    Case("set-population-1e20", _search("search.settings.population_size=1e20"),
         "'search.settings.population_size': must be an integer", lambda d: _tiny(d)),
    Case("set-population-huge", _search("search.settings.population_size=100000"), "in [2, 10000], got 100000",
         lambda d: _tiny(d)),
    Case("set-budget-huge", _search("search.settings.population_size=1000", "search.settings.generations=10000"),
         "over the limit of 1,000,000", lambda d: _tiny(d)),
    Case("set-unknown-searcher-setting", _search("search.settings.mutation_rate=0.5"),
         "unknown setting for searcher weighted-nsga2", lambda d: _tiny(d)),
    Case("set-unknown-searcher", _search("search.searcher=annealing"), "unknown searcher", lambda d: _tiny(d)),
    Case("set-max-concurrent-zero", _search("search.max_concurrent=0"), "'search.max_concurrent': must be an integer",
         lambda d: _tiny(d)),
    Case("set-bn-batches-huge", _search("evaluation.bn_batches=100000"), "'evaluation.bn_batches': must be an integer",
         lambda d: _tiny(d)),
    Case("set-stem-stride", _search("space.settings.stem_stride=3"), "'space.settings.stem_stride'",
         lambda d: _tiny(d)),
    Case("set-empty-name", _search("name="), "'name'", lambda d: _tiny(d)),
    Case("set-min-runs-zero", _search("cost.kind=measured", "cost.min_runs=0"), "'min_runs'", lambda d: _tiny(d)),
    Case("set-calibration-samples-a-word", _search("cost.kind=kernels", "cost.calibration_samples=many"),
         "'cost.calibration_samples': must be a whole number in [0, 100000] or auto", lambda d: _tiny(d)),
]

COMMAND_CASES = [
    Case("no-command", (), "the following arguments are required: COMMAND"),
    Case("unknown-command", ("frobnicate",), "invalid choice: 'frobnicate'"),
    Case("search-no-config", ("search",), "the following arguments are required: config"),
    Case("search-set-no-value", ("search", "x.yaml", "--set"), "argument --set: expected one argument"),
    Case("search-storage-is-a-file", ("search", "config.yaml", "--storage", "taken"), "is a file, not a directory",
         lambda d: (_tiny(d), (d / "taken").write_text("x"))),
    Case("search-onto-existing", ("search", "config.yaml", "--storage", "."), "already holds an experiment",
         lambda d: (_tiny(d, name="exp"), _experiment(d))),
    Case("resume-no-dir", ("resume",), "the following arguments are required: EXPERIMENT_DIR"),
    Case("resume-missing", ("resume", "absent"), "does not exist"),
    Case("resume-a-file", ("resume", "plain.txt"), "is a file, not an experiment directory",
         _file("plain.txt", b"x")),
    Case("resume-not-an-experiment", ("resume", "."), "is not an hwnas experiment directory"),
    Case("status-missing", ("status", "absent"), "does not exist"),
    Case("status-a-file", ("status", "plain.txt"), "is a file, not an experiment directory", _file("plain.txt", b"x")),
    Case("status-bad-flag", ("status", ".", "--yaml"), "unrecognized arguments: --yaml"),
    Case("spaces-bad-flag", ("spaces", "--all"), "unrecognized arguments: --all"),
    Case("arch-no-action", ("arch",), "the following arguments are required: ACTION"),
    Case("arch-negative-index", ("arch", "describe", "--space", "moga", "--arch=-1-0-0-0-0-0-0-0-0-0-0-0-0-0"),
         "non-negative integers joined by '-'"),
    Case("arch-index-out-of-range", ("arch", "describe", "--space", "moga", "--arch", "99" + MOGA_ARCH[1:]),
         "outside 0..11"),
    Case("arch-too-few-choices", ("arch", "describe", "--space", "moga", "--arch", "1-2"), "14 searched layers"),
    Case("arch-unknown-preset", ("arch", "describe", "--preset", "nope"), "nope"),
    Case("arch-unknown-space", ("arch", "describe", "--space", "nope", "--arch", "1"), "unknown search space"),
    Case("arch-input-size-zero", ("arch", "describe", "--space", "moga", "--arch", MOGA_ARCH, "--input-size", "0"),
         "input_size"),
    Case("arch-input-size-text", ("arch", "describe", "--space", "moga", "--input-size", "big"),
         "argument --input-size: invalid int value: 'big'"),
    Case("arch-export-out-is-a-directory", ("arch", "export", "--space", "moga", "--arch", MOGA_ARCH, "--out", "."),
         "--out"),
    Case("arch-export-out-under-a-file",
         ("arch", "export", "--space", "moga", "--arch", MOGA_ARCH, "--out", "plain.txt/m.onnx"), "--out",
         _file("plain.txt", b"x")),
    Case("latency-negative-warmup",
         ("latency", "measure", "--space", "moga", "--arch", MOGA_ARCH, "--warmup", "-1"), "'warmup'"),
    Case("latency-unknown-device", ("latency", "measure", "--space", "moga", "--arch", MOGA_ARCH, "--device", "tpu9"),
         "tpu9"),
    Case("costmodel-fit-too-few", ("costmodel", "fit", "--space", "moga", "--kind", "linear", "--samples", "1",
                                   "--out", "m.json"), "--samples"),
    Case("costmodel-fit-samples-not-a-number", ("costmodel", "fit", "--space", "moga", "--kind", "kernels",
                                                "--samples", "many", "--out", "m.json"), "or --samples auto (measure"),
    Case("costmodel-fit-max-samples-too-few", ("costmodel", "fit", "--space", "moga", "--kind", "kernels",
                                               "--samples", "auto", "--max-samples", "20", "--out", "m.json"),
         "--max-samples"),
    Case("costmodel-fit-bad-kind", ("costmodel", "fit", "--space", "moga", "--kind", "cubic", "--samples", "8",
                                    "--out", "m.json"), "argument --kind: invalid choice: 'cubic'"),
    Case("costmodel-fit-out-exists", ("costmodel", "fit", "--space", "moga", "--kind", "linear", "--samples", "8",
                                      "--out", "m.json"), "exists; nothing was changed", _file("m.json", b"{}")),
    Case("costmodel-eval-missing", ("costmodel", "eval", "--model", "missing.json", "--samples", "4"), "missing.json"),
    Case("costmodel-eval-garbage", ("costmodel", "eval", "--model", "m.json", "--samples", "4"), "m.json",
         _file("m.json", os.urandom(64))),
    # hwnas submit / jobs: everything checked here before a cluster is contacted (port 9: nothing listens).
    Case("submit-nothing", ("submit", "--address", "127.0.0.1:9"), "takes a CONFIG or --resume"),
    Case("submit-config-and-resume", ("submit", "config.yaml", "--resume", ".", "--address", "127.0.0.1:9"),
         "takes a CONFIG or --resume", lambda d: _tiny(d)),
    Case("submit-no-address", ("submit", "config.yaml"), "no Ray cluster to talk to", lambda d: _tiny(d)),
    Case("submit-gcs-address", ("submit", "config.yaml", "--address", "ray://head:10001"),
         "is not a Ray dashboard address", lambda d: _tiny(d)),
    Case("submit-bad-config", ("submit", "config.yaml", "--address", "127.0.0.1:9", "--set", "seed=x"),
         "config field 'seed'", lambda d: _tiny(d)),
    Case("submit-onto-existing", ("submit", "config.yaml", "--storage", ".", "--address", "127.0.0.1:9"),
         "already holds an experiment", lambda d: (_tiny(d, name="exp"), _experiment(d))),
    Case("submit-resume-not-an-experiment", ("submit", "--resume", ".", "--address", "127.0.0.1:9"),
         "is not an hwnas experiment directory"),
    Case("submit-resume-with-set", ("submit", "--resume", "exp", "--set", "seed=1", "--address", "127.0.0.1:9"),
         "--set does not apply to --resume", _experiment),
    Case("submit-unreachable", ("submit", "config.yaml", "--address", "127.0.0.1:9"), "cannot reach the Ray dashboard",
         lambda d: _tiny(d)),
    Case("jobs-no-action", ("jobs",), "the following arguments are required: ACTION"),
    Case("jobs-status-no-id", ("jobs", "status", "--address", "127.0.0.1:9"), "the following arguments are required: JOB"),
    Case("jobs-list-unreachable", ("jobs", "list", "--address", "http://127.0.0.1:9"), "cannot reach the Ray dashboard"),
]

EXPERIMENT_FILE_CASES = [
    Case("experiment-json-random", ("resume", "exp"), "is damaged", _damaged("experiment.json", os.urandom(64))),
    Case("experiment-json-a-list", ("status", "exp"), "is damaged", _damaged("experiment.json", b"[1, 2]")),
    Case("experiment-json-newer", ("resume", "exp"), "is damaged",
         _damaged("experiment.json", _set_config(schema_version=99))),
    Case("experiment-json-bad-config", ("resume", "exp"), "supernet.steps",
         _damaged("experiment.json", _set_config(**{"config.supernet.steps": -1}))),
    Case("experiment-json-no-uid", ("status", "exp"), "is damaged", _damaged("experiment.json", _set_config(uid=5))),
    Case("journal-stage-without-name", ("status", "exp"), "record 1 is not a journal record",
         _journal({"event": "stage_completed", "schema": 2})),
    Case("journal-array-record", ("resume", "exp"), "record 2 is not a journal record",
         _journal({"event": "attempt_started", "schema": 2}, [1, 2])),
    Case("journal-newer-schema", ("resume", "exp"), "journal schema 9",
         _journal({"event": "attempt_started", "schema": 9})),
    Case("checkpoint-garbage", ("resume", "exp"), "is corrupt", _damaged("supernet/supernet.pt", os.urandom(512))),
    Case("checkpoint-not-recorded", ("resume", "exp"), "recorded when its training finished", _completed_training),
    Case("experiment-locked", ("resume", "exp"), "is being run by another hwnas process", _experiment,
         holds_lock=True),
]

# ---------------------------------------------------------------------- image folders
def _folders(case_dir: Path, **data: object) -> None:
    """config.yaml on an image folder ``images`` (3 classes); ``data`` changes the data section."""
    from trainers.imagefolder import write_example_folder

    write_example_folder(case_dir / "images", classes=3, per_class=2, size=24, seed=0)
    _tiny(case_dir, data={"kind": "imagefolder", "train": "images", "val_fraction": 0.5, "image_size": 16,
                          "cache_dir": "cache", **data})
    raw = yaml.safe_load((case_dir / "config.yaml").read_text())
    raw["supernet"]["batch_size"] = 2
    raw["evaluation"].update(bn_batches=1, bn_batch_size=2)
    (case_dir / "config.yaml").write_text(yaml.safe_dump(raw))


def _corrupt_image(case_dir: Path) -> None:
    _folders(case_dir)
    (case_dir / "images" / "class_1" / "img_001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(40))


def _empty_class(case_dir: Path) -> None:
    _folders(case_dir)
    (case_dir / "images" / "class_9").mkdir()


def _unknown_val_class(case_dir: Path) -> None:
    from trainers.imagefolder import write_example_folder

    write_example_folder(case_dir / "val", classes=4, per_class=1, size=24, seed=1)
    _folders(case_dir, val="val", val_fraction=None)


IMAGEFOLDER_CASES = [
    Case("folder-missing", _search(), "the image folder", lambda d: _folders(d, train="absent")),
    Case("folder-is-a-file", _search(), "is a file", lambda d: (_folders(d, train="config.yaml"))),
    Case("folder-empty-class", _search(), "holds no images", _empty_class),
    Case("folder-corrupt-image", _search(), "img_001.png' cannot be read", _corrupt_image),
    Case("folder-val-and-fraction", _search(), "give exactly one of val", lambda d: _folders(d, val="images")),
    Case("folder-unknown-val-class", _search(), "class 'class_3' is not among the training classes",
         _unknown_val_class),
]


# ---------------------------------------------------------------------- COCO detection data
def _coco(case_dir: Path, edit: Callable[[dict], object] | None = None, split: str = "train", **data: object) -> None:
    """config.yaml on a tiny synthetic COCO dataset ``coco``; ``edit`` changes ``split``'s annotations."""
    from trainers._synth_coco import write_synthetic_coco

    write_synthetic_coco(case_dir / "coco", images=6, seed=0, image_size=48)
    if edit is not None:
        path = case_dir / "coco" / "annotations" / f"instances_{split}.json"
        raw = json.loads(path.read_text())
        edit(raw)
        path.write_text(json.dumps(raw))
    coco = {"kind": "coco", "image_size": 32, "cache_dir": "cache",
            "train": {"images": "coco/train", "annotations": "coco/annotations/instances_train.json"},
            "val": {"images": "coco/val", "annotations": "coco/annotations/instances_val.json"}}
    _tiny(case_dir, data={**coco, **data})
    raw = yaml.safe_load((case_dir / "config.yaml").read_text())
    raw["supernet"]["batch_size"] = 2
    raw["evaluation"].update(bn_batches=1, bn_batch_size=2)
    raw["search"].pop("objectives")  # the default objectives take the detector's mAP
    (case_dir / "config.yaml").write_text(yaml.safe_dump(raw))


def _first_annotation(**changes: object) -> Callable[[dict], None]:
    return lambda raw: raw["annotations"][0].update(changes)


def _coco_then(action: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(case_dir: Path) -> None:
        _coco(case_dir)
        action(case_dir)
    return setup


def _truncate_first_image(case_dir: Path) -> None:
    image = sorted((case_dir / "coco" / "train").iterdir())[0]
    image.write_bytes(image.read_bytes()[:200])


COCO_CASES = [
    Case("coco-annotations-missing", _search(), "instances_train.json' does not exist",
         _coco_then(lambda d: (d / "coco" / "annotations" / "instances_train.json").unlink())),
    Case("coco-images-missing", _search(), "coco/val' does not exist", _coco_then(lambda d: __import__("shutil").rmtree(d / "coco" / "val"))),
    Case("coco-not-json", _search(), "is not JSON",
         _coco_then(lambda d: (d / "coco" / "annotations" / "instances_val.json").write_text("{images: ["))),
    Case("coco-field-missing", _search(), "(entry 0 of 'annotations') lacks 'bbox'", lambda d: _coco(d, lambda raw: raw["annotations"][0].pop("bbox"))),
    Case("coco-no-categories", _search(), "lacks 'categories'", lambda d: _coco(d, lambda raw: raw.pop("categories"))),
    Case("coco-unknown-category", _search(), "has category_id 99, not among the file's categories", lambda d: _coco(d, _first_annotation(category_id=99))),
    Case("coco-box-outside", _search(), "has box [5, 5, 900, 10] (x, y, width, height) outside its image", lambda d: _coco(d, _first_annotation(bbox=[5, 5, 900, 10]))),
    Case("coco-box-zero-width", _search(), "has a box of width x height 0 x 10", lambda d: _coco(d, _first_annotation(bbox=[5, 5, 0, 10]))),
    Case("coco-image-file-missing", _search(), "000000000001.jpg' of image 1",
         _coco_then(lambda d: sorted((d / "coco" / "train").iterdir())[0].unlink())),
    Case("coco-truncated-image", _search(), "000000000001.jpg' cannot be read", _coco_then(_truncate_first_image)),
    Case("coco-val-category-unknown", _search(), "has category 42 ('extra'), which the training annotations lack",
         lambda d: _coco(d, lambda raw: raw["categories"].append({"id": 42, "name": "extra"}), split="val")),
    Case("coco-detection-loss", _search("detection.loss=dice"), "'detection.loss': must be one of", _coco),
    Case("coco-objective-accuracy", _search("search.objectives=[{metric: accuracy, mode: max, weight: 1.0}]"),
         "'search.objectives[0].metric': must be one of map, map_50", _coco),
    Case("detection-on-classifier-data", _search("detection.loss=focal"), "'detection': applies to detection data",
         lambda d: _tiny(d)),
    Case("evaluate-not-an-experiment", ("evaluate", ".", "--candidate", "0123456789abcdef"),
         "is not an hwnas experiment directory", None),
    Case("evaluate-unknown-candidate", ("evaluate", "exp", "--candidate", "0123456789abcdef"),
         "no trained supernet yet", _experiment),
    Case("evaluate-out-on-classifier", ("evaluate", "exp", "--candidate", "x", "--out", "d.json"),
         "--out writes a detector's detections", _experiment),
    Case("evaluate-out-is-a-directory", ("evaluate", "exp", "--candidate", "x", "--out", "exp"), "is a directory",
         _experiment),
]


#: The finished tiny experiment the retrain cases copy (set by the ``outcomes`` fixture from ``reference_run``).
_FINISHED: list[Path] = []


def _finished(case_dir: Path) -> None:
    """`exp`: a copy of the reference run, a finished search."""
    import shutil

    shutil.copytree(_FINISHED[0], case_dir / "exp")


def _retrain(*args: str) -> tuple[str, ...]:
    return ("retrain", "exp", *args)


RETRAIN_CASES = [
    Case("retrain-search-unfinished", _retrain(), "has not finished (stage train_supernet is pending)", _experiment),
    Case("retrain-unknown-candidate", _retrain("--candidates", "0123456789abcdef"),
         "candidate '0123456789abcdef' is not one of the", _finished),
    Case("retrain-malformed-arch", _retrain("--arch", "1-2-x"), "--arch '1-2-x': ", _finished),
    Case("retrain-arch-out-of-range", _retrain("--arch", "99" + MOGA_ARCH[1:]), "outside 0..11", _finished),
    Case("retrain-arch-too-short", _retrain("--arch", "1-2"), "14 searched layers", _finished),
    Case("retrain-zero-epochs", _retrain("--set", "retrain.epochs=0"), "'epochs': must be an integer in [1",
         _finished),
    Case("retrain-negative-workers", _retrain("--set", "retrain.workers=-2"), "'workers': must be an integer in [1",
         _finished),
    Case("retrain-too-many-workers", _retrain("--set", "retrain.workers=4096", "--set", "retrain.batch_size=4096"),
         "retrain setting 'workers' is 4096, but this Ray cluster", _finished),
    Case("retrain-top-zero", _retrain("--top", "0"), "argument --top: expected a whole number >= 1", _finished),
    Case("retrain-set-other-section", _retrain("--set", "search.max_concurrent=2"), "expected retrain.KEY=VALUE",
         _finished),
    Case("retrain-unknown-setting", _retrain("--set", "retrain.epoch=3"), "unknown setting for retrain", _finished),
    Case("retrain-batch-not-divisible", _retrain("--set", "retrain.workers=2", "--set", "retrain.batch_size=33"),
         "must be divisible by workers (2)", _finished),
    Case("retrain-ids-and-arch", _retrain("--candidates", "a", "--arch", "1"), "not allowed with argument",
         _finished),
    Case("retrain-missing-dir", ("retrain", "absent"), "does not exist", None),
    Case("config-device-wait-negative", _search("cost.device_wait_s=-1"), "'cost.device_wait_s': must be in [0, 604800]",
         lambda d: _tiny(d)),
    Case("config-retrain-not-a-mapping", _search("retrain=5"), "'retrain': must be a mapping", lambda d: _tiny(d)),
    Case("config-retrain-zero-epochs", _search("retrain.epochs=0"), "'retrain.epochs': must be an integer",
         lambda d: _tiny(d)),
    Case("config-retrain-unknown-recipe", _search("retrain.recipe=imagenet"), "'retrain.recipe': must be one of",
         lambda d: _tiny(d)),
    Case("config-retrain-batch-over-data", _search("retrain.batch_size=4096"),
         "'retrain.batch_size': must be <= data.train_size (512)", lambda d: _tiny(d)),
    Case("config-compute-cuda-without-gpu", _search("compute.device=cuda"),
         "'compute.device' is cuda, but the Ray cluster has no GPU", lambda d: _tiny(d)),
    Case("config-compute-fp16-without-gpu", _search("compute.precision=fp16"),
         "'compute.precision' is fp16, but the Ray cluster has no GPU", lambda d: _tiny(d)),
    Case("config-cuda-torch-latency-without-gpu", _search("cost.kind=measured", "cost.device=cuda-torch"),
         "no node of this Ray cluster carries the resource device:cuda-torch", lambda d: _tiny(d)),
    Case("config-retrain-too-many-workers", _search("retrain.workers=512", "retrain.batch_size=512"),
         "retrain setting 'workers' is 512, but this Ray cluster", lambda d: _tiny(d)),
]

#: One case of each kind also runs as a fresh process, exactly as a user types it.
REAL_PROCESS = {"config-missing", "set-unknown-key", "unknown-command", "experiment-json-random",
                "retrain-unknown-candidate", "config-compute-cuda-without-gpu"}

CASES = (CONFIG_FILE_CASES + SET_CASES + COMMAND_CASES + EXPERIMENT_FILE_CASES + IMAGEFOLDER_CASES + COCO_CASES
         + RETRAIN_CASES)


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@dataclass
class Outcome:
    returncode: int
    stderr: str
    stdout: str
    changed: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory, reference_run: Path) -> dict[str, Outcome]:
    from orchestrator.experiment import Experiment

    _FINISHED[:] = [reference_run]

    root = tmp_path_factory.mktemp("bad-input")
    dirs, before = {}, {}
    for case in CASES:
        d = dirs[case.id] = root / case.id
        d.mkdir()
        if case.setup:
            case.setup(d)
        before[case.id] = _snapshot(d)

    def run(case: Case) -> Outcome:
        if case.id in REAL_PROCESS:
            proc = run_cli(*case.argv, cwd=dirs[case.id], timeout=300)
            code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
        else:
            code, stdout, stderr = server.run(list(case.argv), cwd=dirs[case.id], env=cli_env(), timeout=300)
        after = _snapshot(dirs[case.id])
        old = before[case.id]
        changed = sorted(k for k in set(old) | set(after) if old.get(k) != after.get(k))
        return Outcome(code, stderr, stdout, changed)

    server = CliForkServer(cli_env())
    try:
        with ExitStack() as held:
            for case in CASES:
                if case.holds_lock:
                    exp = Experiment.open(dirs[case.id] / "exp")
                    held.enter_context(exp.lock())
            with ThreadPoolExecutor(max_workers=3) as pool:
                return dict(zip((c.id for c in CASES), pool.map(run, CASES)))
    finally:
        server.close()


def test_there_are_at_least_sixty_cases() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 60
    assert REAL_PROCESS <= {c.id for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_line_exit_2_and_writes_nothing(case: Case, outcomes: dict[str, Outcome]) -> None:
    out = outcomes[case.id]
    assert out.returncode == 2, f"exit {out.returncode}\nstdout: {out.stdout[-1500:]}\nstderr: {out.stderr[-3000:]}"
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr[-3000:]
    assert lines[0].startswith("hwnas: error: ") and "HINT:" in lines[0], lines[0]
    assert case.pattern in lines[0], lines[0]
    assert not out.changed, f"written or changed: {out.changed}"

