"""The GPU check (issue 19): hwnas's training, scoring and latency paths on CUDA, in one run of a few minutes.

Needs only torch, numpy, onnx (and PyYAML) plus hwnas's own ``spaces``, ``trainers`` and ``cluster``
measurement code: no Ray, no MLflow, no pymoo, so it runs from the source tree on a lent GPU machine::

    PYTHONPATH=. python3 benchmarks/gpu_check.py --out /tmp/gpu-check

It records, as ``gpu_check.json`` and a Markdown table (``gpu_check.md``) under ``--out``:

1. supernet steps/s of the quickstart's supernet (its config, sandwich and distillation included) on
   CUDA against the CPU (the quickstart's 1 thread, and every core), as ratios;
2. a one-model training loop's throughput in hwnas's trainer (:class:`trainers.retrain.RetrainLoop`)
   against a plain PyTorch loop over the same model, batches and optimiser (target >= 0.9);
3. ``cuda-torch`` latency of the ``mobiledet-gpu``, ``mobiledet-cpu`` and ``mobilenet-v2`` presets, through
   the same :class:`cluster.service.LatencyService` an experiment's latency actor runs (and ONNX Runtime's
   CPU latency of the same models, for contrast);
4. every path ``compute`` reaches (supernet training, BN recalibration and scoring, retraining) on CUDA in
   fp32, bf16 and fp16, for classification and detection, against the same weights scored on the CPU;
5. a linear cost model fitted on ``cuda-torch`` latencies of one space, with its held-out r^2, saved as a
   file that ``hwnas search`` on a CPU machine takes as ``cost.model`` (MoGA's "measure the device once,
   search anywhere").

Without CUDA it prints one line saying so and skips the GPU parts. ``--rehearse`` runs every part on the
CPU at toy sizes instead (the torch ``cpu`` device standing in for CUDA), so that the whole script is
checked before a GPU minute is spent on it; a test runs both ways.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"
PRESETS = ("mobiledet-gpu", "mobiledet-cpu", "mobilenet-v2")
#: The space the GPU cost model is fitted for: MobileDets' GPU search space (IBN, fused IBN, Tucker) as a
#: classifier at 128 px, the setting of the CPU search it is compared with (BENCHMARKS.md).
COST_SPACE = ("mobiledet", {"target": "gpu", "variant": "ibn+fused+tucker", "task": "classification",
                            "num_classes": 10, "input_size": 128})


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "hwnas-gpu-check")
    p.add_argument("--rehearse", action="store_true", help="run every part on the CPU at toy sizes")
    p.add_argument("--cost-samples", type=int, default=80, help="architectures measured for the cost model")
    p.add_argument("--supernet-steps", type=int, default=40, help="timed CUDA supernet steps")
    p.add_argument("--only", action="append", default=[], help="run only these parts (latency, supernet, loop, paths, cost)")
    args = p.parse_args(argv)
    env = environment()
    if not env["cuda"] and not args.rehearse:
        print(f"gpu_check: PyTorch {torch.__version__} sees no CUDA device: skipping the GPU parts "
              f"(run it on a GPU machine, or with --rehearse to try every part on the CPU)")
        write(args.out, {"environment": env, "skipped": True})
        return 0
    device = "cuda" if env["cuda"] and not args.rehearse else "cpu"
    sizes = TOY if args.rehearse else FULL
    parts: dict[str, Callable[[], dict[str, Any]]] = {  # the slowest last: a time-out keeps the others
        "latency": lambda: preset_latencies(device, sizes, args.out),
        "supernet": lambda: supernet_rates(device, sizes, steps=args.supernet_steps),
        "loop": lambda: loop_ratio(device, sizes),
        "paths": lambda: compute_paths(device),
        "cost": lambda: fit_gpu_cost_model(device, sizes, args.out, samples=args.cost_samples),
    }
    report: dict[str, Any] = {"environment": env, "skipped": False, "rehearsal": args.rehearse}
    for name, run in parts.items():
        if args.only and name not in args.only:
            continue
        began = time.perf_counter()
        result = guarded(run)
        report[name] = result if isinstance(result, dict) else {"error": result}
        report[name]["seconds"] = round(time.perf_counter() - began, 1)
        print(f"gpu_check: {name} done in {report[name]['seconds']} s: {json.dumps(report[name])[:400]}", flush=True)
        write(args.out, report)
    print(table(report))
    return 0


#: Sizes of the full check and of the CPU rehearsal.
FULL = {"cpu_steps": 6, "warmup": 3, "loop_preset": "mobilenet-v2", "loop_images": 1024, "loop_batch": 64,
        "loop_steps": 15, "presets": PRESETS, "input_size": None, "measure": {}, "data": {}}
TOY = {"cpu_steps": 2, "warmup": 1, "loop_preset": "mobilenet-v2", "loop_images": 64, "loop_batch": 8,
       "loop_steps": 3, "presets": ("mobilenet-v2",), "input_size": 64,
       "measure": {"warmup": 1, "min_runs": 3, "max_runs": 5, "min_time_s": 0.0, "max_rounds": 1},
       "data": {"train_size": 256, "val_size": 64}}


def environment() -> dict[str, Any]:
    import onnx

    cuda = torch.cuda.is_available()
    return {"torch": torch.__version__, "numpy": np.__version__, "onnx": onnx.__version__, "cuda": cuda,
            "gpu": torch.cuda.get_device_name(0) if cuda else None, "python": platform.python_version(),
            "cpu_cores": torch.get_num_threads(), "machine": platform.machine()}


# ------------------------------------------------------------------------------------ 1. supernet
def quickstart_trainer(device: str, threads: int, steps: int, directory: Path, data_overrides: dict[str, Any]) -> Any:
    """The quickstart's supernet trainer (its config file, read without hwnas's config loader, which needs
    the searchers' dependencies), with ``threads`` CPU threads, computing on ``device``."""
    from spaces import get_space
    from trainers import Compute
    from trainers.supernet import SupernetTrainSettings, build_trainer

    raw = yaml.safe_load(QUICKSTART.read_text())
    train = {**raw["supernet"], "threads": threads, "steps": steps, "checkpoint_every": 10**9}
    data = {**{k: v for k, v in raw["data"].items() if k != "kind"}, **data_overrides}
    return build_trainer(space=get_space(raw["space"]["name"], **raw["space"]["settings"]), data_kind=raw["data"]["kind"],
                         data_settings=data, train=SupernetTrainSettings(**train), seed=int(raw["seed"]),
                         checkpoint_path=directory / f"supernet-{device}-{threads}.pt", compute=Compute(device=device))


def steps_per_second(trainer: Any, *, warmup: int, steps: int) -> float:
    trainer.train_steps(warmup)
    sync(trainer.device)
    began = time.perf_counter()
    trainer.train_steps(steps)
    sync(trainer.device)
    return steps / (time.perf_counter() - began)


def supernet_rates(device: str, sizes: dict[str, Any], *, steps: int) -> dict[str, Any]:
    """Steps/s of the quickstart supernet: on ``device`` against the CPU with 1 thread and with every core."""
    cores = torch.get_num_threads()
    steps = steps if device == "cuda" else sizes["cpu_steps"]
    total = sizes["warmup"] + max(steps, sizes["cpu_steps"]) + 1
    out: dict[str, Any] = {"config": str(QUICKSTART.relative_to(ROOT)), "device": device}
    with tempfile.TemporaryDirectory() as tmp:
        for label, where, threads, n in (("cpu_1_thread", "cpu", 1, sizes["cpu_steps"]),
                                         (f"cpu_{cores}_threads", "cpu", cores, sizes["cpu_steps"]),
                                         (device, device, 1, steps)):
            trainer = quickstart_trainer(where, threads, total, Path(tmp), sizes["data"])
            out[f"{label}_steps_per_s"] = round(steps_per_second(trainer, warmup=sizes["warmup"], steps=n), 3)
            del trainer
    torch.set_num_threads(cores)
    for label in ("cpu_1_thread", f"cpu_{cores}_threads"):
        out[f"{device}_vs_{label}"] = round(out[f"{device}_steps_per_s"] / out[f"{label}_steps_per_s"], 2)
    return out


def sync(device: Any) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------ 2. training loop
def retrain_job(sizes: dict[str, Any]) -> Any:
    """A retrain of the loop preset on synthetic images of its input size, SGD with a constant LR."""
    from spaces import get_preset
    from trainers.retrain import RetrainJob, check_retrain_settings

    space, encoding = get_preset(sizes["loop_preset"])
    settings = dict(space.identity["settings"])
    if sizes["input_size"]:
        settings["input_size"] = sizes["input_size"]
    data = {"num_classes": settings.get("num_classes", 1000), "image_size": settings.get("input_size", 224),
            "train_size": sizes["loop_images"], "val_size": 8}
    recipe = check_retrain_settings({"epochs": 1, "batch_size": sizes["loop_batch"], "label_smoothing": 0.0,
                                     "weight_decay": 4e-5, "lr": 0.05})
    return RetrainJob(retrain_id="gpu-check", candidate_id="gpu-check", encoding=tuple(encoding),
                      space_name=space.name, space_settings=settings, data_kind="synthetic", data_settings=data,
                      seed=0, settings=recipe)


def plain_loop_rate(loop: Any, steps: int) -> float:
    """Images/s of the loop a PyTorch user writes by hand: the same model, batches and optimiser settings."""
    import torch.nn.functional as F

    model = loop.space.build(loop.job.encoding).to(loop.device).train()
    s = loop.settings
    optimizer = torch.optim.SGD(model.parameters(), lr=s["lr"], momentum=s["momentum"],
                                weight_decay=s["weight_decay"], nesterov=True)
    batch = s["batch_size"]
    order = torch.randperm(loop.dataset.train_size)
    began = None
    for k in range(steps + 1):  # the first step warms up
        if k == 1:
            sync(loop.device)
            began = time.perf_counter()
        x, y = loop.dataset.train_batch(order[k * batch:(k + 1) * batch])
        x, y = x.to(loop.device, non_blocking=True), y.to(loop.device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    sync(loop.device)
    return steps * batch / (time.perf_counter() - began)


def loop_ratio(device: str, sizes: dict[str, Any]) -> dict[str, Any]:
    """hwnas's RetrainLoop images/s against the plain loop, alternated three times so that drift (a busy
    machine, clocks) hits both alike; the best round of each counts."""
    from trainers.retrain import RetrainLoop

    loop = RetrainLoop(retrain_job(sizes), device=device)
    steps, batch = sizes["loop_steps"], sizes["loop_batch"]
    hwnas, plain = [], []
    for _ in range(3):
        loop.train_epoch(steps=1)  # warm-up (cuDNN autotuning, allocator)
        sync(device)
        began = time.perf_counter()
        loop.train_epoch(steps=steps)
        sync(device)
        hwnas.append(steps * batch / (time.perf_counter() - began))
        plain.append(plain_loop_rate(loop, steps))
    return {"model": sizes["loop_preset"], "batch": batch, "device": device,
            "hwnas_images_per_s": round(max(hwnas), 1), "plain_images_per_s": round(max(plain), 1),
            "ratio": round(max(hwnas) / max(plain), 3)}


# ------------------------------------------------------------------------------------ 3. latency
def torch_device_profile(device: str) -> Any:
    from cluster.devices import DeviceProfile, get_device

    # The rehearsal times the same runtime on the CPU, under a device of its own.
    return get_device("cuda-torch") if device == "cuda" else DeviceProfile(name="cpu-torch", runtime="torch",
                                                                          provider="cpu")


def preset_latencies(device: str, sizes: dict[str, Any], out: Path) -> dict[str, Any]:
    """Each preset exported (a detector as deployed) and timed through the latency service."""
    from cluster.devices import get_device
    from cluster.measure import MeasureOptions
    from cluster.service import LatencyService
    from spaces import export_onnx, get_preset, get_space
    from trainers.detection import deployable

    options = MeasureOptions(**sizes["measure"])
    gpu = LatencyService(torch_device_profile(device), str(out / "latency_cache.jsonl"), options=options)
    cpu = LatencyService(get_device("cpu"), None, options=options)
    rows = {}
    for name in sizes["presets"]:
        space, encoding = get_preset(name)
        if sizes["input_size"]:
            space = get_space(space.name, **{**space.identity["settings"], "input_size": sizes["input_size"]})
        torch.manual_seed(0)
        onnx_bytes = export_onnx(deployable(space, space.build(encoding).eval()), space.input_shape)
        cid = space.candidate_id(encoding)
        timed = gpu.measure(cid, onnx_bytes, space.input_shape)
        ort = cpu.measure(cid, onnx_bytes, space.input_shape)
        rows[name] = {"input_shape": list(space.input_shape), "median_ms": round(timed["median_ms"], 4),
                      "cv": round(timed["cv"], 4), "runs": timed["runs"], "runtime": timed["runtime"],
                      "onnxruntime_cpu_1_thread_ms": round(ort["median_ms"], 3)}
    return {"device": gpu.stats()["device"], "presets": rows}


# ------------------------------------------------------------------------------------ 4. cost model
def fit_gpu_cost_model(device: str, sizes: dict[str, Any], out: Path, *, samples: int) -> dict[str, Any]:
    """A linear cost model (indicators + op features) fitted on latencies of :data:`COST_SPACE`."""
    from cluster.calibration import ServiceMeasurer, fit_cost_model, save_cost_model
    from cluster.measure import MeasureOptions
    from cluster.service import LatencyService
    from spaces import get_space

    name, settings = COST_SPACE
    if sizes["input_size"]:
        settings = {**settings, "input_size": sizes["input_size"]}
        samples = min(samples, 8)
    profile = torch_device_profile(device)
    service = LatencyService(profile, str(out / "latency_cache.jsonl"), options=MeasureOptions(**sizes["measure"]))
    lines: list[str] = []
    result = fit_cost_model("linear", get_space(name, **settings), samples=samples, seed=0,
                            measurer=ServiceMeasurer(service, progress=lines.append, paired=False), device=profile.name)
    path = out / f"{name}_gpu_linear_{profile.name}.json"
    save_cost_model(path, result)
    fidelity = result.fidelity
    return {"space": name, "settings": settings, "device": profile.name, "samples": samples,
            "fit_samples": result.info["fit_samples"], "holdout": result.info["holdout"],
            "heldout_r2": fidelity["r2"], "heldout_rmse_pct": fidelity["rmse_pct"],
            "heldout_kendall": fidelity["kendall"], "mean_holdout_ms": result.info["mean_holdout_ms"],
            "model_file": path.name, "runtime": service.stats()["runtime"]}


# ------------------------------------------------------------------------------------ 5. compute paths
def compute_paths(device: str) -> dict[str, Any]:
    """Every place ``compute`` reaches, run on ``device`` in each precision it offers: supernet training
    (sandwich + distillation), BN recalibration and scoring of an extracted candidate (against the same
    weights scored on the CPU in fp32), a retrain epoch; for classification, and for detection where
    pycocotools is importable. Also the ``cuda-torch`` interpreter's outputs against PyTorch's own."""
    out: dict[str, Any] = {"interpreter_max_rel_diff": interpreter_parity(device)}
    precisions = ("fp32", "bf16", "fp16") if device == "cuda" else ("fp32", "bf16")
    tasks = ["synthetic"]
    try:
        import pycocotools  # noqa: F401  (carried as a wheel to the GPU machine)

        tasks.append("coco")
    except ImportError:
        out["detection"] = "skipped: pycocotools is not installed"
    with tempfile.TemporaryDirectory() as tmp:
        for kind in tasks:
            for precision in precisions:
                out[f"{kind}_{precision}"] = guarded(lambda: one_path_check(kind, device, precision, Path(tmp)))
    return out


def guarded(run: Callable[[], Any]) -> Any:
    """A sub-check's result, or its error in one line: one failure must not cost the rest of the run."""
    try:
        return run()
    except Exception as exc:  # noqa: BLE001 - recorded, not hidden: the report shows it
        return f"error: {type(exc).__name__}: {str(exc)[:300]}"


def interpreter_parity(device: str) -> float:
    """Max |interpreter on ``device`` - PyTorch on the CPU| / max |PyTorch|, MobileNetV3-Large."""
    from cluster.torch_runtime import onnx_to_torch
    from spaces import export_onnx, get_preset

    torch.manual_seed(0)
    space, encoding = get_preset("mobilenet-v3-large")
    model = space.build(encoding).eval()
    x = torch.randn(space.input_shape)
    with torch.inference_mode():
        want = model(x)
        got = onnx_to_torch(export_onnx(model, space.input_shape)).to(device)(x.to(device)).cpu()
    return float((got - want).abs().max() / want.abs().max())


_DATASETS: dict[str, Any] = {}  # one example dataset per kind, for every precision


def one_path_check(kind: str, device: str, precision: str, tmp: Path) -> dict[str, Any]:
    from spaces import MogaSpace
    from trainers import DATASETS, Compute, inherit_and_calibrate, make_task, score
    from trainers.supernet import SupernetTrainer, SupernetTrainSettings

    cls = DATASETS.get(kind)
    data = _DATASETS.get(kind) or _DATASETS.setdefault(kind, cls(seed=0, **cls.example_settings(tmp / kind)))
    small = MogaSpace.small_detection_settings() if data.task == "detection" else MogaSpace.small_settings()
    space = MogaSpace(**{**small, **cls.space_settings(data.settings), "task": data.task})
    compute = Compute(device=device, precision=precision)
    settings = SupernetTrainSettings(steps=4, batch_size=8, lr=0.01, momentum=0.9, weight_decay=4e-5,
                                     label_smoothing=0.0, checkpoint_every=4, threads=4, sandwich="max-min",
                                     distill=True)
    trainer = SupernetTrainer(space=space, task=make_task(data.task, {}), dataset=data, settings=settings, seed=0,
                              checkpoint_path=tmp / f"{kind}-{device}-{precision}.pt", compute=compute)
    info = trainer.train_steps(4)
    encoding = space.sample(np.random.default_rng(1))
    scores = {}
    for where in (device, "cpu"):
        supernet = trainer.model if where == device else copy.deepcopy(trainer.model).to("cpu")
        context = compute.autocast(torch.device(where)) if where == device else torch.autocast("cpu", enabled=False)
        with context:
            model = inherit_and_calibrate(space=space, supernet=supernet, encoding=encoding, dataset=data,
                                          bn_batches=2, bn_batch_size=8)
            scores[where] = score(trainer.task, model, data, batch_size=16)
    metric = make_task(data.task, {}).METRICS[0]
    return {"loss": round(info["loss"], 4), "finite": bool(np.isfinite(info["loss"])),
            f"{metric}_on_{device}": round(scores[device][metric], 4), f"{metric}_on_cpu_fp32": round(scores["cpu"][metric], 4),
            "retrain": guarded(lambda: retrain_epoch(space, encoding, kind, data.settings, device, precision))}


def retrain_epoch(space: Any, encoding: Any, kind: str, data: dict[str, Any], device: str, precision: str) -> dict[str, Any]:
    from trainers.retrain import RetrainJob, RetrainLoop, check_retrain_settings

    job = RetrainJob(retrain_id="paths", candidate_id=space.candidate_id(encoding), encoding=tuple(encoding),
                     space_name=space.name, space_settings=space.settings, data_kind=kind, data_settings=dict(data),
                     seed=0, settings=check_retrain_settings({"batch_size": 8, "epochs": 1, "lr": 0.01}))
    loop = RetrainLoop(job, device=device, precision=precision)
    metrics = loop.train_epoch()
    return {"train_loss": round(metrics["train_loss"], 4), **{k: round(v, 4) for k, v in loop.evaluate(16).items()}}


# ------------------------------------------------------------------------------------ output
def write(out: Path, report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    if not report.get("skipped"):
        (out / "gpu_check.md").write_text(table(report) + "\n")


def table(report: dict[str, Any]) -> str:
    env = report["environment"]
    rows = ["| what | figure |", "| --- | --- |",
            f"| machine | {env['gpu'] or 'CPU'} ({env['cpu_cores']} CPU threads), torch {env['torch']} |"]
    for part in ("latency", "supernet", "loop", "paths", "cost"):
        for key, value in flatten(report.get(part, {})).items():
            rows.append(f"| {part}.{key} | {value} |")
    return "\n".join(rows)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


if __name__ == "__main__":
    sys.exit(main())
