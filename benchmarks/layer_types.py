"""Which layer types a search's Pareto front chose, early (blocks 1-3) and overall: MobileDets' Fig. 9 question.

MobileDets found that searching for an accelerator puts full (fused) convolutions where a CPU search puts
inverted bottlenecks, above all in the early, high-resolution layers. This counts the layer types of each
experiment's Pareto front (``pareto.csv``) for spaces whose architectures decode into typed layers
(``mobiledet``)::

    .venv/bin/python benchmarks/layer_types.py hwnas-runs/gpu-costed hwnas-runs/cpu-measured
"""
from __future__ import annotations

import argparse
import collections
import csv
import json
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.config import config_from_json  # noqa: E402

#: Layers of MobileDets' blocks 1-3 (1 + 4 + 4): the stride-2 to stride-8 part of the network.
EARLY_LAYERS = 9
TYPES = ("fused", "ibn", "noexp", "tucker", "skip")


def front_types(exp_dir: Path) -> dict[str, object]:
    stored = json.loads((exp_dir / "experiment.json").read_text())
    space = config_from_json(stored["config"], schema_version=stored["schema_version"]).build_space()
    with open(exp_dir / "pareto.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    early: collections.Counter[str] = collections.Counter()
    overall: collections.Counter[str] = collections.Counter()
    for row in rows:
        layers = getattr(space.decode(space.parse(row["encoding"])), "blocks", ())
        if not layers or not hasattr(layers[0], "layer_type"):
            sys.exit(f"layer_types: {exp_dir}: space {space.name} does not decode into typed layers (use mobiledet)")
        early.update(layer.layer_type for layer in layers[:EARLY_LAYERS])
        overall.update(layer.layer_type for layer in layers)
    return {"front": len(rows), "early": early, "overall": overall,
            "latency_ms": [float(r["latency_ms"]) for r in rows]}


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("experiments", nargs="+", type=Path)
    args = p.parse_args(argv)
    print("| experiment | front | blocks 1-3: " + " / ".join(TYPES) + " | fused share, blocks 1-3 | overall: "
          + " / ".join(TYPES) + " |")
    print("| --- | --- | --- | --- | --- |")
    for exp_dir in args.experiments:
        r = front_types(exp_dir)
        early, overall = r["early"], r["overall"]
        share = early["fused"] / max(1, sum(early.values()))
        print(f"| {exp_dir.name} | {r['front']} | {' / '.join(str(early[t]) for t in TYPES)} | {share:.2f} | "
              f"{' / '.join(str(overall[t]) for t in TYPES)} |")


if __name__ == "__main__":
    main()
