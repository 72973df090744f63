"""Exporting mnist-cnn to ONNX, .pt2 and TorchScript: each file reloads, matches PyTorch at
batch 8 and batch 1, and every bad request is a named error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from workbench.engine.errors import CheckpointError
from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.export import (
    ExportError,
    ExportFailed,
    ExportResult,
    export_experiment,
    formats,
    is_quantized_file,
)

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ROOT / "resources" / "presets"


def offline(experiment: Experiment, root: Path) -> Experiment:
    """The experiment with its data root an empty folder: samples are random, of its shape."""
    return dataclasses.replace(
        experiment, data=dataclasses.replace(experiment.data, root=str(root))
    )


@pytest.fixture(scope="module")
def mnist_cnn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Experiment, Path, Path]:
    """mnist-cnn with seeded weights saved as a state_dict, and a folder for the exports."""
    folder = tmp_path_factory.mktemp("export")
    experiment = offline(load_experiment(PRESETS / "mnist-cnn.toml"), folder / "no-data")
    torch.manual_seed(0)
    model = build_experiment_model(experiment).module
    weights = folder / "model.pth"
    torch.save(model.state_dict(), weights)
    return experiment, weights, folder


@pytest.fixture(scope="module")
def exported(mnist_cnn: tuple[Experiment, Path, Path]) -> dict[str, ExportResult]:
    experiment, weights, folder = mnist_cnn
    targets = {"onnx": "model.onnx", "pt2": "model.pt2", "torchscript": "model.pt"}
    return {
        fmt: export_experiment(experiment, weights, fmt, folder / name)
        for fmt, name in targets.items()
    }


def mnist_model(weights: Path, experiment: Experiment) -> torch.nn.Module:
    model = build_experiment_model(experiment).module
    model.load_state_dict(torch.load(weights, weights_only=True))
    return model.eval()


@pytest.mark.parametrize("fmt", ["onnx", "pt2", "torchscript"])
def test_mnist_cnn_matches_pytorch_at_batch_8_and_batch_1(
    exported: dict[str, ExportResult], fmt: str
) -> None:
    result = exported[fmt]
    assert result.passed and result.path.is_file()
    assert [check.batch_size for check in result.checks] == [8, 1]
    assert all(check.shapes_match and check.max_abs_diff <= 1e-4 for check in result.checks)
    assert result.size_bytes == result.path.stat().st_size > 2_000_000  # 609,354 float32 weights
    assert result.model_kind == "float32"
    assert "random samples shaped like mnist [1, 28, 28]" in result.sample_source
    assert "mnist is not available here" in result.sample_source
    text = result.text()
    assert f"batch 8: largest absolute difference {result.checks[0].max_abs_diff:.3g}" in text
    assert "OK: within --atol 0.0001" in text
    assert not list(result.path.parent.glob(".*.tmp"))  # written atomically


def test_the_onnx_file_runs_in_onnxruntime_with_a_dynamic_batch(
    exported: dict[str, ExportResult], mnist_cnn: tuple[Experiment, Path, Path]
) -> None:
    experiment, weights, _folder = mnist_cnn
    path = exported["onnx"].path
    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (model_input,) = session.get_inputs()
    assert model_input.name == "input" and model_input.shape[1:] == [1, 28, 28]
    assert isinstance(model_input.shape[0], str)  # a named, dynamic batch dimension
    model = mnist_model(weights, experiment)
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    for batch in (x, x[:1], torch.cat([x, x, x])):
        (output,) = session.run(["output"], {"input": batch.numpy()})
        with torch.no_grad():
            expected = model(batch).numpy()
        assert output.shape == (len(batch), 10)
        assert np.abs(output - expected).max() <= 1e-4
    assert "torch.export-based exporter" in exported["onnx"].how


def test_pt2_and_torchscript_files_reload_with_torch(
    exported: dict[str, ExportResult], mnist_cnn: tuple[Experiment, Path, Path]
) -> None:
    experiment, weights, _folder = mnist_cnn
    model = mnist_model(weights, experiment)
    program = torch.export.load(exported["pt2"].path).module()
    scripted = torch.jit.load(str(exported["torchscript"].path))
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        expected = model(x)
        assert torch.allclose(program(x), expected, atol=1e-5)
        assert torch.allclose(scripted(x), expected, atol=1e-5)
    assert any("deprecated" in note for note in exported["torchscript"].notes)


def test_an_older_opset_uses_the_torchscript_based_exporter(
    mnist_cnn: tuple[Experiment, Path, Path],
) -> None:
    experiment, weights, folder = mnist_cnn
    result = export_experiment(experiment, weights, "onnx", folder / "old.onnx", opset=13)
    assert result.passed
    assert "TorchScript-based exporter, for opset 13" in result.how
    model = onnx.load(str(result.path))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [13]


def test_over_the_tolerance_the_result_fails_and_keeps_the_file(
    mnist_cnn: tuple[Experiment, Path, Path],
) -> None:
    experiment, weights, folder = mnist_cnn
    result = export_experiment(experiment, weights, "onnx", folder / "strict.onnx", atol=1e-12)
    assert result.max_abs_diff > 1e-12 and not result.passed
    assert "FAILED: the largest difference" in result.text()
    assert "over --atol 1e-12; the file is kept for inspection" in result.text()
    assert result.path.is_file()


def test_an_exporter_failure_is_export_failed(
    mnist_cnn: tuple[Experiment, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unsupported operator aten::frobnicate\nlong detail")

    monkeypatch.setattr(torch.jit, "trace", refuse)
    experiment, weights, folder = mnist_cnn
    with pytest.raises(ExportFailed, match=r"^torchscript export failed: unsupported operator"):
        export_experiment(experiment, weights, "torchscript", folder / "broken.pt")
    assert not (folder / "broken.pt").exists()


def test_real_samples_are_used_where_the_data_is_here(tmp_path: Path) -> None:
    experiment = load_experiment(PRESETS / "digits-mlp.toml")
    torch.manual_seed(0)
    weights = tmp_path / "digits.pth"
    torch.save(build_experiment_model(experiment).module.state_dict(), weights)
    result = export_experiment(experiment, weights, "pt2", tmp_path / "digits.pt2")
    assert result.passed and result.sample_source == "8 samples of the digits validation split"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fmt": "tflite"}, "--format 'tflite' is not supported; choose one of onnx, pt2"),
        ({"fmt": "pt2", "opset": 17}, "--opset applies to onnx only"),
        ({"opset": 3}, "--opset 3 is out of range; choose 7 to"),
        ({"atol": 0.0}, "--atol 0 must be a positive number"),
        ({"atol": float("nan")}, "--atol nan must be a positive number"),
    ],
)
def test_bad_requests_are_named_before_any_work(
    mnist_cnn: tuple[Experiment, Path, Path], changes: dict[str, object], message: str
) -> None:
    experiment, weights, folder = mnist_cnn
    request: dict[str, object] = {"fmt": "onnx", "opset": None, "atol": 1e-4}
    request.update(changes)
    with pytest.raises(ExportError, match=message.replace("(", r"\(")):
        export_experiment(
            experiment,
            weights,
            str(request["fmt"]),
            folder / "never.onnx",
            opset=request["opset"],  # type: ignore[arg-type]
            atol=float(request["atol"]),  # type: ignore[arg-type]
        )
    assert not (folder / "never.onnx").exists()


def test_output_paths_that_cannot_be_written_are_named(
    mnist_cnn: tuple[Experiment, Path, Path], tmp_path: Path
) -> None:
    experiment, weights, _folder = mnist_cnn
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError, match=r"a-file is a file, not a folder"):
        export_experiment(experiment, weights, "onnx", blocker / "model.onnx")
    with pytest.raises(ExportError, match=r"is a folder; give a file name"):
        export_experiment(experiment, weights, "onnx", tmp_path)
    existing = tmp_path / "old.onnx"
    existing.write_text("keep me")
    with pytest.raises(ExportError, match=r"exists; pass --force to replace it"):
        export_experiment(experiment, weights, "onnx", existing)
    assert existing.read_text() == "keep me"


def test_weights_that_do_not_fit_or_do_not_exist_are_named(
    mnist_cnn: tuple[Experiment, Path, Path], tmp_path: Path
) -> None:
    experiment, _weights, _folder = mnist_cnn
    digits = build_experiment_model(load_experiment(PRESETS / "digits-mlp.toml")).module
    wrong = tmp_path / "digits.pth"
    torch.save(digits.state_dict(), wrong)
    with pytest.raises(CheckpointError, match=r"digits\.pth: does not fit the current layer stack"):
        export_experiment(experiment, wrong, "onnx", tmp_path / "model.onnx")
    with pytest.raises(ExportError, match=r"--weights .*missing\.pth: no such file"):
        export_experiment(experiment, tmp_path / "missing.pth", "onnx", tmp_path / "m.onnx")


def test_quantized_files_are_told_by_their_bytes(
    mnist_cnn: tuple[Experiment, Path, Path], tmp_path: Path
) -> None:
    _experiment, weights, _folder = mnist_cnn
    assert not is_quantized_file(weights)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    assert not is_quantized_file(garbage)
    assert formats.outputs_of({"a": torch.ones(1), "b": (torch.zeros(2), 3)})[1].shape == (2,)
