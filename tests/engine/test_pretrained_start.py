"""The project "Start from a pretrained network" makes: a Backbone and a head over the folder's
classes, the freeze choices as the layer's values, and clear messages for a bad folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.transfer_helpers import write_image_folder
from workbench.engine.errors import DatasetError
from workbench.engine.pretrained_start import (
    folder_classes,
    freeze_choice,
    freeze_value,
    pretrained_experiment,
)


def test_the_project_has_a_backbone_and_a_head_of_one_output_per_class(tmp_path: Path) -> None:
    folder = write_image_folder(tmp_path / "photos", per_class=2, odd_files=False)
    experiment = pretrained_experiment(folder, "mobilenet_v2", "none", "last:2", image_size=48)
    backbone, head = experiment.model.layers
    assert (backbone.type, dict(backbone.params)) == (
        "Backbone",
        {"arch": "mobilenet_v2", "weights": "none", "freeze": "last:2"},
    )
    assert (head.type, dict(head.params)) == ("Linear", {"out_features": 5})
    assert (experiment.data.name, experiment.data.path) == ("image-folder", str(folder))
    assert experiment.data.image_size == 48
    assert (experiment.train.optimizer, experiment.train.backbone_lr_factor) == ("sgd", 0.1)


def test_a_split_folder_counts_the_classes_of_its_train_folder(tmp_path: Path) -> None:
    for split in ("train", "val"):
        for name in ("cat", "dog", "owl"):
            (tmp_path / split / name).mkdir(parents=True)
    assert folder_classes(tmp_path) == ["cat", "dog", "owl"]


def test_a_folder_without_two_classes_is_named(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    with pytest.raises(DatasetError, match=r": 1 class subfolder\(s\); a classifier needs"):
        folder_classes(tmp_path)
    with pytest.raises(DatasetError, match="nowhere: folder not found; pick a folder"):
        pretrained_experiment(tmp_path / "nowhere", "resnet18")


@pytest.mark.parametrize(
    ("choice", "stages", "value"), [("all", 1, True), ("none", 3, False), ("last", 2, "last:2")]
)
def test_freeze_choices_are_the_layers_values_and_back(
    choice: str, stages: int, value: bool | str
) -> None:
    assert freeze_value(choice, stages) == value
    assert freeze_choice(value) == (choice, stages if choice == "last" else 1)


def test_a_wrong_freeze_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="'some' is not one of all, last, none"):
        freeze_value("some")
    with pytest.raises(ValueError, match="at least 1"):
        freeze_value("last", 0)
