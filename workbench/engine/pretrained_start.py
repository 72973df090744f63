"""A new project that starts from a pretrained network: a Backbone and a Linear head over the
classes of an image folder (what the window's "Start from a pretrained network" makes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.engine.datasets.vision import SPLIT_FOLDERS
from workbench.engine.errors import DatasetError
from workbench.engine.experiment import Experiment, experiment_from_dict

FREEZE_CHOICES = ("all", "last", "none")  # the backbone frozen, its last N stages train, none


def freeze_value(choice: str, stages: int = 1) -> bool | str:
    """The layer's `freeze` for a choice: all -> true, last -> "last:N", none -> false."""
    if choice not in FREEZE_CHOICES:
        raise ValueError(f"freeze: {choice!r} is not one of {', '.join(FREEZE_CHOICES)}")
    if choice == "last":
        if stages < 1:
            raise ValueError("freeze: the number of stages to train must be at least 1")
        return f"last:{stages}"
    return choice == "all"


def freeze_choice(value: Any) -> tuple[str, int]:
    """A layer's `freeze` value as (choice, stages): true -> ("all", 1), "last:2" -> ("last", 2)."""
    if isinstance(value, str) and value.startswith("last:") and value[5:].isdigit():
        return "last", max(int(value[5:]), 1)
    if value is False or (isinstance(value, str) and value.lower() == "false"):
        return "none", 1
    return "all", 1


def folder_classes(folder: str | Path) -> list[str]:
    """The class subfolders of an image folder (of its `train/` when it is split), by name.

    Only folder names are read: the images are checked when the data loads."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: folder not found; pick a folder with one subfolder per class")
    if (root / "train").is_dir() and any((root / name).is_dir() for name in SPLIT_FOLDERS):
        root = root / "train"
    classes = sorted(entry.name for entry in root.iterdir() if entry.is_dir())
    if len(classes) < 2:
        raise DatasetError(
            f"{root}: {len(classes)} class subfolder(s); a classifier needs at least two "
            f"({root}/cat/1.png, {root}/dog/2.png, ...)"
        )
    return classes


def pretrained_experiment(
    folder: str | Path,
    arch: str,
    weights: str = "DEFAULT",
    freeze: bool | str = True,
    *,
    image_size: int | None = None,
    epochs: int = 3,
    batch_size: int = 16,
) -> Experiment:
    """Backbone(arch, weights, freeze) + Linear(classes of `folder`), trained on the folder with
    SGD (lr 0.01, the backbone at a tenth of it), validated on a fifth of the images."""
    classes = folder_classes(folder)
    data: dict[str, Any] = {
        "name": "image-folder",
        "path": str(Path(folder).expanduser()),
        "batch_size": batch_size,
        "val_batch_size": max(batch_size, 64),
        "val_split": 0.2,
    }
    if image_size is not None:
        data["image_size"] = image_size
    raw = {
        "model": {
            "layers": [
                {
                    "name": "backbone",
                    "type": "Backbone",
                    "arch": arch,
                    "weights": weights,
                    "freeze": freeze,
                },
                {"name": "fc", "type": "Linear", "out_features": len(classes)},
            ]
        },
        "data": data,
        "train": {
            "epochs": epochs,
            "optimizer": "sgd",
            "lr": 0.01,
            "momentum": 0.9,
            "backbone_lr_factor": 0.1,
        },
    }
    return experiment_from_dict(raw, "<pretrained start>")
