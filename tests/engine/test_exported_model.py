"""A program saved by torch.export.save as the model: it trains an epoch, with the parameter count
and state_dict keys of the class it was exported from, and switches dropout for validation."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from tests.own_models import MODELS, reference_model, write_project
from workbench.engine.errors import ModelBuildError
from workbench.engine.experiment import load_experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.exported_model import operators_training
from workbench.engine.model_builder import summary_text
from workbench.engine.trainer import Trainer


def exported_project(folder: Path, dynamic: bool = True) -> tuple[Path, torch.nn.Module]:
    """The CNN class exported to folder/net.pt2, and an experiment naming it."""
    write_project(folder, MODELS["cnn"])
    model = reference_model(folder, MODELS["cnn"])
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    program = torch.export.export(model, (torch.zeros(4, 1, 8, 8),), dynamic_shapes=shapes)
    torch.export.save(program, folder / "net.pt2")
    path = folder / "exp.toml"
    path.write_text(
        '[model]\nmodule = "net.pt2"\n[data]\nname = "digits"\n'
        '[train]\nepochs = 1\nloss = "nll"\nlr = 0.01\ndevice = "cpu"\n',
        encoding="utf-8",
    )
    return path, model


def test_a_pt2_trains_one_epoch_with_the_class_parameter_count_and_keys(tmp_path: Path) -> None:
    path, original = exported_project(tmp_path)
    summary = Trainer(load_experiment(path), out_dir=tmp_path / "run").fit()
    assert summary["status"] == "completed" and summary["epochs_completed"] == 1
    assert summary["parameters"] == 3_658 == sum(p.numel() for p in original.parameters())
    weights = torch.load(tmp_path / "run" / "model.pth", weights_only=True)
    assert list(weights) == list(original.state_dict())
    original.load_state_dict(weights, strict=True)  # the trained weights go back into the class
    assert float(summary["train_loss"]) < 2.2  # type: ignore[arg-type]


def test_train_and_eval_switch_the_exported_dropout(tmp_path: Path) -> None:
    path, _original = exported_project(tmp_path)
    model = build_experiment_model(load_experiment(path)).module
    x = torch.randn(8, 1, 8, 8)
    model.eval()
    assert operators_training(model) is False and not model.training
    assert torch.equal(model(x), model(x))  # no dropout
    model.train()
    assert operators_training(model) is True and model.training
    torch.manual_seed(0)
    assert not torch.equal(model(x), model(x))  # dropout draws
    copied = copy.deepcopy(model).eval()  # insight works on copies
    assert operators_training(copied) is False and operators_training(model) is True


def test_a_pt2_summary_lists_its_modules_and_parameters(tmp_path: Path) -> None:
    path, _original = exported_project(tmp_path)
    text = summary_text(build_experiment_model(load_experiment(path)))
    table = text[text.index("\nmodule") :]
    assert "conv1" in table and "fc2" in table and "_guards_fn" not in table
    assert text.endswith("Total number of trainable model parameters: 3658")


def test_a_pt2_exported_for_a_fixed_batch_is_refused_with_the_fix(tmp_path: Path) -> None:
    path, _original = exported_project(tmp_path, dynamic=False)
    with pytest.raises(ModelBuildError, match=r"exported for batches of exactly 4 samples"):
        Trainer(load_experiment(path)).prepare()


def test_a_pt2_for_other_samples_than_the_data_is_refused(tmp_path: Path) -> None:
    path, _original = exported_project(tmp_path)
    path.write_text(path.read_text().replace('"digits"', '"moons"'), encoding="utf-8")
    with pytest.raises(
        ModelBuildError, match=r"takes samples of \[1, 8, 8\], but the data gives \[2\]"
    ):
        Trainer(load_experiment(path)).prepare()


def test_a_file_that_is_not_a_program_is_named(tmp_path: Path) -> None:
    (tmp_path / "net.pt2").write_bytes(b"not a zip")
    (tmp_path / "exp.toml").write_text('[model]\nmodule = "net.pt2"\n[data]\nname = "digits"\n')
    with pytest.raises(ModelBuildError, match=r"net\.pt2"):
        build_experiment_model(load_experiment(tmp_path / "exp.toml"))
