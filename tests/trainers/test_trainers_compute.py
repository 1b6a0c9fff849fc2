"""The compute setting: CPU results stay bit for bit, bf16 autocast trains and resumes exactly, and a CUDA or
fp16 request the machine cannot serve is one clear error."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.errors import ConfigError, DeviceError
from spaces import get_space
from trainers import ClassificationTask, Compute, SupernetTrainer, SupernetTrainSettings, SyntheticDataset
from trainers.compute import batch_to, module_device
from trainers.retrain import RetrainJob, RetrainLoop, check_retrain_settings

SETTINGS = SupernetTrainSettings(steps=6, batch_size=16, lr=0.1, momentum=0.9, weight_decay=4e-5,
                                 label_smoothing=0.1, checkpoint_every=3, threads=1, sandwich="max", distill=True)
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour of a machine without CUDA")


@pytest.fixture(scope="module")
def space_and_data():
    space = get_space("moga", width_mult=0.25, input_size=32, num_classes=4, stem_stride=2, dropout=0.0)
    data = SyntheticDataset(seed=3, num_classes=4, image_size=32, train_size=64, val_size=32, noise=0.5)
    return space, data


def _trainer(space, data, path: Path, compute: Compute | None) -> SupernetTrainer:
    return SupernetTrainer(space=space, task=ClassificationTask(label_smoothing=0.1), dataset=data, settings=SETTINGS,
                           seed=11, checkpoint_path=path, compute=compute)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_settings_are_checked() -> None:
    assert Compute() == Compute(device="auto", precision="fp32", gpus_per_trial=0.25)
    with pytest.raises(ConfigError, match="'device': must be one of auto, cpu, cuda"):
        Compute(device="gpu")
    with pytest.raises(ConfigError, match="'precision': must be one of fp32, bf16, fp16"):
        Compute(precision="fp8")
    with pytest.raises(ConfigError, match="fp16 needs compute device cuda"):
        Compute(device="cpu", precision="fp16")
    with pytest.raises(ConfigError, match="gpus_per_trial"):
        Compute(gpus_per_trial=0)
    assert Compute.from_dict(Compute(precision="bf16").to_dict()) == Compute(precision="bf16")
    assert Compute(device="auto").uses_cuda(gpu_present=True) and not Compute(device="cpu").uses_cuda(gpu_present=True)


@no_cuda
def test_auto_is_the_cpu_here_and_cuda_is_refused_with_a_hint() -> None:
    assert Compute().torch_device() == torch.device("cpu")
    with pytest.raises(DeviceError, match="sees no CUDA device. HINT"):
        Compute(device="cuda").torch_device()
    with pytest.raises(DeviceError, match="fp16 needs compute device cuda"):
        Compute(precision="fp16").torch_device()  # auto falls back to the CPU, where fp16 cannot run


@no_cuda
def test_cpu_training_is_bit_for_bit_whatever_the_compute_says(tmp_path: Path, space_and_data) -> None:
    """No compute (library callers), ``cpu`` and ``auto`` on a machine without a GPU train identically."""
    space, data = space_and_data
    states = []
    for name, compute in (("none", None), ("cpu", Compute(device="cpu")), ("auto", Compute())):
        trainer = _trainer(space, data, tmp_path / f"{name}.pt", compute)
        trainer.train_steps(4)
        states.append(trainer.model.state_dict())
    assert _same(states[0], states[1]) and _same(states[0], states[2])


def test_bf16_autocast_trains_and_resumes_bit_for_bit(tmp_path: Path, space_and_data) -> None:
    space, data = space_and_data
    bf16 = Compute(device="cpu", precision="bf16")
    fp32 = _trainer(space, data, tmp_path / "fp32.pt", Compute(device="cpu"))
    straight = _trainer(space, data, tmp_path / "a.pt", bf16)
    info = straight.train_steps(6)
    assert torch.isfinite(torch.tensor(info["loss"]))
    fp32.train_steps(6)
    assert not _same(straight.model.state_dict(), fp32.model.state_dict())  # autocast did compute in bf16
    _trainer(space, data, tmp_path / "b.pt", bf16).train_steps(5)  # checkpoint of step 3, then a "crash"
    resumed = _trainer(space, data, tmp_path / "b.pt", bf16)
    assert resumed.step == 3
    resumed.train_steps(6)
    assert _same(straight.model.state_dict(), resumed.model.state_dict())


def test_retrain_loop_trains_under_bf16_autocast() -> None:
    space = get_space("moga", **{**get_space("moga").small_settings(), "num_classes": 4, "input_size": 32})
    encoding = space.default_encoding()
    job = RetrainJob(retrain_id="bf16", candidate_id=space.candidate_id(encoding), encoding=tuple(encoding),
                     space_name="moga", space_settings=space.settings, data_kind="synthetic",
                     data_settings={"num_classes": 4, "image_size": 32, "train_size": 32, "val_size": 16}, seed=0,
                     settings=check_retrain_settings({"batch_size": 16, "epochs": 1}))
    loop = RetrainLoop(job, precision="bf16")
    before = {k: v.clone() for k, v in loop.model.state_dict().items()}
    metrics = loop.train_epoch()
    assert metrics["steps"] == 2 and torch.isfinite(torch.tensor(metrics["train_loss"]))
    assert not _same(before, loop.model.state_dict())
    assert 0.0 <= loop.evaluate()["accuracy"] <= 1.0
    with pytest.raises(ConfigError, match="fp16 needs compute device cuda"):
        RetrainLoop(job, precision="fp16")


def test_batches_follow_the_model() -> None:
    model = torch.nn.Linear(2, 2)
    assert module_device(model) == torch.device("cpu") and module_device(torch.nn.ReLU()) == torch.device("cpu")
    targets = [{"boxes": torch.zeros(1, 4), "labels": torch.ones(1, dtype=torch.long), "image_id": 7}]
    moved = batch_to(targets, torch.device("cpu"))
    assert moved[0]["image_id"] == 7 and moved[0]["boxes"] is targets[0]["boxes"]  # a no-op where they are
    x = torch.ones(2)
    assert batch_to(x, torch.device("cpu")) is x
