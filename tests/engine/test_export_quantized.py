"""Quantized models (`workbench quantize` files) export where the format takes them, checked
like float ones, and get a named UnsupportedExport where it does not."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workbench.engine.experiment import Experiment, load_experiment, parse_experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.export import (
    ExportError,
    UnsupportedExport,
    export_experiment,
    is_quantized_file,
)
from workbench.engine.quantization import (
    MeasureSettings,
    QuantizationOptions,
    quantize_experiment,
)

ROOT = Path(__file__).resolve().parents[2]
NO_TIMING = MeasureSettings(repeats=1, warmup=0, threads=1, inference_options=False)
SMALL_CNN = """
[model]
layers = [
  { type = "Conv2d", out_channels = 8, kernel_size = 3 },
  { type = "ReLU" },
  { type = "Flatten" },
  { type = "Linear", out_features = 10 },
]

[data]
name = "digits"
batch_size = 32
val_batch_size = 512

[train]
optimizer = "adam"
lr = 0.003
loss = "cross_entropy"
"""


def quantized(experiment: Experiment, method: str, path: str, folder: Path) -> Path:
    torch.manual_seed(0)
    state = build_experiment_model(experiment).module.state_dict()
    options = QuantizationOptions(method=method, path=path, calibration_samples=32)
    return quantize_experiment(experiment, state, options, folder, measure=NO_TIMING).model_path


@pytest.fixture(scope="module")
def digits_mlp() -> Experiment:
    return load_experiment(ROOT / "resources" / "presets" / "digits-mlp.toml")


@pytest.fixture(scope="module")
def files(
    tmp_path_factory: pytest.TempPathFactory, digits_mlp: Experiment
) -> dict[str, tuple[Experiment, Path]]:
    folder = tmp_path_factory.mktemp("quantized")
    cnn = parse_experiment(SMALL_CNN)
    return {
        "eager dynamic": (digits_mlp, quantized(digits_mlp, "dynamic", "eager", folder / "a")),
        "eager static": (cnn, quantized(cnn, "static", "eager", folder / "b")),
        "torchao dynamic": (digits_mlp, quantized(digits_mlp, "dynamic", "torchao", folder / "c")),
        "pt2e static": (digits_mlp, quantized(digits_mlp, "static", "pt2e", folder / "d")),
    }


@pytest.mark.parametrize(
    ("kind", "fmt"),
    [
        ("eager dynamic", "torchscript"),
        ("eager static", "torchscript"),
        ("eager static", "onnx"),
        ("pt2e static", "onnx"),
        ("pt2e static", "pt2"),
    ],
)
def test_quantized_models_export_where_the_format_takes_them(
    files: dict[str, tuple[Experiment, Path]], tmp_path: Path, kind: str, fmt: str
) -> None:
    experiment, weights = files[kind]
    assert is_quantized_file(weights)
    result = export_experiment(experiment, weights, fmt, tmp_path / f"model.{fmt}")
    assert result.passed, result.text()
    assert [check.batch_size for check in result.checks] == [8, 1]
    method, path = kind.split()[1], {"eager": "eager mode", "pt2e": "PT2E"}[kind.split()[0]]
    assert result.model_kind == f"{method} int8 ({path})"
    assert result.sample_source == "8 samples of the digits validation split"
    if kind == "eager static" and fmt == "onnx":
        assert "TorchScript-based exporter, which maps eager int8 kernels" in result.how


@pytest.mark.parametrize(
    ("kind", "fmt", "message"),
    [
        ("eager dynamic", "onnx", "ONNX has no operator for torch.ao's dynamic int8 Linear"),
        ("eager dynamic", "pt2", "packed torch.ao kernels.*it exports to torchscript;"),
        ("torchao dynamic", "pt2", "pickled objects.*quantize with --path eager"),
        ("torchao dynamic", "onnx", "tensor subclasses"),
        ("pt2e static", "torchscript", "quantized_decomposed ops.*it exports to onnx and pt2"),
    ],
)
def test_formats_that_cannot_take_a_quantized_model_say_why_and_what_works(
    files: dict[str, tuple[Experiment, Path]], tmp_path: Path, kind: str, fmt: str, message: str
) -> None:
    experiment, weights = files[kind]
    with pytest.raises(UnsupportedExport, match=f"cannot be exported to {fmt}: .*{message}"):
        export_experiment(experiment, weights, fmt, tmp_path / "model.out")
    assert not (tmp_path / "model.out").exists()


def test_a_quantized_file_of_another_model_is_refused(
    files: dict[str, tuple[Experiment, Path]], tmp_path: Path
) -> None:
    _experiment, weights = files["eager dynamic"]
    with pytest.raises(ExportError, match="quantized from a different model"):
        export_experiment(parse_experiment(SMALL_CNN), weights, "torchscript", tmp_path / "m.pt")
