"""Stand-alone retraining without Ray: the recipes, the schedules, resumable and data-parallel loops, EMA,
MobileOne's fold of the trained branches, and a detector retrained with the detection loss."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

from core.errors import ConfigError
from spaces import get_space
from spaces.export import export_onnx, onnx_parity
from trainers import DATASETS
from trainers.detection import deployable
from trainers.retrain import (RECIPES, RetrainJob, RetrainLoop, build_shipped, check_retrain_settings, lr_at,
                              shipped_state, weight_decay_at)

DATA = {"num_classes": 4, "image_size": 32, "train_size": 64, "val_size": 32, "noise": 0.45}


def _job(space_name: str = "moga", *, data_kind: str = "synthetic", data: dict | None = None,
         space_settings: dict | None = None, **settings: object) -> RetrainJob:
    data = dict(DATA if data is None else data)
    fixed = DATASETS.get(data_kind).space_settings(DATASETS.get(data_kind).check_settings(data))
    space = get_space(space_name, **{**(space_settings or get_space(space_name).small_settings()), **fixed})
    encoding = space.default_encoding()
    return RetrainJob(retrain_id=f"{space.candidate_id(encoding)}-test", candidate_id=space.candidate_id(encoding),
                      encoding=tuple(encoding), space_name=space_name, space_settings=space.settings,
                      data_kind=data_kind, data_settings=data, seed=0,
                      settings=check_retrain_settings({"batch_size": 16, "epochs": 3, **settings}))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------- settings and schedules
def test_recipes_fill_the_papers_values_and_the_config_overrides_them() -> None:
    mobileone = check_retrain_settings({"recipe": "mobileone"})
    assert (mobileone["weight_decay"], mobileone["weight_decay_end"], mobileone["ema_decay"]) == (1e-4, 1e-5, 0.9995)
    moga = check_retrain_settings({"recipe": "moga", "lr": 0.05})
    assert moga["optimizer"] == "rmsprop" and moga["warmup_epochs"] == 5.0 and moga["lr"] == 0.05
    assert set(RECIPES) == {"moga", "mobileone", "mobiledet"}
    with pytest.raises(ConfigError, match="divisible by workers"):
        check_retrain_settings({"batch_size": 10, "workers": 3})
    with pytest.raises(ConfigError, match="'epochs'"):
        check_retrain_settings({"epochs": 0})


def test_cosine_with_warmup_step_decay_and_annealed_weight_decay() -> None:
    s = check_retrain_settings({"lr": 1.0, "epochs": 10, "warmup_epochs": 1})
    assert lr_at(s, 0, 10) == pytest.approx(0.1) and lr_at(s, 9, 10) == pytest.approx(1.0)
    assert lr_at(s, 10, 10) == pytest.approx(1.0) and lr_at(s, 55, 10) == pytest.approx(0.5)
    assert lr_at(s, 99, 10) < 1e-3
    step = check_retrain_settings({"lr": 1.0, "schedule": "step", "step_epochs": 2.0, "step_gamma": 0.5})
    assert [lr_at(step, e * 10, 10) for e in (0, 1, 2, 4)] == [1.0, 1.0, 0.5, 0.25]
    wd = check_retrain_settings({"recipe": "mobileone", "epochs": 4})
    assert weight_decay_at(wd, 0, 10) == pytest.approx(1e-4) and weight_decay_at(wd, 40, 10) == pytest.approx(1e-5)
    assert weight_decay_at(wd, 20, 10) == pytest.approx(5.5e-5)
    assert weight_decay_at(check_retrain_settings({}), 17, 10) == 4e-5


# ---------------------------------------------------------------------- the loop
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_loop_resumed_from_its_state_continues_exactly(optimizer: str) -> None:
    job = _job(ema_decay=0.9, optimizer=optimizer, lr=0.01 if optimizer == "adam" else 0.1)
    straight = RetrainLoop(job)
    straight.train_epoch()
    saved = copy.deepcopy(straight.state_dict())  # as written to a checkpoint: not the live tensors
    straight.train_epoch()
    resumed = RetrainLoop(job)
    resumed.load_state_dict(saved)
    resumed.train_epoch()
    assert resumed.epoch == straight.epoch == 2
    assert _same(resumed.model.state_dict(), straight.model.state_dict())
    assert _same(shipped_state(resumed.state_dict()), shipped_state(straight.state_dict()))
    with pytest.raises(ValueError, match="belongs to retrain"):
        RetrainLoop(_job(epochs=4)).load_state_dict({**saved, "retrain_id": "other"})


def test_adam_is_adamw_with_the_recipes_decoupled_weight_decay() -> None:
    loop = RetrainLoop(_job(optimizer="adam", lr=0.003, weight_decay=0.05))
    assert type(loop.optimizer) is torch.optim.AdamW
    assert loop.optimizer.param_groups[0]["weight_decay"] == 0.05
    before = copy.deepcopy(loop.model.state_dict())
    assert math.isfinite(loop.train_epoch()["train_loss"])
    assert not _same(before, loop.model.state_dict())


def test_workers_split_each_global_batch_between_them() -> None:
    job = _job(workers=2)
    loops = [RetrainLoop(job, rank=r, world=2) for r in (0, 1)]
    whole = RetrainLoop(_job()).batch_indices(1, 2)
    parts = [loop.batch_indices(1, 2) for loop in loops]
    assert sorted(torch.cat(parts).tolist()) == sorted(whole.tolist()) and len(parts[0]) == len(parts[1]) == 8


def test_ema_weights_are_what_ships() -> None:
    loop = RetrainLoop(_job(ema_decay=0.5))
    loop.train_epoch()
    shipped = shipped_state(loop.state_dict())
    assert shipped.keys() == loop.model.state_dict().keys()
    assert not _same(shipped, loop.model.state_dict())  # averaged, not the last step's weights
    model = build_shipped(loop.job, shipped)
    assert _same(model.state_dict(), shipped)


def test_mobileone_trains_in_branch_form_and_folds_exactly() -> None:
    loop = RetrainLoop(_job("mobileone", epochs=1))
    assert not loop.model.is_folded
    info = loop.train_epoch()
    assert math.isfinite(info["train_loss"]) and info["steps"] == 4
    model = build_shipped(loop.job, shipped_state(loop.state_dict()))
    space = loop.space
    onnx = export_onnx(deployable(space, model), space.input_shape)  # the export folds the branches
    assert onnx_parity(model, onnx, space.input_shape, seed=0) < 1e-4
    assert not model.is_folded  # the trained weights stay in branch form


def test_a_detector_retrains_with_the_detection_loss(tmp_path: Path) -> None:
    coco = DATASETS.get("coco")
    data = coco.check_settings(coco.example_settings(tmp_path))
    job = _job("moga", data_kind="coco", data=data, space_settings=get_space("moga").small_detection_settings(),
               epochs=1, batch_size=4, label_smoothing=0.0)
    loop = RetrainLoop(job)
    info = loop.train_epoch(steps=2)
    assert math.isfinite(info["train_loss"])
    scores = loop.evaluate(batch_size=8)
    assert set(scores) >= {"map", "map_50", "map_75"}
