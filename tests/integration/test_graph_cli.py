"""A residual net from the command line: `--nproc 2` trains it as two gloo ranks."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.conftest import PRESETS
from tests.engine.test_graph_consumers import residual_on_digits
from tests.integration.test_ddp_cli import workbench
from workbench.engine.experiment import save_experiment
from workbench.engine.experiment_model import build_experiment_model


def test_the_residual_preset_trains_with_ddp_on_two_processes(tmp_path: Path) -> None:
    experiment = residual_on_digits(PRESETS, epochs=1)
    path = tmp_path / "resnet.toml"
    save_experiment(experiment, path)
    out = tmp_path / "run"
    result = workbench("train", str(path), "--nproc", "2", "--out", str(out))

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(
        "Training 9,690 parameters on cpu (32-true, world size 2"
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed"
    weights = torch.load(out / "model.pth", weights_only=True)
    assert not [key for key in weights if key.startswith("module.")]
    model = build_experiment_model(experiment).module
    model.load_state_dict(weights, strict=True)
    assert "layer1.1.conv2.weight" in weights
