"""Measure the per-layer latency lookup table of the ``moga`` benchmark problem, once, and store it.

The searcher-quality benchmark (``benchmarks/searcher_quality.py``) must be deterministic, so it
never measures anything: it reads the table this script writes to
``benchmarks/data/moga_lut_cpu.json``. Run this only to regenerate the table (e.g. on a new
machine or ONNX Runtime version); the benchmark's numbers then change with it.

What is measured (seed 003, section 4.2, via :class:`cluster.costmodels.LookupTableCostModel`):
the MoGA space at the paper's settings (224x224 input, 1000 classes, width 1.0), every
(layer, choice) block alone on its fixed input, and the fixed stem and tail, with ONNX Runtime on
the CPU, one intra-op thread, batch 1. A few whole models calibrate the table's additive bias,
and a few other whole models are held out to report its fidelity.

Usage: python benchmarks/measure_moga_lut.py [--out benchmarks/data/moga_lut_cpu.json]
           [--calibrate 4] [--held-out 6] [--seed 0]
"""
from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster.costmodels import LookupTableCostModel, measure_median_ms  # noqa: E402
from spaces import get_space  # noqa: E402
from spaces.export import export_onnx  # noqa: E402
from core.jsonio import write_json_atomic  # noqa: E402
from core.seeding import make_rng, torch_generator  # noqa: E402

#: The space settings of the benchmark problem: the paper's (seed 003, ImageNet).
PAPER_SETTINGS: dict[str, Any] = {"width_mult": 1.0, "input_size": 224, "num_classes": 1000,
                                  "stem_stride": 2, "dropout": 0.2}
DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "moga_lut_cpu.json"
COMMAND = "python benchmarks/measure_moga_lut.py"


def _whole_model_ms(space: Any, encoding: tuple[int, ...], seed: int) -> float:
    """Median latency of one whole candidate, measured like the table's parts."""
    net = space.build(encoding, generator=torch_generator(seed, "lut", "whole", list(encoding))).eval()
    return measure_median_ms(export_onnx(net, space.input_shape), space.input_shape)


def measure(*, calibrate: int, held_out: int, seed: int) -> dict[str, Any]:
    """Fit the lookup table (with ``calibrate`` whole models for its bias) and its fidelity."""
    import onnxruntime

    space = get_space("moga", **PAPER_SETTINGS)
    rng = make_rng(seed, "benchmarks", "moga-lut")
    encodings = [space.sample(rng) for _ in range(calibrate + held_out)]
    start = time.perf_counter()
    measured = [_whole_model_ms(space, e, seed) for e in encodings]
    model = LookupTableCostModel().fit(space, encodings[:calibrate], measured[:calibrate])
    fidelity = model.fidelity(encodings[calibrate:], measured[calibrate:]) if held_out >= 2 else None
    return {
        "description": "MoGA per-layer latency lookup table (ONNX Runtime, CPU, 1 thread, batch 1), "
                       "for the searcher-quality benchmark",
        "command": COMMAND,
        "measured_on": {"date": datetime.date.today().isoformat(), "machine": platform.machine(),
                        "processor": platform.processor() or "unknown",
                        "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
                        "threads": 1, "seconds": round(time.perf_counter() - start, 1)},
        "whole_models": [{"encoding": list(e), "measured_ms": m, "predicted_ms": model.predict(e),
                          "role": "calibration" if i < calibrate else "held-out"}
                         for i, (e, m) in enumerate(zip(encodings, measured))],
        "fidelity": fidelity,
        "cost_model": model.to_dict(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--calibrate", type=int, default=4, help="whole models for the bias")
    parser.add_argument("--held-out", type=int, default=6, help="whole models for the fidelity")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.calibrate < 0 or args.held_out < 0:
        parser.error("--calibrate and --held-out must be >= 0")
    torch.set_num_threads(1)
    result = measure(calibrate=args.calibrate, held_out=args.held_out, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, result)
    table = np.array(result["cost_model"]["state"]["table_ms"])
    print(f"wrote {args.out}: table {table.shape}, {table.min():.3f}-{table.max():.3f} ms per block, "
          f"fidelity {result['fidelity']}, {result['measured_on']['seconds']} s")


if __name__ == "__main__":
    main()
