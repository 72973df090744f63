"""An exported script with a Backbone layer: torchvision's network made by `make_backbone`,
frozen as the engine freezes it, fed by the engine's own image steps, lint-clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.transfer_helpers import (
    RESNET18_FILE,
    experiment_text,
    save_random_resnet18,
    write_image_folder,
)
from workbench.engine.backbone_weights import load_pretrained_backbones
from workbench.engine.datasets import load_splits
from workbench.engine.experiment import parse_experiment
from workbench.engine.experiment_model import build_experiment_model, experiment_preprocessing
from workbench.engine.script_export import export_script

RUFF = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
AUGMENT = "augment = { random_resized_crop = true, horizontal_flip = 0.5, hue = 0.1 }\n"


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("script")
    write_image_folder(root / "photos")
    save_random_resnet18(root / RESNET18_FILE)
    return root


def test_the_scripts_model_is_the_engines_frozen_the_same_way(place: Path, tmp_path: Path) -> None:
    text = experiment_text(place / "photos", str(place / RESNET18_FILE), '"last:1"')
    experiment = parse_experiment(text)
    script = export_script(experiment)
    assert 'make_backbone("resnet18", None, "fc", ["layer4"], weights_file=' in script
    assert "optimizer = torch.optim.SGD(parameter_groups(model, LEARNING_RATE * 0.1)" in script
    namespace: dict[str, object] = {"__name__": "exported"}
    exec(compile(script, "train.py", "exec"), namespace)
    torch.manual_seed(experiment.train.seed)
    theirs = namespace["build_model"]()  # type: ignore[operator]
    torch.manual_seed(experiment.train.seed)
    ours = build_experiment_model(experiment).module
    load_pretrained_backbones(ours)
    for (_, mine), (_, their) in zip(
        ours.state_dict().items(), theirs.state_dict().items(), strict=True
    ):
        assert torch.equal(mine, their)
    assert [p.requires_grad for p in ours.parameters()] == [
        p.requires_grad for p in theirs.parameters()
    ]
    theirs.train()
    modes = [m.training for m in theirs.modules()]
    ours.train()
    assert [m.training for m in ours.modules()][1:] == modes[1:]
    (tmp_path / "train.py").write_text(script)
    if Path(RUFF).exists():
        lint = subprocess.run(
            [
                *(RUFF, "check", "--isolated", "--line-length", "100", "--select", "E,F,W,I,B,UP"),
                str(tmp_path / "train.py"),
            ],
            capture_output=True,
            text=True,
        )
        assert lint.returncode == 0, lint.stdout


def test_the_scripts_images_are_the_engines(place: Path) -> None:
    text = experiment_text(place / "photos", "DEFAULT", extra_data=AUGMENT)
    experiment = parse_experiment(text)
    script = export_script(experiment)
    assert "v2.RandomResizedCrop(" in script and "v2.ColorJitter(hue=0.1)," in script
    namespace: dict[str, object] = {"__name__": "exported"}
    exec(compile(script, "train.py", "exec"), namespace)
    train_set, val_set, classes = namespace["load_data"]()  # type: ignore[operator]
    splits = load_splits(
        experiment.data, experiment.train.seed, experiment_preprocessing(experiment)
    )
    assert classes == list(splits.info.class_names)
    assert len(train_set) == splits.info.train_size and len(val_set) == splits.info.val_size
    for index in range(len(val_set)):
        assert torch.equal(val_set[index][0], splits.val[index][0])
        assert val_set[index][1] == splits.val[index][1]
    torch.manual_seed(3)
    theirs = train_set[0][0]
    torch.manual_seed(3)
    assert torch.equal(theirs, splits.train[0][0])  # the same random steps, the same draws
