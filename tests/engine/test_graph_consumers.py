"""Everything that uses a model works on graph models: training, checkpoints and reconcile,
insight and quantization, on the residual preset trained offline on digits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.specs import without_names
from workbench.cli import main
from workbench.engine.checkpoints import reconcile
from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.insight.autograd_graph import autograd_graph
from workbench.engine.insight.model_probe import ModelProbe
from workbench.engine.quantization import (
    MeasureSettings,
    QuantizationError,
    QuantizationOptions,
    load_quantized,
    quantize_experiment,
)
from workbench.engine.trainer import Trainer

FAST = MeasureSettings(repeats=2, warmup=1, threads=1)


def residual_on_digits(presets: Path, epochs: int = 2) -> Experiment:
    """The cifar10-resnet preset with digits as its data: 8x8 grayscale, offline."""
    experiment = load_experiment(presets / "cifar10-resnet.toml")
    data = dataclasses.replace(experiment.data, name="digits", batch_size=32, val_batch_size=512)
    train = dataclasses.replace(experiment.train, epochs=epochs, lr=0.01, device="cpu")
    return dataclasses.replace(experiment, data=data, train=train)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Experiment, Path, dict[str, object]]:
    presets = Path(__file__).resolve().parents[2] / "resources" / "presets"
    experiment = residual_on_digits(presets)
    out = tmp_path_factory.mktemp("resnet")
    summary = Trainer(experiment, out_dir=out).fit()
    return experiment, out, summary


def test_the_residual_preset_trains_on_digits_and_saves_nested_keys(
    trained: tuple[Experiment, Path, dict[str, object]],
) -> None:
    experiment, out, summary = trained
    assert summary["parameters"] == 9_690  # 9,978 on 3-channel CIFAR-10 images
    assert float(summary["val_accuracy"]) > 0.8  # type: ignore[arg-type]
    weights = torch.load(out / "model.pth", weights_only=True)
    assert "layer1.0.conv1.weight" in weights and "layer1.1.bn2.running_mean" in weights
    model = build_experiment_model(experiment).module
    model.load_state_dict(weights, strict=True)
    assert isinstance(model, nn.Sequential) and type(model.layer1[0]).__name__ == "GraphModel"


def test_a_run_of_the_residual_preset_resumes(
    trained: tuple[Experiment, Path, dict[str, object]], tmp_path: Path
) -> None:
    experiment, out, _ = trained
    longer = dataclasses.replace(experiment, train=dataclasses.replace(experiment.train, epochs=3))
    summary = Trainer(longer, out_dir=tmp_path, resume_from=out / "checkpoint.pt").fit()
    assert summary["epochs_completed"] == 3


# --------------------------------------------------------------------------- checkpoints


def test_an_old_mnist_checkpoint_reconciles_with_the_renamed_preset(presets: Path) -> None:
    renamed = build_experiment_model(load_experiment(presets / "mnist-cnn.toml")).module
    old_preset = without_names(load_experiment(presets / "mnist-cnn.toml"))
    old = build_experiment_model(old_preset).module.state_dict()
    assert list(old)[:2] == ["0.weight", "0.bias"]

    result = reconcile(old, renamed)
    assert not result.fits and result.fits_after_renames
    assert result.module_renames == {"0": "conv1", "2": "conv2", "7": "fc1", "10": "fc2"}
    assert result.suggested_renames["7.weight"] == "fc1.weight"
    assert len(result.suggested_renames) == 8


def test_reconcile_cli_fixes_an_old_checkpoint_and_edit_renames_conv1(
    presets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.pth"
    model = build_experiment_model(without_names(load_experiment(presets / "mnist-cnn.toml")))
    torch.save(model.module.state_dict(), old)
    fixed = tmp_path / "fixed.pth"
    assert main(["reconcile", str(old), "mnist-cnn", "--apply", "-o", str(fixed)]) == 0
    assert "0.weight" in capsys.readouterr().out
    keys = list(torch.load(fixed, weights_only=True))
    assert keys[:2] == ["conv1.weight", "conv1.bias"]

    embedded = tmp_path / "embed.pth"
    assert main(["edit", str(fixed), "-o", str(embedded), "--rename", "conv1=embed_1"]) == 0
    renamed = torch.load(embedded, weights_only=True)
    assert list(renamed)[:2] == ["embed_1.weight", "embed_1.bias"] and "conv2.weight" in renamed


# --------------------------------------------------------------------------- insight


def test_the_probe_measures_every_node_of_a_graph(presets: Path) -> None:
    experiment = residual_on_digits(presets)
    torch.manual_seed(0)
    model = build_experiment_model(experiment).module
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    snapshot = ModelProbe(bins=8).record(1, model, (x, y), nn.CrossEntropyLoss())
    conv = snapshot.parameter("layer1.1.conv2.weight")
    assert conv.layer == "layer1.1.conv2 (Conv2d)" and conv.grad_norm is not None
    assert [a.layer for a in snapshot.activations] == [
        *("relu", "layer1.0.relu1", "layer1.0.relu2", "layer1.1.relu1", "layer1.1.relu2"),
    ]
    graph = autograd_graph(model, x, y, nn.CrossEntropyLoss())
    assert "layer1.0.conv1.weight" in graph.parameters
    assert sum(node.name == "AddBackward0" for node in graph.nodes) == 2  # the two skips


# --------------------------------------------------------------------------- quantization


def test_dynamic_quantization_of_a_graph_keeps_its_convolutions_float(
    trained: tuple[Experiment, Path, dict[str, object]], tmp_path: Path
) -> None:
    experiment, out, _ = trained
    state = torch.load(out / "model.pth", weights_only=True)
    outcome = quantize_experiment(
        experiment, state, QuantizationOptions(method="dynamic"), tmp_path, measure=FAST
    )
    assert outcome.report.reload_identical is True
    assert "layer 3 'layer1' (Sequential): dynamic quantization covers Linear" in "\n".join(
        outcome.report.notes
    )
    assert abs(outcome.report.accuracy_change_points or 0) <= 2.0


def test_static_quantization_of_a_residual_net_goes_through_export(
    trained: tuple[Experiment, Path, dict[str, object]], tmp_path: Path
) -> None:
    experiment, out, _ = trained
    state = torch.load(out / "model.pth", weights_only=True)
    options = QuantizationOptions(method="static", calibration_samples=64)
    outcome = quantize_experiment(experiment, state, options, tmp_path, measure=FAST)
    report = outcome.report
    assert (report.path, outcome.model_path.suffix) == ("pt2e", ".pt2")
    assert report.path_reason.startswith("auto: the model has skip connections or blocks")
    assert report.reload_identical is True
    assert report.accuracy_change_points is not None and abs(report.accuracy_change_points) <= 3.0
    loaded = load_quantized(outcome.model_path)
    assert any("quantize" in str(node.target) for node in loaded.module.graph.nodes)  # type: ignore[union-attr]


def test_the_eager_path_asked_for_on_a_graph_says_what_to_use(
    trained: tuple[Experiment, Path, dict[str, object]], tmp_path: Path
) -> None:
    experiment, out, _ = trained
    state = torch.load(out / "model.pth", weights_only=True)
    options = QuantizationOptions(method="static", path="eager", calibration_samples=16)
    with pytest.raises(QuantizationError) as caught:
        quantize_experiment(experiment, state, options, tmp_path, measure=FAST)
    assert str(caught.value) == (
        "path 'eager' quantizes a plain layer stack; this model has skip connections or blocks: "
        "use path 'pt2e' (or auto), which quantizes its traced graph"
    )
    assert not list(tmp_path.iterdir())


def test_static_eager_quantization_keeps_a_named_stacks_keys(presets: Path, tmp_path: Path) -> None:
    experiment = load_experiment(presets / "tutorial-mlp.toml")
    experiment = dataclasses.replace(
        experiment,
        model=dataclasses.replace(experiment.model, input_shape=None),
        train=dataclasses.replace(experiment.train, epochs=3),
    )
    trainer = Trainer(experiment)
    trainer.fit()
    state = trainer.model.state_dict()
    options = QuantizationOptions(method="static", calibration_samples=64)
    outcome = quantize_experiment(experiment, state, options, tmp_path, measure=FAST)
    assert outcome.report.path == "eager" and outcome.report.reload_identical is True
    names = [name for name, _ in outcome.model.named_children()]
    assert names[:3] == ["quant_before_fc1", "fc1", "relu1"]
