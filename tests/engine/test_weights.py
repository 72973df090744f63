"""Loading a weights file into the current stack: a fit loads, a misfit says which keys and why."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import PRESETS
from workbench.engine.errors import CheckpointError
from workbench.engine.experiment import load_experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.trainer import Trainer
from workbench.engine.weights import load_weights_for


def test_weights_that_fit_load_and_seed_the_next_run(tmp_path: Path) -> None:
    experiment = load_experiment(PRESETS / "toy-mlp.toml")
    torch.manual_seed(5)
    source = build_experiment_model(experiment).module
    torch.save(source.state_dict(), tmp_path / "w.pth")
    weights = load_weights_for(experiment, tmp_path / "w.pth")
    trainer = Trainer(experiment, initial_weights=weights)
    trainer.prepare()
    for key, value in source.state_dict().items():
        torch.testing.assert_close(trainer.model.state_dict()[key], value)


def test_weights_that_do_not_fit_name_the_keys_and_shapes(tmp_path: Path) -> None:
    experiment = load_experiment(PRESETS / "toy-mlp.toml")
    state = build_experiment_model(experiment).module.state_dict()
    state["0.weight"] = torch.zeros(31, 2)
    del state["4.bias"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(CheckpointError) as caught:
        load_weights_for(experiment, tmp_path / "w.pth")
    message = str(caught.value)
    assert "does not fit the current layer stack" in message
    assert "missing 4.bias" in message and "unexpected extra.weight" in message
    assert "0.weight: file [31, 2] vs model [30, 2]" in message
