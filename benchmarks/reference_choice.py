"""Which reference model keeps paired ratios steady when the host's state changes: the space's default
(published) architecture, or a typical one (:func:`cluster.calibration.reference_encoding`, what
hwnas pairs with).

Measures ``--models`` sampled architectures with :func:`cluster.measure.measure_paired` against each
reference, in four states of the node, one after the other: idle, idle again (the repeat noise), next
to a busy loop on another core (``cpu_hog``), and next to a process streaming 64 MB arrays through
memory (``mem_hog``, a neighbour that shares the caches and the memory bus). Per reference and state
it reports the reference's own median inside its pairs and, against the first idle pass, the shift
of the models' log ratios: their common part (median) and how much it differs from model to model
(standard deviation about that median). A ratio to a good reference moves little, and all models
together. The last line is one JSON object.

    .venv/bin/python benchmarks/reference_choice.py --space edgetpu --input-size 128 --models 20
    .venv/bin/python benchmarks/reference_choice.py --space mobiledet --setting target=cpu \
        --setting task=classification --input-size 128 --models 20
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster import get_device  # noqa: E402
from cluster.calibration import export_architecture, reference_encoding, sample_architectures  # noqa: E402
from cluster.measure import MeasureOptions, measure_paired  # noqa: E402
from spaces import get_space  # noqa: E402

NEIGHBOURS = {
    "idle": None,
    "idle_again": None,
    "cpu_hog": "while True: pass",
    "mem_hog": "import numpy as np\na = np.ones(2**23)\nb = np.empty_like(a)\nwhile True: np.copyto(b, a)",
}


def _pass(models: list[bytes], reference: bytes, shape: tuple[int, ...]) -> tuple[np.ndarray, float]:
    """Every model's ratio to ``reference``, and the reference's median ms inside the pairs."""
    cpu, options = get_device("cpu"), MeasureOptions()
    got = [measure_paired(cpu, m, shape, reference, shape, options=options) for m in models]
    return np.array([g.relative for g in got]), float(np.median([g.reference.median_ms for g in got]))


def _under(neighbour: str | None, measure):
    """``measure()`` with the neighbour process running (stopped by its PID afterwards)."""
    process = subprocess.Popen([sys.executable, "-c", neighbour]) if neighbour else None
    try:
        if process is not None:
            time.sleep(0.5)  # let it start streaming
        return measure()
    finally:
        if process is not None:
            process.kill()
            process.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="edgetpu")
    p.add_argument("--input-size", type=int, default=128)
    p.add_argument("--models", type=int, default=20)
    p.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                   help="a space setting beyond the input size, e.g. --setting target=cpu (repeatable)")
    args = p.parse_args()
    space = get_space(args.space, **dict(item.split("=", 1) for item in args.setting), input_size=args.input_size)
    shape = tuple(space.input_shape)
    models = [export_architecture(space, e) for e in sample_architectures(space, args.models, seed=0, purpose="drift")]
    references = {"default": space.default_encoding(), "typical": reference_encoding(space)}
    result: dict = {"space": args.space, "input_size": args.input_size, "models": args.models, "references": {}}
    for name, encoding in references.items():
        data = export_architecture(space, encoding)
        passes = {state: _under(code, lambda: _pass(models, data, shape)) for state, code in NEIGHBOURS.items()}
        base = np.log(passes["idle"][0])
        row: dict = {"madds_m": round(space.count(encoding)["madds"] / 1e6, 1),
                     "median_ratio": round(float(np.exp(np.median(base))), 3),
                     "reference_ms": {state: round(ms, 3) for state, (_, ms) in passes.items()}}
        for state in ("idle_again", "cpu_hog", "mem_hog"):
            shift = np.log(passes[state][0]) - base
            row[state] = {"common_shift": round(float(np.median(shift)), 4),
                          "per_model_sd": round(float(np.std(shift - np.median(shift))), 4)}
        result["references"][name] = row
        print(f"{args.space}@{args.input_size}, {name} reference ({row['madds_m']} M MAdds, models at "
              f"{row['median_ratio']}x it; its ms {row['reference_ms']}): shift of the models' log ratios against "
              "the idle pass (common / per-model sd): "
              + "; ".join(f"{s} {row[s]['common_shift']:+.3f} / {row[s]['per_model_sd']:.3f}"
                          for s in ("idle_again", "cpu_hog", "mem_hog")), flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
