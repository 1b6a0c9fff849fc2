"""Config validation: every bad input gets one message naming the field, the rule and the fix."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestrator.config import apply_overrides, config_from_dict, load_config
from spaces import ConfigError

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"


def _raw() -> dict:
    return yaml.safe_load(QUICKSTART.read_text())


def test_quickstart_is_valid() -> None:
    cfg = load_config(QUICKSTART)
    assert cfg.name == "quickstart"
    assert cfg.space.name == "moga"
    assert [o.metric for o in cfg.search.objectives] == ["accuracy", "latency_ms", "params"]
    assert [o.weight for o in cfg.search.objectives] == [0.4, 0.4, 0.2]
    assert cfg.total_candidates == 48
    assert cfg.space_settings()["input_size"] == 32


def test_set_overrides_are_validated_like_the_file() -> None:
    cfg = load_config(QUICKSTART, ["search.settings.generations=3", "cost.kind=madds", "name=other"])
    assert cfg.search.settings["generations"] == 3
    assert cfg.cost.kind == "madds"
    assert cfg.name == "other"
    with pytest.raises(ConfigError, match=r"'supernet.steps'.*must be an integer in \[1, 10000000\].*HINT"):
        load_config(QUICKSTART, ["supernet.steps=0"])


def test_supernet_remedies_read_as_written() -> None:
    # YAML 1.1 reads a bare `off` as false: it still means the setting's "off".
    assert load_config(QUICKSTART, ["supernet.sandwich=off", "supernet.distill=false"]).supernet.sandwich == "off"
    cfg = load_config(QUICKSTART, ["supernet.sandwich=max-min", "supernet.distill=true",
                                   "supernet.largest_warmup_steps=60", "supernet.kernel_weights=per_kernel"])
    assert (cfg.supernet.sandwich, cfg.supernet.distill, cfg.supernet.largest_warmup_steps,
            cfg.supernet.kernel_weights) == ("max-min", True, 60, "per_kernel")


def test_round_trip_through_json() -> None:
    from orchestrator.config import config_from_json

    cfg = load_config(QUICKSTART)
    assert config_from_json(cfg.to_dict(), schema_version=2) == cfg


def test_the_config_is_stored_complete() -> None:
    """Every plugin setting is resolved, defaults included: a later default change cannot alter an experiment."""
    cfg = load_config(QUICKSTART)
    stored = cfg.to_dict()
    assert stored["data"] == {"kind": "synthetic", "num_classes": 10, "image_size": 32, "train_size": 4096,
                              "val_size": 1024, "noise": 0.45}
    assert stored["space"]["settings"]["input_size"] == 32 and stored["space"]["settings"]["num_classes"] == 10
    assert stored["search"]["settings"]["crossover"] == "uniform" and stored["search"]["settings"]["force_mutation"] is False
    assert stored["search"]["settings"]["weights"] == [0.4, 0.4, 0.2]


def test_schema_1_experiments_keep_the_operators_they_started_with() -> None:
    from orchestrator.config import config_from_json

    raw = _raw()
    old = config_from_json(raw, schema_version=1)  # written before NSGA-II's defaults changed
    assert (old.search.settings["crossover"], old.search.settings["force_mutation"]) == ("single-point", True)
    assert config_from_json(raw, schema_version=2).search.settings["crossover"] == "uniform"


def test_the_data_fixes_the_task_of_a_space_with_several_heads() -> None:
    raw = _raw()
    raw["space"] = {"name": "mobiledet", "settings": {"target": "cpu", "variant": "ibn"}}
    assert config_from_dict(raw).space.settings["task"] == "classification"


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda r: r.update(bogus=1), r"'bogus': unknown key.*valid keys"),
        (lambda r: r["supernet"].update(stepz=3), r"'supernet.stepz': unknown key.*steps"),
        (lambda r: r["supernet"].update(steps="many"), r"'supernet.steps': must be an integer.*'many'"),
        (lambda r: r["supernet"].update(steps=-5), r"'supernet.steps': must be an integer in \[1, 10000000\], got -5"),
        (lambda r: r["data"].update(train_size=0), r"'data.train_size': must be an integer in \[1, 10000000\]"),
        (lambda r: r["data"].update(kind="folders"), r"'data.kind': unknown dataset kind; known: coco, imagefolder, synthetic"),
        (lambda r: r["data"].update(noise=float("nan")), r"'data.noise': must be a finite number >= 0"),
        (lambda r: r["supernet"].update(sampling="greedy"), r"'supernet.sampling': must be one of uniform, fair"),
        (lambda r: r["space"].update(name="mogaa"), r"'space.name': unknown search space.*moga"),
        (lambda r: r["space"].update(name="mobiledet", settings={"target": "cpu", "task": "detection"}),
         r"'space.settings.task': must be 'classification', which data.kind synthetic fixes, got 'detection'"),
        (lambda r: r["search"].update(searcher="nsga3"), r"'search.searcher'.*unknown.*weighted-nsga2"),
        (lambda r: r["search"]["settings"].update(population_size=1), r"search.settings.*population_size"),
        (lambda r: r["search"]["settings"].update(generations=0), r"search.settings.*generations"),
        (lambda r: r["search"]["objectives"][0].update(weight=0.9), r"'search.objectives': weights must sum to 1"),
        (lambda r: r["search"]["objectives"][0].update(metric="acc"), r"objectives\[0\].metric.*accuracy"),
        (lambda r: r["search"]["objectives"][1].update(mode="down"), r"objectives\[1\].mode.*max, min"),
        (lambda r: r["cost"].update(kind="magic"), r"'cost.kind': must be one of measured, kernels, linear, lut, madds"),
        (lambda r: r["space"]["settings"].update(width_mult=-1), r"space.settings.*width_mult"),
        (lambda r: r["space"]["settings"].update(input_size=64), r"'space.settings.input_size': must be 32, which data.kind synthetic fixes"),
        (lambda r: r.pop("name"), r"'name': is required"),
        (lambda r: r.update(name="../escape"), r"'name': must be"),
        (lambda r: r["search"].update(constraints=[{"metric": "latency_ms", "op": "<", "value": 1}]),
         r"constraints\[0\].op.*<=, >="),
    ],
)
def test_bad_configs_name_the_field(mutate, pattern) -> None:
    raw = _raw()
    mutate(raw)
    with pytest.raises(ConfigError, match=pattern) as info:
        config_from_dict(raw)
    assert "HINT" in str(info.value)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listy)


def test_override_syntax_errors() -> None:
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"name": "x"}, ["name.sub=1"])


def test_the_detection_examples_are_valid_configs(tmp_path: Path) -> None:
    examples = QUICKSTART.parent
    cfg = load_config(examples / "detection_quickstart.yaml", [f"data.synthetic.dir={tmp_path / 'synth'}"])
    assert cfg.data.task == "detection" and cfg.quality_metric == "map_50" and cfg.detection["nms_iou"] == 0.6
    assert cfg.space.settings["task"] == "detection" and cfg.space.settings["num_classes"] == 4
    assert not (tmp_path / "synth").exists()  # written when the search starts, not when the config is read
    raw = yaml.safe_load((examples / "mobiledet_coco.yaml").read_text())
    raw["data"] = {"kind": "coco", "synthetic": {"dir": str(tmp_path / "synth")}, "image_size": 320}  # no COCO here
    paper = config_from_dict(raw)
    assert paper.space.settings["head_depths"] == [512, 256, 256, 128] and paper.search.searcher == "reinforce"
    assert len(paper.build_space().detection_anchors()) == 2034  # seed 000's head at 320x320


def test_the_retrain_example_is_the_quickstart_with_a_retrain_stage() -> None:
    from orchestrator.pipeline import stages_for

    plain = load_config(QUICKSTART)
    shipped = load_config(QUICKSTART.parent / "quickstart_retrain.yaml")
    assert plain.retrain is None and stages_for(plain)[-1] == "finalize"  # off unless asked for
    assert stages_for(shipped)[-1] == "retrain" and shipped.retrain["top_k"] == 4 and shipped.retrain["register"]
    same = ("seed", "space", "data", "supernet", "evaluation", "search", "cost")
    assert all(getattr(plain, k) == getattr(shipped, k) for k in same)


def test_a_retrain_recipe_is_stored_expanded_so_a_reopened_experiment_trains_the_same() -> None:
    from orchestrator.config import config_from_json

    cfg = load_config(QUICKSTART, ["retrain.recipe=mobileone", "retrain.lr=0.05"])
    assert cfg.retrain["lr"] == 0.05 and cfg.retrain["weight_decay_end"] == 1e-5 and cfg.retrain["ema_decay"] == 0.9995
    assert config_from_json(cfg.to_dict(), schema_version=2).retrain == cfg.retrain
    with pytest.raises(ConfigError, match="'retrain.workers'"):
        load_config(QUICKSTART, ["retrain.workers=0"])
