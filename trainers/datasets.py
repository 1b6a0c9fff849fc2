"""The dataset plugin: where training and validation images come from, as batches of the task's form.

A dataset is built where it is used (inside a Ray actor or trial worker) from its kind, its settings
and the experiment seed, so only those small values travel. Synthetic data is here; image folders and
COCO register the same way.
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Mapping

from core.errors import ConfigError
from core.registry import Registry
from core.seeding import torch_generator
from core.settings import Setting, integer, number, resolve_settings

if TYPE_CHECKING:  # torch is imported when data is loaded: configs validate without it
    import torch

__all__ = ["DATASETS", "Dataset", "SyntheticDataset", "make_dataset"]


class Dataset(abc.ABC):
    """Base class of every registered dataset.

    A subclass sets :attr:`kind` (its ``data.kind`` in configs), :attr:`task` (the task it serves, a
    name in :data:`trainers.tasks.TASKS`) and :attr:`SETTINGS`, and implements the abstract members.
    Batches are ``(images, targets)``: float32 NCHW images, normalised, of ``image_size``.

    Args:
        seed: The experiment seed; every random choice of the dataset derives from it.
        **settings: The kind's settings (see :attr:`SETTINGS`).
    """

    kind: ClassVar[str]
    task: ClassVar[str]
    SETTINGS: ClassVar[tuple[Setting, ...]] = ()
    #: Small settings for tests and examples (see :meth:`example_settings`).
    SMALL_SETTINGS: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, *, seed: int, **settings: Any) -> None:
        self.seed = seed
        self.settings = self.check_settings(settings)

    @classmethod
    def example_settings(cls, directory: Any) -> dict[str, Any]:
        """Small settings for tests and examples; a kind that reads files writes a small example into
        ``directory`` (a :class:`pathlib.Path`) and points its settings there."""
        return dict(cls.SMALL_SETTINGS)

    #: Settings that name files or folders: a config's relative paths are taken relative to the config file.
    PATH_SETTINGS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def resolve_paths(cls, settings: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
        """``settings`` with the relative paths of :attr:`PATH_SETTINGS` made absolute against ``base_dir``
        (stored absolute: an experiment must not depend on the working directory)."""
        out = dict(settings)
        for name in cls.PATH_SETTINGS:
            if isinstance(out.get(name), str) and out[name]:
                out[name] = str((base_dir / Path(out[name]).expanduser()).resolve())
        return out

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], *, where: Callable[[str], str] | None = None) -> dict[str, Any]:
        """The settings validated, defaults filled in, without loading anything."""
        return resolve_settings(cls.SETTINGS, settings, owner=f"dataset {cls.kind}", where=where)

    @classmethod
    def prepare(cls, settings: Mapping[str, Any], *, printer: Callable[[str], None] = print) -> dict[str, Any]:
        """Do the one-time work on the data (read every file, decode it into a cache) where the driver
        runs, before an experiment starts, so a bad file is one clear error before anything is written;
        return the data's identity (what its scores depend on). Generated data has nothing to do."""
        return {"kind": cls.kind, **dict(settings)}

    @classmethod
    @abc.abstractmethod
    def space_settings(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The space settings the data fixes, ``input_size`` and ``num_classes``, from validated settings
        (cheap: a config is checked with it before anything is loaded)."""

    @property
    def num_classes(self) -> int:
        """Classes the model predicts."""
        return int(self.space_settings(self.settings)["num_classes"])

    @property
    def image_size(self) -> int:
        """Side of the square images of every batch."""
        return int(self.space_settings(self.settings)["input_size"])

    @property
    @abc.abstractmethod
    def train_size(self) -> int:
        """Images in the training split; batches index ``0 .. train_size - 1``."""

    @abc.abstractmethod
    def train_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """The training images and targets at ``indices`` (an int64 tensor)."""

    @abc.abstractmethod
    def val_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, Any]]:
        """The validation split in order, ``batch_size`` images at a time (the last batch may be smaller)."""

    def calibration_images(self, batches: int, batch_size: int) -> list[torch.Tensor]:
        """Training images for BN recalibration: the same for every candidate (drawn from the seed alone),
        so candidates are compared on equal terms."""
        return [self.train_batch(idx)[0] for idx in self.calibration_indices(batches, batch_size)]

    def calibration_indices(self, batches: int, batch_size: int) -> list[torch.Tensor]:
        """The training indices of :meth:`calibration_images`: a seeded permutation cut into ``batches``
        batches, fewer when the split is smaller than ``batches * batch_size`` (never an empty batch)."""
        import torch

        perm = torch.randperm(self.train_size, generator=torch_generator(self.seed, "bn-calibration"))
        return [perm[i * batch_size:(i + 1) * batch_size] for i in range(min(batches, -(-len(perm) // batch_size)))]


DATASETS: Registry[type[Dataset]] = Registry("dataset kind")


def make_dataset(kind: str, *, seed: int, settings: Mapping[str, Any]) -> Dataset:
    """The dataset of ``kind`` with ``settings`` for experiment ``seed``."""
    return DATASETS.get(kind)(seed=seed, **settings)


@DATASETS.register("synthetic")
class SyntheticDataset(Dataset):
    """A learnable synthetic image-classification task generated from the seed (see
    :mod:`trainers._synthetic`): oriented textures in class-specific layouts with distractors and noise.

    Settings: ``num_classes`` (>= 2), ``image_size`` (>= 16), ``train_size`` and ``val_size`` (>= 1)
    and ``noise`` (>= 0, pixel noise relative to the clean image; 0.3-0.6 are sensible).
    """

    kind = "synthetic"
    task = "classification"
    SETTINGS = (
        Setting("num_classes", 10, integer(minimum=2, maximum=100_000)),
        Setting("image_size", 32, integer(minimum=16, maximum=1024)),
        Setting("train_size", 4096, integer(minimum=1, maximum=10_000_000)),
        Setting("val_size", 1024, integer(minimum=1, maximum=10_000_000)),
        Setting("noise", 0.45, number(low=0.0)),
    )
    SMALL_SETTINGS = {"num_classes": 4, "image_size": 32, "train_size": 64, "val_size": 32, "noise": 0.45}

    #: The generated images live in memory (float32); more than this is refused before anything runs.
    MAX_BYTES = 8 * 2**30

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], *, where: Callable[[str], str] | None = None) -> dict[str, Any]:
        checked = super().check_settings(settings, where=where)
        size, images = checked["image_size"], checked["train_size"] + checked["val_size"]
        need = images * 3 * size * size * 4
        if need > cls.MAX_BYTES:
            name = (where or (lambda n: f"dataset synthetic setting '{n}'"))("train_size")
            raise ConfigError(
                f"{name}: train_size + val_size = {images:,} images of 3x{size}x{size} would take "
                f"{need / 2**30:.1f} GiB of memory, over the synthetic data limit of {cls.MAX_BYTES // 2**30} GiB. "
                f"HINT: generate fewer or smaller images, or bring your own data from disk."
            )
        return checked

    def __init__(self, *, seed: int, **settings: Any) -> None:
        from ._synthetic import make_synthetic_data

        super().__init__(seed=seed, **settings)
        self.tensors = make_synthetic_data(seed=seed, **self.settings)

    @classmethod
    def space_settings(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        return {"input_size": settings["image_size"], "num_classes": settings["num_classes"]}

    @property
    def train_size(self) -> int:
        return len(self.tensors.train_y)

    def train_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tensors.train_x[indices], self.tensors.train_y[indices]

    def val_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y = self.tensors.val_x, self.tensors.val_y
        for i in range(0, len(y), batch_size):
            yield x[i : i + batch_size], y[i : i + batch_size]
