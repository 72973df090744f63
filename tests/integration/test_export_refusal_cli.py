"""`workbench export` when the format's exporter refuses the model: one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workbench.cli import main
from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import load_experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.export import ExportFailed

PRESETS = Path(__file__).resolve().parents[2] / "resources" / "presets"


def test_export_failed_is_a_named_error() -> None:
    assert issubclass(ExportFailed, WorkbenchError)


def test_a_model_the_exporter_refuses_exits_2_naming_the_other_formats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "digits.pth"
    model = build_experiment_model(load_experiment(PRESETS / "digits-mlp.toml")).module
    torch.save(model.state_dict(), weights)

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unsupported operator aten::frobnicate\nlong detail")

    monkeypatch.setattr(torch.jit, "trace", refuse)
    target = tmp_path / "digits.pt"
    argv = ["export", "digits-mlp", "--weights", str(weights), "--format", "torchscript"]
    code = main([*argv, "-o", str(target)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines()[-1] == (
        "error: torchscript export failed: unsupported operator aten::frobnicate; "
        "try --format onnx or --format pt2"
    )
    assert "Traceback" not in err and "unexpected" not in err
    assert not target.exists()
