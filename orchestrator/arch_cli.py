"""``hwnas spaces`` and ``hwnas arch describe|export``: look at spaces and single architectures.

No Ray, no MLflow: these read the space registry, decode, build, count and export on this machine.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from core.validation import check_out_file
from spaces import SPACES, ConfigError, SearchSpace, get_space

__all__ = ["add_arch_commands", "describe_architecture", "setting_names", "space_listing"]


def space_listing() -> list[dict[str, Any]]:
    """Every registered space with its default settings, searched dimensions and presets."""
    from spaces import PRESETS

    out = []
    for name in SPACES.names():
        space = get_space(name)
        out.append({
            "space": name,
            "settings": space.settings,
            "dims": [{"name": d.name, "choices": list(d.choices)} for d in space.dims],
            "size": _space_size(space),
            "presets": sorted(p for p, (s, _, _) in PRESETS.items() if s == name),
        })
    return out


def _space_size(space: SearchSpace) -> str:
    size = 1
    for d in space.dims:
        size *= d.size
    return f"{size:.3e}"


def _format_listing(listing: list[dict[str, Any]]) -> str:
    lines = []
    for item in listing:
        sizes = sorted({len(d["choices"]) for d in item["dims"]})
        lines.append(f"{item['space']}: {len(item['dims'])} searched dimensions "
                     f"({'/'.join(map(str, sizes))} choices each), {item['size']} architectures")
        shown: list[list[str]] = []
        for dim in item["dims"]:  # each distinct choice list once, under the first dimension that has it
            if dim["choices"] not in shown:
                shown.append(dim["choices"])
                lines.append(f"  choices of {dim['name']}: {', '.join(dim['choices'])}")
        lines.append(f"  settings: {json.dumps(item['settings'], sort_keys=True)}")
        lines.append(f"  presets: {', '.join(item['presets']) or '(none)'}")
    return "\n".join(lines)


def resolve_architecture(args: argparse.Namespace) -> tuple[SearchSpace, tuple[int, ...]]:
    """The space (with CLI overrides of input size and classes) and encoding the arguments name."""
    from spaces import get_preset

    if (args.preset is None) == (args.space is None):
        raise ConfigError("give either --preset NAME or --space NAME --arch ENCODING. HINT: `hwnas spaces` lists both")
    if args.preset is not None:
        preset_space, encoding = get_preset(args.preset)
        space_name, settings, text = preset_space.name, dict(preset_space.settings), preset_space.to_string(encoding)
    else:
        if args.arch is None:
            example = get_space(args.space)
            raise ConfigError(f"--space {args.space} needs --arch ENCODING. "
                              f"HINT: e.g. --arch {example.to_string(example.default_encoding())}")
        space_name, settings, text = args.space, {}, args.arch
    accepted = setting_names(space_name)
    task = getattr(args, "task", None)
    if task is not None and "task" not in accepted:
        if task == "detection":
            with_head = [n for n in SPACES.names() if "task" in setting_names(n)]
            raise ConfigError(f"--task detection: space {space_name} has no SSDLite detection head (no C4/C5 "
                              f"endpoints). HINT: spaces with one: {', '.join(with_head)}; or use --task classification")
        task = None  # every other space is a classifier already
    for key, value in (("input_size", args.input_size), ("num_classes", args.num_classes), ("task", task)):
        if value is not None:
            if key not in accepted:
                raise ConfigError(f"--{key.replace('_', '-')}: space {space_name} does not take this setting")
            settings[key] = value
    space = get_space(space_name, **settings)
    return space, space.parse(text)


def setting_names(space_name: str) -> list[str]:
    """The settings a registered space takes (an unknown name lists the known spaces)."""
    return [s.name for s in SPACES.get(space_name).SETTINGS]


def describe_architecture(space: SearchSpace, encoding: tuple[int, ...]) -> dict[str, Any]:
    counts = space.count(encoding)
    return {
        "space": space.name, "task": space.settings.get("task", "classification"),
        "input_size": space.settings.get("input_size"), "settings": space.settings,
        "encoding": space.to_string(encoding),
        "candidate_id": space.candidate_id(encoding), "params": int(counts["params"]), "madds": int(counts["madds"]),
        "layers": [{"layer": d.name, "choice": int(c), "label": d.choices[int(c)]} for d, c in zip(space.dims, encoding)],
    }


def _cmd_spaces(args: argparse.Namespace) -> int:
    listing = space_listing()
    print(json.dumps(listing, indent=1) if args.json else _format_listing(listing))
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    info = describe_architecture(*resolve_architecture(args))
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        print(f"{info['space']} ({info['task']}, {info['input_size']}px)  {info['encoding']}  id {info['candidate_id']}")
        print(f"params {info['params']:,}  MAdds {info['madds']:,}")
        for layer in info["layers"]:
            print(f"  {layer['layer']}: {layer['label']}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    import torch

    from spaces import export_onnx, onnx_parity

    out = check_out_file("--out", args.out, example="model.onnx")
    space, encoding = resolve_architecture(args)
    torch.set_num_threads(1)
    from trainers.detection import deployable

    # A detector is exported with its box decoding: boxes in input pixels and per-class scores.
    model = deployable(space, space.build(encoding).eval())
    shape = space.input_shape
    out.parent.mkdir(parents=True, exist_ok=True)
    data = export_onnx(model, shape, out)
    parity = onnx_parity(model, data, shape, seed=0)
    print(json.dumps({"out": str(out), "bytes": len(data), "candidate_id": space.candidate_id(encoding),
                      "onnxruntime_max_rel_diff": parity}))
    return 0


def _arch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", metavar="NAME", help="a published architecture (see `hwnas spaces`)")
    p.add_argument("--space", metavar="NAME", help="a registered search space")
    p.add_argument("--arch", metavar="ENCODING", help="choice indices joined by '-', e.g. 8-10-6-7-1-7-6-10-5-10-6-6-9-9")
    p.add_argument("--input-size", type=int, metavar="N", help="input resolution (default: the space's or preset's)")
    p.add_argument("--num-classes", type=int, metavar="K", help="classifier classes (default: the space's or preset's)")
    p.add_argument("--task", choices=("classification", "detection"), default=None,
                   help="classification head or SSDLite detector on the C4/C5 endpoints (default: the space's or "
                        "preset's)")


def add_arch_commands(sub: Any) -> dict[str, Any]:
    """Register the subcommands on the main parser; returns {command: handler}."""
    p = sub.add_parser("spaces", help="list the search spaces, their dimensions and presets")
    p.add_argument("--json", action="store_true", help="print JSON")
    arch = sub.add_parser("arch", help="describe or export one architecture")
    arch_sub = arch.add_subparsers(dest="arch_command", metavar="ACTION", required=True)
    d = arch_sub.add_parser("describe", help="params, MAdds, candidate id and per-layer choices")
    _arch_arguments(d)
    d.add_argument("--json", action="store_true", help="print JSON")
    e = arch_sub.add_parser("export", help="export to ONNX (opset 17) and check it with ONNX Runtime")
    _arch_arguments(e)
    e.add_argument("--out", required=True, metavar="FILE.onnx")
    return {"spaces": _cmd_spaces, "arch": lambda a: {"describe": _cmd_describe, "export": _cmd_export}[a.arch_command](a)}
