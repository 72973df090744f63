"""Own models from the command line: `--nproc 2` (every rank imports the user's file), the
summary, reconcile and quantize verbs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.integration.test_ddp_cli import workbench
from tests.own_models import MODELS, reference_model, write_project
from workbench.cli import main


@pytest.mark.parametrize("name", MODELS)
def test_each_own_model_trains_with_ddp_on_two_processes(tmp_path: Path, name: str) -> None:
    model = MODELS[name]
    path = write_project(tmp_path, model)
    out = tmp_path / "run"
    result = workbench("train", str(path), "--nproc", "2", "--out", str(out))

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(
        f"Training {model.parameters:,} parameters on cpu (32-true, world size 2"
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed"
    weights = torch.load(out / "model.pth", weights_only=True)
    by_hand = reference_model(tmp_path, model)
    assert list(weights) == list(by_hand.state_dict())  # no `module.` prefix
    by_hand.load_state_dict(weights, strict=True)
    copied = (out / "experiment.toml").read_text()
    assert f'module = "{tmp_path / "models" / model.file}:{model.attribute}"' in copied


def test_summary_prints_the_users_class_and_its_module_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_project(tmp_path, MODELS["cnn"])
    assert main(["summary", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Net(\n  (conv1): Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1))")
    assert "conv2     Conv2d   [16, 4, 4]     1,168  18,432" in out
    assert "\nTotal number of trainable model parameters: 3658\n" in out


def test_reconcile_and_quantize_take_an_own_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = MODELS["factory"]
    path = write_project(tmp_path, model)
    weights = tmp_path / "weights.pth"
    torch.save(reference_model(tmp_path, model).state_dict(), weights)
    assert main(["reconcile", str(weights), str(path)]) == 0
    assert "fits" in capsys.readouterr().out.lower()

    assert (
        main(
            [
                "quantize",
                str(path),
                "--weights",
                str(weights),
                "--method",
                "dynamic",
                "-o",
                str(tmp_path / "q"),
            ]
        )
        == 0
    )
    assert (tmp_path / "q" / "model-dynamic-int8.pth").is_file()
