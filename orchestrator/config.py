"""The experiment config: YAML in, frozen typed objects out, every rule checked before anything runs.

An invalid config raises :class:`ConfigError` with one message naming the field (dotted path), the
rule, the value and the fix (:mod:`core.validation`). ``--set a.b=c`` overrides are applied to the raw
mapping first and then validated with the file, so they obey exactly the same rules.

The plugins own their sections: a dataset kind validates ``data``, a space ``space.settings`` and a
searcher ``search.settings`` (through their ``check_settings``), so a newly registered plugin needs no
edit here. The validated config holds every setting with its default filled in, and that is what an
experiment directory stores: a later change of a default never changes an existing experiment.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from cluster.measure import MeasureOptions
from core.errors import ConfigError, HwnasError
from core.validation import check_choice, check_int, check_number, invalid
from searchers import SEARCHERS, Constraint, Objective
from spaces import SPACES, SearchSpace, get_space
from trainers import DATASETS, TASKS, Task
from trainers.compute import COMPUTE_SETTINGS, Compute

from .metrics import metric_names

__all__ = [
    "ExperimentConfig", "SpaceConfig", "DataConfig", "SupernetConfig", "EvaluationConfig",
    "SearchConfig", "Objective", "Constraint", "CostConfig", "load_config", "config_from_dict",
    "config_from_json", "apply_overrides",
]

COST_KINDS = ("measured", "kernels", "linear", "lut", "madds")
MODEL_KINDS = ("kernels", "linear", "lut")  # the cost kinds that predict with a fitted cost model
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _field(path: str) -> str:
    return f"config field '{path}'"


def _fail(path: str, rule: str, value: Any, hint: str) -> ConfigError:
    return invalid(_field(path), rule, value, hint)  # type: ignore[return-value]


def _where(prefix: str):  # how a plugin's check names one of its settings
    return lambda name: _field(f"{prefix}.{name}")


@dataclass(frozen=True)
class SpaceConfig:
    """The search space and its settings (complete: data-fixed settings and defaults filled in)."""

    name: str = "moga"
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataConfig:
    """The dataset kind and its settings; written flat in YAML (``data: {kind: synthetic, noise: 0.4}``)."""

    kind: str = "synthetic"
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        """The task the data serves (classification for the synthetic and image-folder kinds)."""
        return DATASETS.get(self.kind).task

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.settings}


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
    optimizer: str = "sgd"
    sandwich: str = "off"
    distill: bool = False
    largest_warmup_steps: int = 0
    kernel_weights: str = "shared"


@dataclass(frozen=True)
class EvaluationConfig:
    bn_batches: int = 4
    bn_batch_size: int = 128
    batch_size: int = 512


SEARCH_MODES = ("trials", "joint")


@dataclass(frozen=True)
class SearchConfig:
    searcher: str = "weighted-nsga2"
    settings: dict[str, Any] = field(default_factory=dict)
    objectives: tuple[Objective, ...] = (
        Objective("accuracy", "max", 0.4), Objective("latency_ms", "min", 0.4), Objective("params", "max", 0.2),
    )
    constraints: tuple[Constraint, ...] = ()
    max_concurrent: int = 1
    top_k: int = 5
    #: "trials": the searcher proposes candidates scored with the trained supernet. "joint" (TuNAS, searcher
    #: reinforce): the controller learns while the supernet trains; its best architectures are scored after.
    mode: str = "trials"

    @property
    def budget(self) -> int:
        """How many candidates the search evaluates (the searcher says, from its settings)."""
        if self.mode == "joint":
            return self.settings["candidates"]
        return SEARCHERS.get(self.searcher).budget(self.settings)


@dataclass(frozen=True)
class CostConfig:
    """How a candidate's latency is obtained.

    ``measured``: through the latency service on ``device``. ``kernels`` / ``linear`` / ``lut``: predicted by a cost
    model, either the file ``model`` (from ``hwnas costmodel fit``; stored as an absolute path) or one
    the experiment's calibration stage fits from ``calibration_samples`` measured architectures.
    ``madds``: a deterministic proxy. warmup .. cv_threshold set the measurement effort (defaults:
    :class:`cluster.measure.MeasureOptions`'s).
    """

    kind: str = "measured"
    device: str = "cpu"
    model: str = ""
    #: How many architectures the calibration stage measures, or ``"auto"``: until held-out fidelity stops
    #: improving (``hwnas costmodel fit --samples auto``).
    calibration_samples: int | str = 0
    warmup: int = MeasureOptions.warmup
    min_runs: int = MeasureOptions.min_runs
    max_runs: int = MeasureOptions.max_runs
    cv_threshold: float = MeasureOptions.cv_threshold
    #: Seconds a measurement waits for the device to come back when its node is gone; 0: stop the search at
    #: once (resumable) with an error that says so.
    device_wait_s: float = 0.0

    @property
    def uses_model(self) -> bool:
        """Whether latency is predicted by a cost model (``kernels``, ``linear`` or ``lut``)."""
        return self.kind in MODEL_KINDS

    @property
    def measures(self) -> bool:
        """Whether the experiment needs the latency device (to measure, or to calibrate a model)."""
        return self.kind == "measured" or (self.uses_model and not self.model)

    def measure_options(self) -> MeasureOptions:
        return MeasureOptions(warmup=self.warmup, min_runs=self.min_runs, max_runs=self.max_runs,
                              cv_threshold=self.cv_threshold)


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
    #: The detection task's settings (see :class:`trainers.detect.DetectionTask`); empty for classifiers.
    detection: dict[str, Any] = field(default_factory=dict)
    #: The retrain stage's settings (see :data:`trainers.retrain.RETRAIN_SETTINGS`); ``None``: no retrain stage.
    retrain: dict[str, Any] | None = None
    #: Where supernet training, BN recalibration, scoring and retraining compute (:mod:`trainers.compute`).
    compute: Compute = Compute()

    def to_dict(self) -> dict[str, Any]:
        """The config as the YAML a user could have written (what ``experiment.json`` stores)."""
        out = dataclasses.asdict(self)
        out["data"] = self.data.to_dict()
        return out

    def space_settings(self) -> dict[str, Any]:
        return dict(self.space.settings)

    def build_space(self) -> SearchSpace:
        return get_space(self.space.name, **self.space.settings)

    @property
    def quality_metric(self) -> str:
        """The score progress lines and result tables show: the first objective that is one of the task's
        metrics (e.g. ``map_50``), else the task's headline (``accuracy``, or ``map`` for detectors)."""
        metrics = TASKS.get(self.data.task).METRICS
        return next((o.metric for o in self.search.objectives if o.metric in metrics), metrics[0])

    @property
    def total_candidates(self) -> int:
        return self.search.budget


# ---------------------------------------------------------------------- generic field checking
# Every number's range, checked before anything runs: a value past a limit would train "forever" or
# exhaust memory long after start-up. (low, high, high_open); the limits are far beyond real use.
_LIMITS: dict[str, tuple[float, float, bool]] = {
    "seed": (0, 2**32 - 1, False),
    "supernet.steps": (1, 10_000_000, False),
    "supernet.batch_size": (1, 65_536, False),
    "supernet.checkpoint_every": (1, 10_000_000, False),
    "supernet.largest_warmup_steps": (0, 10_000_000, False),
    "supernet.threads": (1, 1024, False),
    "supernet.lr": (1e-9, 10.0, False),
    "supernet.momentum": (0.0, 1.0, True),
    "supernet.weight_decay": (0.0, 1.0, False),
    "supernet.label_smoothing": (0.0, 1.0, True),
    "evaluation.bn_batches": (1, 10_000, False),
    "evaluation.bn_batch_size": (1, 65_536, False),
    "evaluation.batch_size": (1, 65_536, False),
    "search.max_concurrent": (1, 1024, False),
    "search.top_k": (1, 10_000, False),
}
#: The most candidates one search may ask for.
MAX_CANDIDATES = 1_000_000


def _check_int_field(path: str, value: Any) -> int:
    low, high, _ = _LIMITS.get(path, (None, None, False))
    return check_int(_field(path), value, minimum=low, maximum=high, hint="write a whole number such as 4")


def _check_float_field(path: str, value: Any) -> float:
    low, high, high_open = _LIMITS.get(path, (None, None, False))
    hint = "write a finite number such as 0.1"
    return check_number(_field(path), value, low=low, high=high, high_open=high_open, hint=hint)


def _check_bool_field(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, "must be true or false", value, "write true or false")
    return value


_TYPE_CHECKS = {"int": _check_int_field, "float": _check_float_field, "bool": _check_bool_field}


def _check_type(path: str, value: Any, annotation: str) -> Any:
    if annotation in _TYPE_CHECKS:
        return _TYPE_CHECKS[annotation](path, value)
    if annotation == "str" and not isinstance(value, str):
        raise _fail(path, "must be a string", value, "quote the value")
    if annotation.startswith("dict") and not isinstance(value, Mapping):
        raise _fail(path, "must be a mapping", value, "write 'key: value' pairs under it")
    return dict(value) if annotation.startswith("dict") else value


def _check_keys(path: str, raw: Any, cls: type) -> dict[str, Any]:
    where = path or "the config"
    if not isinstance(raw, Mapping):
        raise _fail(path or "<root>", "must be a mapping of fields", raw, f"see examples/quickstart.yaml for {where}")
    known = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in known:
            raise ConfigError(f"{_field(_join(path, str(key)))}: unknown key. HINT: valid keys of {where} are: "
                              f"{', '.join(known)}.")
    return dict(raw)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _build_flat(cls: type, raw: Any, path: str) -> Any:
    """Build a dataclass whose fields are scalars or dicts, checking keys and types."""
    values = _check_keys(path, raw, cls)
    kwargs = {f.name: _check_type(_join(path, f.name), values[f.name], str(f.type))
              for f in dataclasses.fields(cls) if f.name in values}
    return cls(**kwargs)


def _positive(path: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise _fail(path, "must be >= 0" if allow_zero else "must be > 0", value, "use a positive budget")


def _choice(path: str, value: Any, allowed: Sequence[str]) -> None:
    check_choice(_field(path), value, allowed)


def _registered(path: str, value: Any, registry: Any, what: str) -> None:
    """``value`` names a registered plugin; the message lists the registered names."""
    if not isinstance(value, str) or value not in registry:
        names = ", ".join(registry.names())
        raise _fail(path, f"unknown {what}; known: {names}", value, f"pick one of: {names}")


# ---------------------------------------------------------------------- sections
def _data(raw: Any, base_dir: Path) -> DataConfig:
    if not isinstance(raw, Mapping):
        raise _fail("data", "must be a mapping of fields", raw, "e.g. data: {kind: synthetic, num_classes: 10}")
    values = dict(raw)
    kind = values.pop("kind", DataConfig.kind)
    _registered("data.kind", kind, DATASETS, "dataset kind")
    values = DATASETS.get(kind).resolve_paths(values, base_dir)  # relative to the config file, stored absolute
    return DataConfig(kind=kind, settings=DATASETS.get(kind).check_settings(values, where=_where("data")))


def _space(raw: Any, data: DataConfig) -> SpaceConfig:
    cfg = _build_flat(SpaceConfig, raw, "space")
    _registered("space.name", cfg.name, SPACES, "search space")
    cls = SPACES.get(cfg.name)
    fixed = DATASETS.get(data.kind).space_settings(data.settings)
    if any(s.name == "task" for s in cls.SETTINGS):  # a space with heads for several tasks: the data decides
        fixed["task"] = data.task
    for key, value in fixed.items():
        if key in cfg.settings and cfg.settings[key] != value:
            raise _fail(f"space.settings.{key}", f"must be {value!r}, which data.kind {data.kind} fixes",
                        cfg.settings[key], f"remove space.settings.{key}: it is taken from the data")
    settings = cls.check_settings({**cfg.settings, **fixed}, where=_where("space.settings"))
    return SpaceConfig(name=cfg.name, settings={k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()})


def _supernet(raw: Any, data: DataConfig) -> SupernetConfig:
    if isinstance(raw, Mapping) and raw.get("sandwich") is False:  # YAML reads a bare `off` as false
        raw = {**raw, "sandwich": "off"}
    cfg = _build_flat(SupernetConfig, raw, "supernet")
    _choice("supernet.sampling", cfg.sampling, ("uniform", "fair"))
    _choice("supernet.optimizer", cfg.optimizer, ("sgd", "adam"))
    _choice("supernet.sandwich", cfg.sandwich, ("off", "max", "max-min"))
    _choice("supernet.kernel_weights", cfg.kernel_weights, ("shared", "per_kernel"))
    if cfg.largest_warmup_steps >= cfg.steps:
        raise _fail("supernet.largest_warmup_steps", f"must be < supernet.steps ({cfg.steps})", cfg.largest_warmup_steps,
                    "the warm-up trains the largest path alone; leave steps for the others, e.g. a tenth of them")
    if cfg.distill and cfg.sandwich == "off":
        raise _fail("supernet.distill", "needs supernet.sandwich max or max-min (the largest path is the teacher "
                    "and only the sandwich trains it on the labels)", cfg.distill, "set supernet.sandwich: max")
    task = TASKS.get(data.task)
    if cfg.distill and task.distill_loss is Task.distill_loss:
        raise _fail("supernet.distill", f"task {data.task} has no distillation loss", cfg.distill,
                    "set supernet.distill: false")
    train_size = data.settings.get("train_size")
    if train_size is not None and cfg.batch_size > train_size:
        raise _fail("supernet.batch_size", f"must be <= data.train_size ({train_size})", cfg.batch_size,
                    "lower the batch size or generate more training data")
    return cfg


def _evaluation(raw: Any, data: DataConfig) -> EvaluationConfig:
    cfg = _build_flat(EvaluationConfig, raw, "evaluation")
    train_size = data.settings.get("train_size")
    if train_size is not None and cfg.bn_batches * cfg.bn_batch_size > train_size:
        raise _fail("evaluation.bn_batches", f"bn_batches x bn_batch_size must be <= data.train_size ({train_size})",
                    cfg.bn_batches * cfg.bn_batch_size, "use fewer or smaller batches")
    return cfg


def _cost(raw: Any) -> CostConfig:
    from cluster import device_names  # late import: cluster pulls in Ray

    cfg = _build_flat(CostConfig, raw, "cost")
    if cfg.calibration_samples != "auto":  # a number, or the word that lets held-out fidelity choose it
        value = cfg.calibration_samples
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100_000:
            raise _fail("cost.calibration_samples", "must be a whole number in [0, 100000] or auto", value,
                        "write e.g. 40, or auto to measure until held-out fidelity stops improving")
    _choice("cost.kind", cfg.kind, COST_KINDS)
    _choice("cost.device", cfg.device, device_names())
    _cost_model_fields(cfg)
    if not 0 <= cfg.device_wait_s <= 7 * 86400:
        raise _fail("cost.device_wait_s", "must be in [0, 604800] seconds", cfg.device_wait_s,
                    "use 0 to stop at once when the device's node is gone, or e.g. 600 to wait ten minutes")
    try:
        cfg.measure_options()
    except ConfigError as exc:
        raise ConfigError(f"config section 'cost': {exc}") from None
    return cfg


def _cost_model_fields(cfg: CostConfig) -> None:
    from cluster.calibration import MIN_SAMPLES

    if not cfg.uses_model:
        for name, unset in (("model", ""), ("calibration_samples", 0)):
            if getattr(cfg, name) != unset:
                raise _fail(f"cost.{name}", f"applies only to cost.kind {', '.join(MODEL_KINDS[:-1])} or {MODEL_KINDS[-1]}",
                            getattr(cfg, name), f"remove it, or set cost.kind to {' or '.join(MODEL_KINDS)}")
        return
    if cfg.model and cfg.calibration_samples:
        raise _fail("cost.model", "cannot be combined with cost.calibration_samples", cfg.model,
                    "use the fitted file (keep cost.model) or fit one in the experiment (keep calibration_samples)")
    if not cfg.model and not cfg.calibration_samples:
        raise _fail("cost.kind", f"{cfg.kind} needs cost.model (a file from `hwnas costmodel fit`) or "
                    f"cost.calibration_samples", cfg.kind,
                    "add e.g. 'calibration_samples: 40' under cost, or 'model: costmodel.json'")
    if cfg.calibration_samples == "auto":
        return
    if not cfg.model and cfg.calibration_samples < MIN_SAMPLES:
        raise _fail("cost.calibration_samples", f"must be >= {MIN_SAMPLES} (a quarter, at least 2, is held out to "
                    f"report fidelity)", cfg.calibration_samples, "use e.g. 40, or auto")


def _check_cost_model_file(cfg: ExperimentConfig, base_dir: Path) -> ExperimentConfig:
    """The named model exists, is of cost.kind and fits the experiment's space; path made absolute
    (a relative one is relative to the config file)."""
    from cluster.calibration import load_cost_model

    path = (base_dir / Path(cfg.cost.model).expanduser()).resolve()
    load_cost_model(path, kind=cfg.cost.kind, space=cfg.build_space(), what="config field 'cost.model'")
    return dataclasses.replace(cfg, cost=dataclasses.replace(cfg.cost, model=str(path)))


def _objectives(raw: Any, metrics: Sequence[str]) -> tuple[Objective, ...]:
    if not isinstance(raw, list) or not raw:
        raise _fail("search.objectives", "must be a non-empty list", raw,
                    "e.g. [{metric: accuracy, mode: max, weight: 0.5}, {metric: latency_ms, mode: min, weight: 0.5}]")
    out = []
    for i, item in enumerate(raw):
        obj = _build_flat(Objective, item, f"search.objectives[{i}]")
        _choice(f"search.objectives[{i}].metric", obj.metric, metrics)
        _choice(f"search.objectives[{i}].mode", obj.mode, ("max", "min"))
        _positive(f"search.objectives[{i}].weight", obj.weight, allow_zero=True)
        out.append(obj)
    names = [o.metric for o in out]
    if len(set(names)) != len(names):
        raise _fail("search.objectives", "each metric may appear once", names, "remove the duplicate objective")
    if abs(sum(o.weight for o in out) - 1.0) > 1e-6:
        raise _fail("search.objectives", "weights must sum to 1", [o.weight for o in out],
                    "rescale the weights, e.g. 0.4 / 0.4 / 0.2")
    return tuple(out)


def _constraints(raw: Any, metrics: Sequence[str]) -> tuple[Constraint, ...]:
    if not isinstance(raw, list):
        raise _fail("search.constraints", "must be a list", raw, "e.g. [{metric: latency_ms, op: '<=', value: 2.0}]")
    out = []
    for i, item in enumerate(raw):
        c = _build_flat(Constraint, item, f"search.constraints[{i}]")
        _choice(f"search.constraints[{i}].metric", c.metric, metrics)
        _choice(f"search.constraints[{i}].op", c.op, ("<=", ">="))
        out.append(c)
    return tuple(out)


def _default_objectives(data: DataConfig) -> tuple[Objective, ...]:
    """The default objectives, with the task's headline score (accuracy, or a detector's mAP) as quality."""
    headline = TASKS.get(data.task).METRICS[0]
    return tuple(dataclasses.replace(o, metric=headline) if o.metric == "accuracy" else o
                 for o in SearchConfig.objectives)


def _detection(raw: Any, data: DataConfig) -> dict[str, Any]:
    """The detection task's settings (loss, matching, NMS), complete; only detection data takes them."""
    if data.task != "detection":
        if raw:
            raise _fail("detection", f"applies to detection data, and data.kind {data.kind} serves "
                        f"{data.task}", raw, "remove the detection section, or use data.kind: coco")
        return {}
    return TASKS.get("detection").check_settings(raw if raw is not None else {}, where=_where("detection"))


def _compute(raw: Any) -> Compute:
    """The compute section: device (auto, cpu, cuda), precision (fp32, bf16, fp16), gpus_per_trial."""
    from core.settings import resolve_settings

    if not isinstance(raw, Mapping):
        raise _fail("compute", "must be a mapping of settings", raw, "e.g. compute: {device: auto, precision: fp32}")
    settings = resolve_settings(COMPUTE_SETTINGS, raw, owner="compute", where=_where("compute"))
    try:
        return Compute(**settings)
    except ConfigError as exc:  # a rule across settings (fp16 on the CPU)
        raise ConfigError(f"{_field('compute.precision')}: {exc}") from None


def _retrain(raw: Any, data: DataConfig) -> dict[str, Any] | None:
    """The retrain section complete (its recipe's values and the defaults filled in); absent: no retrain stage."""
    from trainers.retrain import check_retrain_settings

    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise _fail("retrain", "must be a mapping of settings", raw, "e.g. retrain: {top_k: 3, epochs: 10}, or {} "
                    "for the defaults")
    settings = check_retrain_settings(raw, where=_where("retrain"))
    train_size = data.settings.get("train_size")
    if train_size is not None and settings["batch_size"] > train_size:
        raise _fail("retrain.batch_size", f"must be <= data.train_size ({train_size})", settings["batch_size"],
                    "lower the batch size or generate more training data")
    return settings


def _search(raw: Any, data: DataConfig) -> SearchConfig:
    values = _check_keys("search", raw, SearchConfig)
    metrics = metric_names(data.task)
    objectives = _objectives(values.pop("objectives"), metrics) if "objectives" in values else _default_objectives(data)
    constraints = _constraints(values.pop("constraints"), metrics) if "constraints" in values else ()
    cfg = dataclasses.replace(_build_flat(SearchConfig, values, "search"), objectives=objectives,
                              constraints=constraints)
    _registered("search.searcher", cfg.searcher, SEARCHERS, "searcher")
    _choice("search.mode", cfg.mode, SEARCH_MODES)
    if cfg.mode == "joint":
        from .joint import check_joint_settings, require_joint_searcher

        require_joint_searcher(cfg.searcher)
        return dataclasses.replace(cfg, settings=check_joint_settings(cfg.settings, where=_where("search.settings")))
    settings = SEARCHERS.get(cfg.searcher).check_settings(
        cfg.settings, where=_where("search.settings"), objectives=objectives, constraints=constraints)
    cfg = dataclasses.replace(cfg, settings=settings)
    if cfg.budget > MAX_CANDIDATES:
        raise _fail("search.settings", f"asks {cfg.searcher} for {cfg.budget:,} candidates, over the limit of "
                    f"{MAX_CANDIDATES:,}", cfg.budget, "lower the search budget")
    return cfg


# ---------------------------------------------------------------------- entry points
def config_from_dict(raw: Any, *, check_files: bool = True, base_dir: str | Path | None = None) -> ExperimentConfig:
    """Validate a raw mapping (parsed YAML plus overrides) into an :class:`ExperimentConfig`.

    Args:
        raw: The mapping.
        check_files: Also check the files the config names (``cost.model``) and store their absolute
            paths. Off when reopening an experiment, which uses its own copy of the model.
        base_dir: What relative paths (``cost.model``, a dataset's folders) are relative to: the config
            file's directory (:func:`load_config`); default the working directory.
    """
    values = _check_keys("", raw, ExperimentConfig)
    if "name" not in values:
        raise _fail("name", "is required", None, "add e.g. 'name: my-search' at the top of the file")
    name = _check_type("name", values["name"], "str")
    if not _NAME_RE.match(name):
        raise _fail("name", "must be 1-64 letters, digits, '_', '-' or '.' starting with a letter or digit",
                    name, "it names the experiment directory; e.g. 'quickstart'")
    seed = _check_type("seed", values.get("seed", 0), "int")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    data = _data(values.get("data", {}), base)
    cfg = ExperimentConfig(
        name=name, seed=seed, data=data,
        space=_space(values.get("space", {}), data),
        supernet=_supernet(values.get("supernet", {}), data),
        evaluation=_evaluation(values.get("evaluation", {}), data),
        search=_search(values.get("search", {}), data),
        cost=_cost(values.get("cost", {})),
        detection=_detection(values.get("detection"), data),
        retrain=_retrain(values.get("retrain"), data),
        compute=_compute(values.get("compute", {})),
    )
    try:
        space = cfg.build_space()  # the space's own cross-setting rules
    except HwnasError as exc:
        raise ConfigError(f"config field 'space.settings': {exc}") from None
    try:
        space.supernet_options({"kernel_weights": cfg.supernet.kernel_weights})
    except ConfigError as exc:
        raise ConfigError(f"config field 'supernet.kernel_weights': {exc}") from None
    if check_files and cfg.cost.uses_model and cfg.cost.model:
        cfg = _check_cost_model_file(cfg, base)
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
    # Relative paths in a config (data folders, cost.model) are relative to the config file, also when
    # given with --set: the config means the same wherever hwnas is started.
    return config_from_dict(apply_overrides(read_config_file(path), overrides), base_dir=Path(path).resolve().parent)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a YAML config file; any unreadable file is one :class:`ConfigError`."""
    path = Path(path)
    name = repr(str(path))
    hint = "HINT: give a YAML config file such as examples/quickstart.yaml"
    if path.is_dir():
        raise ConfigError(f"config file {name} is a directory, not a file. {hint}")
    if not path.exists():
        raise ConfigError(f"config file {name} does not exist. {hint}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {name} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                          f"{exc.start}). {hint}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {name} is not valid YAML: {_yaml_problem(exc)}. "
                          f"HINT: check the indentation and quoting there") from None
    except OSError as exc:
        raise ConfigError(f"config file {name} cannot be read: {exc.strerror}. {hint}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {name} must hold a mapping of fields, got a {type(raw).__name__}. {hint}")
    return raw


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line from PyYAML's multi-line message: the problem and where it is (1-based line, column)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def config_from_json(data: Mapping[str, Any], *, schema_version: int) -> ExperimentConfig:
    """Rebuild a config an experiment directory stored (see :meth:`ExperimentConfig.to_dict`).

    Experiments of schema version 1 stored the settings as the user wrote them: their searcher ran with
    the defaults of that time, which are restored here, so that they resume exactly as they started.
    """
    raw = {k: v for k, v in data.items()}
    search = dict(raw["search"])
    search["objectives"], search["constraints"] = list(search["objectives"]), list(search["constraints"])
    if schema_version < 2 and search.get("searcher", SearchConfig.searcher) == "weighted-nsga2":
        # Before schema 2, MoGA's operators were NSGA-II's defaults (now: uniform, no forced mutation).
        search["settings"] = {"crossover": "single-point", "force_mutation": True, **search.get("settings", {})}
    raw["search"] = search
    return config_from_dict(raw, check_files=False)
