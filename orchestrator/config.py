"""The experiment config: YAML in, frozen typed objects out, every rule checked before anything runs.

An invalid config raises :class:`ConfigError` with one message naming the field (dotted path), the
rule, the value and the fix. ``--set a.b=c`` overrides are applied to the raw mapping first and then
validated with the file, so they obey exactly the same rules.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from spaces import SPACES, ConfigError, HwnasError, get_space
from spaces.base import SearchSpace

__all__ = [
    "ExperimentConfig", "SpaceConfig", "DataConfig", "SupernetConfig", "EvaluationConfig",
    "SearchConfig", "Objective", "Constraint", "CostConfig", "load_config", "config_from_dict",
    "apply_overrides", "METRICS",
]

# The metrics a candidate run carries; objectives and constraints may name any of them.
METRICS = ("accuracy", "latency_ms", "params", "madds")
COST_KINDS = ("measured", "linear", "lut", "madds")
MODEL_KINDS = ("linear", "lut")  # the cost kinds that predict with a fitted cost model
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _fail(path: str, rule: str, value: Any, hint: str) -> ConfigError:
    return ConfigError(f"config field '{path}': {rule}, got {value!r}. HINT: {hint}")


@dataclass(frozen=True)
class SpaceConfig:
    name: str = "moga"
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataConfig:
    kind: str = "synthetic"
    num_classes: int = 10
    image_size: int = 32
    train_size: int = 4096
    val_size: int = 1024
    noise: float = 0.45

    def generator_settings(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("num_classes", "image_size", "train_size", "val_size", "noise")}


@dataclass(frozen=True)
class SupernetConfig:
    steps: int = 600
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    checkpoint_every: int = 100
    threads: int = 1
    sampling: str = "uniform"


@dataclass(frozen=True)
class EvaluationConfig:
    bn_batches: int = 4
    bn_batch_size: int = 128
    batch_size: int = 512


@dataclass(frozen=True)
class Objective:
    metric: str
    mode: str
    weight: float


@dataclass(frozen=True)
class Constraint:
    metric: str
    op: str
    value: float


@dataclass(frozen=True)
class SearchConfig:
    searcher: str = "weighted-nsga2"
    settings: dict[str, Any] = field(default_factory=lambda: {"population_size": 12, "generations": 4})
    objectives: tuple[Objective, ...] = (
        Objective("accuracy", "max", 0.4), Objective("latency_ms", "min", 0.4), Objective("params", "max", 0.2),
    )
    constraints: tuple[Constraint, ...] = ()
    max_concurrent: int = 1
    top_k: int = 5


@dataclass(frozen=True)
class CostConfig:
    """How a candidate's latency is obtained.

    ``measured``: through the latency service on ``device``. ``linear`` / ``lut``: predicted by a cost
    model, either the file ``model`` (from ``hwnas costmodel fit``; stored as an absolute path) or one
    the experiment's calibration stage fits from ``calibration_samples`` measured architectures.
    ``madds``: a deterministic proxy. warmup .. cv_threshold set the measurement effort.
    """

    kind: str = "measured"
    device: str = "cpu"
    model: str = ""
    calibration_samples: int = 0
    warmup: int = 10
    min_runs: int = 30
    max_runs: int = 300
    cv_threshold: float = 0.05

    @property
    def uses_model(self) -> bool:
        """Whether latency is predicted by a cost model (``linear`` or ``lut``)."""
        return self.kind in MODEL_KINDS

    @property
    def measures(self) -> bool:
        """Whether the experiment needs the latency device (to measure, or to calibrate a model)."""
        return self.kind == "measured" or (self.uses_model and not self.model)


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    seed: int = 0
    space: SpaceConfig = SpaceConfig()
    data: DataConfig = DataConfig()
    supernet: SupernetConfig = SupernetConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    search: SearchConfig = SearchConfig()
    cost: CostConfig = CostConfig()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def space_settings(self) -> dict[str, Any]:
        """The space settings with input size and classes taken from the data."""
        return {**self.space.settings, "input_size": self.data.image_size, "num_classes": self.data.num_classes}

    def build_space(self) -> SearchSpace:
        return get_space(self.space.name, **self.space_settings())

    @property
    def total_candidates(self) -> int:
        s = self.search.settings
        if self.search.searcher in ("random", "reinforce"):
            return int(s["num_samples"])
        return int(s["population_size"]) * int(s["generations"])


# ---------------------------------------------------------------------- generic field checking
def _check_type(path: str, value: Any, annotation: str) -> Any:
    if annotation == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(path, "must be an integer", value, "write a whole number such as 4")
        return value
    if annotation == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(path, "must be a number", value, "write a number such as 0.1")
        return float(value)
    if annotation == "str":
        if not isinstance(value, str):
            raise _fail(path, "must be a string", value, "quote the value")
        return value
    if annotation.startswith("dict"):
        if not isinstance(value, Mapping):
            raise _fail(path, "must be a mapping", value, "write 'key: value' pairs under it")
        return dict(value)
    return value


def _check_keys(path: str, raw: Any, cls: type) -> dict[str, Any]:
    where = path or "the config"
    if not isinstance(raw, Mapping):
        raise _fail(path or "<root>", "must be a mapping of fields", raw, f"see examples/quickstart.yaml for {where}")
    known = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in known:
            raise ConfigError(
                f"config field '{_join(path, str(key))}': unknown key. HINT: valid keys of {where} are: "
                f"{', '.join(known)}."
            )
    return dict(raw)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _build_flat(cls: type, raw: Any, path: str) -> Any:
    """Build a dataclass whose fields are scalars or dicts, checking keys and types."""
    values = _check_keys(path, raw, cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            kwargs[f.name] = _check_type(_join(path, f.name), values[f.name], str(f.type))
    return cls(**kwargs)


def _positive(path: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        rule = "must be >= 0" if allow_zero else "must be > 0"
        raise _fail(path, rule, value, "use a positive budget")


def _choice(path: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise _fail(path, f"must be one of {', '.join(allowed)}", value, f"pick one of: {', '.join(allowed)}")


# ---------------------------------------------------------------------- sections
def _space(raw: Any, data: DataConfig) -> SpaceConfig:
    cfg = _build_flat(SpaceConfig, raw, "space")
    if cfg.name not in SPACES:
        raise _fail("space.name", "unknown search space", cfg.name, f"known spaces: {', '.join(SPACES.names())}")
    for key, data_key in (("input_size", "image_size"), ("num_classes", "num_classes")):
        if key in cfg.settings and cfg.settings[key] != getattr(data, data_key):
            raise _fail(
                f"space.settings.{key}", f"must equal data.{data_key} ({getattr(data, data_key)})",
                cfg.settings[key], f"remove space.settings.{key}: it is taken from data.{data_key}",
            )
    return cfg


def _data(raw: Any) -> DataConfig:
    cfg = _build_flat(DataConfig, raw, "data")
    _choice("data.kind", cfg.kind, ("synthetic",))
    if cfg.num_classes < 2:
        raise _fail("data.num_classes", "must be >= 2", cfg.num_classes, "use at least 2 classes")
    if cfg.image_size < 16:
        raise _fail("data.image_size", "must be >= 16", cfg.image_size, "use 16 or more pixels")
    for name in ("train_size", "val_size"):
        _positive(f"data.{name}", getattr(cfg, name))
    _positive("data.noise", cfg.noise, allow_zero=True)
    return cfg


def _supernet(raw: Any, data: DataConfig) -> SupernetConfig:
    cfg = _build_flat(SupernetConfig, raw, "supernet")
    for name in ("steps", "batch_size", "lr", "checkpoint_every", "threads"):
        _positive(f"supernet.{name}", getattr(cfg, name))
    for name in ("momentum", "weight_decay", "label_smoothing"):
        _positive(f"supernet.{name}", getattr(cfg, name), allow_zero=True)
    _choice("supernet.sampling", cfg.sampling, ("uniform", "fair"))
    if cfg.batch_size > data.train_size:
        raise _fail("supernet.batch_size", f"must be <= data.train_size ({data.train_size})", cfg.batch_size,
                    "lower the batch size or generate more training data")
    if not 0 <= cfg.momentum < 1 or not 0 <= cfg.label_smoothing < 1:
        raise _fail("supernet.momentum", "momentum and label_smoothing must be in [0, 1)",
                    (cfg.momentum, cfg.label_smoothing), "use e.g. momentum 0.9, label_smoothing 0.1")
    return cfg


def _evaluation(raw: Any, data: DataConfig) -> EvaluationConfig:
    cfg = _build_flat(EvaluationConfig, raw, "evaluation")
    for name in ("bn_batches", "bn_batch_size", "batch_size"):
        _positive(f"evaluation.{name}", getattr(cfg, name))
    if cfg.bn_batches * cfg.bn_batch_size > data.train_size:
        raise _fail("evaluation.bn_batches", f"bn_batches x bn_batch_size must be <= data.train_size "
                    f"({data.train_size})", cfg.bn_batches * cfg.bn_batch_size, "use fewer or smaller batches")
    return cfg


def _cost(raw: Any) -> CostConfig:
    from cluster import device_names  # late import: cluster pulls in Ray

    cfg = _build_flat(CostConfig, raw, "cost")
    _choice("cost.kind", cfg.kind, COST_KINDS)
    _choice("cost.device", cfg.device, device_names())
    _cost_model_fields(cfg)
    for name in ("min_runs", "max_runs", "cv_threshold"):
        _positive(f"cost.{name}", getattr(cfg, name))
    _positive("cost.warmup", cfg.warmup, allow_zero=True)
    if cfg.max_runs < cfg.min_runs:
        raise _fail("cost.max_runs", f"must be >= cost.min_runs ({cfg.min_runs})", cfg.max_runs, "raise max_runs")
    return cfg


def _cost_model_fields(cfg: CostConfig) -> None:
    from cluster.calibration import MIN_SAMPLES

    if not cfg.uses_model:
        for name, unset in (("model", ""), ("calibration_samples", 0)):
            if getattr(cfg, name) != unset:
                raise _fail(f"cost.{name}", f"applies only to cost.kind {' or '.join(MODEL_KINDS)}",
                            getattr(cfg, name), f"remove it, or set cost.kind to {' or '.join(MODEL_KINDS)}")
        return
    if cfg.model and cfg.calibration_samples:
        raise _fail("cost.model", "cannot be combined with cost.calibration_samples", cfg.model,
                    "use the fitted file (keep cost.model) or fit one in the experiment (keep calibration_samples)")
    if not cfg.model and not cfg.calibration_samples:
        raise _fail("cost.kind", f"{cfg.kind} needs cost.model (a file from `hwnas costmodel fit`) or "
                    f"cost.calibration_samples", cfg.kind,
                    "add e.g. 'calibration_samples: 40' under cost, or 'model: costmodel.json'")
    if not cfg.model and cfg.calibration_samples < MIN_SAMPLES:
        raise _fail("cost.calibration_samples", f"must be >= {MIN_SAMPLES} (a quarter, at least 2, is held out to "
                    f"report fidelity)", cfg.calibration_samples, "use e.g. 40")


def _check_cost_model_file(cfg: "ExperimentConfig") -> "ExperimentConfig":
    """The named model exists, is of cost.kind and fits the experiment's space; path made absolute."""
    from cluster.calibration import load_cost_model

    path = Path(cfg.cost.model).expanduser().resolve()
    load_cost_model(path, kind=cfg.cost.kind, space=cfg.build_space(), what="config field 'cost.model'")
    return dataclasses.replace(cfg, cost=dataclasses.replace(cfg.cost, model=str(path)))


def _objectives(raw: Any) -> tuple[Objective, ...]:
    if not isinstance(raw, list) or not raw:
        raise _fail("search.objectives", "must be a non-empty list", raw,
                    "e.g. [{metric: accuracy, mode: max, weight: 0.5}, {metric: latency_ms, mode: min, weight: 0.5}]")
    out = []
    for i, item in enumerate(raw):
        obj = _build_flat(Objective, item, f"search.objectives[{i}]")
        _choice(f"search.objectives[{i}].metric", obj.metric, METRICS)
        _choice(f"search.objectives[{i}].mode", obj.mode, ("max", "min"))
        _positive(f"search.objectives[{i}].weight", obj.weight, allow_zero=True)
        out.append(obj)
    names = [o.metric for o in out]
    if len(set(names)) != len(names):
        raise _fail("search.objectives", "each metric may appear once", names, "remove the duplicate objective")
    total = sum(o.weight for o in out)
    if abs(total - 1.0) > 1e-6:
        raise _fail("search.objectives", "weights must sum to 1", [o.weight for o in out],
                    "rescale the weights, e.g. 0.4 / 0.4 / 0.2")
    return tuple(out)


def _constraints(raw: Any) -> tuple[Constraint, ...]:
    if not isinstance(raw, list):
        raise _fail("search.constraints", "must be a list", raw, "e.g. [{metric: latency_ms, op: '<=', value: 2.0}]")
    out = []
    for i, item in enumerate(raw):
        c = _build_flat(Constraint, item, f"search.constraints[{i}]")
        _choice(f"search.constraints[{i}].metric", c.metric, METRICS)
        _choice(f"search.constraints[{i}].op", c.op, ("<=", ">="))
        out.append(c)
    return tuple(out)


def _search(raw: Any, seed: int) -> SearchConfig:
    values = _check_keys("search", raw, SearchConfig)
    defaults = SearchConfig()
    objectives = _objectives(values.pop("objectives")) if "objectives" in values else defaults.objectives
    constraints = _constraints(values.pop("constraints")) if "constraints" in values else ()
    flat = _build_flat(SearchConfig, values, "search")
    cfg = dataclasses.replace(flat, objectives=objectives, constraints=constraints)
    if "settings" not in values and cfg.searcher == "random":
        cfg = dataclasses.replace(cfg, settings={"num_samples": 48})
    _positive("search.max_concurrent", cfg.max_concurrent)
    _positive("search.top_k", cfg.top_k)
    _check_searcher(cfg, seed)
    return cfg


def _check_searcher(cfg: SearchConfig, seed: int) -> None:
    """Build the searcher once on a dummy space: its own eager validation covers its settings."""
    from .search import make_searcher  # late import: searchers pull in Ray

    try:
        make_searcher(cfg, param_space={"x": [0, 1]}, seed=seed)
    except ConfigError as exc:
        raise ConfigError(f"config field 'search.settings' (searcher {cfg.searcher!r}): {exc}") from None
    except HwnasError as exc:
        raise _fail("search.searcher", "unknown searcher", cfg.searcher, str(exc)) from None


# ---------------------------------------------------------------------- entry points
def config_from_dict(raw: Any, *, check_files: bool = True) -> ExperimentConfig:
    """Validate a raw mapping (parsed YAML plus overrides) into an :class:`ExperimentConfig`.

    Args:
        raw: The mapping.
        check_files: Also check the files the config names (``cost.model``, relative to the working
            directory) and store their absolute paths. Off when reopening an experiment, which uses
            its own copy of the model.
    """
    values = _check_keys("", raw, ExperimentConfig)
    if "name" not in values:
        raise _fail("name", "is required", None, "add e.g. 'name: my-search' at the top of the file")
    name = _check_type("name", values["name"], "str")
    if not _NAME_RE.match(name):
        raise _fail("name", "must be 1-64 letters, digits, '_', '-' or '.' starting with a letter or digit",
                    name, "it names the experiment directory; e.g. 'quickstart'")
    seed = _check_type("seed", values.get("seed", 0), "int")
    data = _data(values.get("data", {}))
    cfg = ExperimentConfig(
        name=name, seed=seed, data=data,
        space=_space(values.get("space", {}), data),
        supernet=_supernet(values.get("supernet", {}), data),
        evaluation=_evaluation(values.get("evaluation", {}), data),
        search=_search(values.get("search", {}), seed),
        cost=_cost(values.get("cost", {})),
    )
    try:
        space = cfg.build_space()
    except HwnasError as exc:
        raise ConfigError(f"config field 'space.settings': {exc}") from None
    if space.settings.get("task", "classification") != "classification":
        # The pipeline trains and scores classifiers; a detector's (boxes, logits) would fail mid-run.
        raise _fail("space.settings.task", "must be classification: hwnas search trains classification "
                    "supernets", space.settings["task"], "set space.settings.task: classification (detectors "
                    "can be described, exported and measured with `hwnas arch` and `hwnas latency`)")
    if check_files and cfg.cost.uses_model and cfg.cost.model:
        cfg = _check_cost_model_file(cfg)
    return cfg


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` overrides (dotted paths, YAML values) to a raw config mapping."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE. HINT: e.g. --set search.settings.generations=3")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part) if isinstance(node, dict) else None
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: '{part}' is not a section. HINT: set the field itself")
            node = child
        node[parts[-1]] = value
    return raw


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read, override and validate a YAML experiment config."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist. HINT: try examples/quickstart.yaml")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}. HINT: check the indentation") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of fields. HINT: see examples/quickstart.yaml")
    return config_from_dict(apply_overrides(raw, overrides))


def config_from_json(data: Mapping[str, Any]) -> ExperimentConfig:
    """Rebuild a config saved by :meth:`ExperimentConfig.to_dict` (objectives come back as dicts)."""
    raw = {k: v for k, v in data.items()}
    raw["search"] = {**raw["search"], "objectives": list(raw["search"]["objectives"]),
                     "constraints": list(raw["search"]["constraints"])}
    return config_from_dict(raw, check_files=False)
