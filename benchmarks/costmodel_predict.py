"""How long a cost model takes to predict one architecture: kernels (one counting pass) against linear.

A ``kernels`` prediction needs the architecture's op census: one forward pass of the model on
uninitialised CPU tensors, remembered per architecture; a ``linear`` one reads per-layer indicators.
Both are fitted here on MAdds (timing does not depend on what they were fitted to), then timed on
``--n`` fresh architectures (first prediction) and again (remembered). The last line is JSON.

    .venv/bin/python benchmarks/costmodel_predict.py --targets moga@224,mobiledet@320 --n 50
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster.calibration import sample_architectures  # noqa: E402
from cluster.costmodels import KernelCostModel, LinearCostModel  # noqa: E402
from costmodel_table import _space  # noqa: E402


def _per_prediction_ms(model, encodings) -> float:
    started = time.perf_counter()
    for encoding in encodings:
        model.predict(encoding)
    return 1000.0 * (time.perf_counter() - started) / len(encodings)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", default="moga@224,mobiledet@320")
    p.add_argument("--n", type=int, default=50)
    args = p.parse_args()
    rows = []
    for target in args.targets.split(","):
        for cls in (KernelCostModel, LinearCostModel):
            space = _space(target)
            fit = sample_architectures(space, 60, seed=0, purpose="fit")
            model = cls().fit(space, fit, [space.count(e)["madds"] / 1e6 for e in fit])
            fresh = sample_architectures(space, args.n, seed=0, purpose="timing", exclude=fit)
            row = {"target": target, "kind": cls.kind, "first_ms": round(_per_prediction_ms(model, fresh), 3),
                   "again_ms": round(_per_prediction_ms(model, fresh), 4)}
            rows.append(row)
            print(f"{target} {cls.kind}: {row['first_ms']} ms per fresh architecture, {row['again_ms']} ms again",
                  flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
