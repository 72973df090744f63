"""Quantizing trained digits models: every method keeps accuracy, shrinks the file and reloads."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pytest
import torch
from torch import nn

from workbench.engine.experiment import Experiment, load_experiment, parse_experiment
from workbench.engine.quantization import (
    MeasureSettings,
    QuantizationCancelled,
    QuantizationError,
    QuantizationOptions,
    QuantizationOutcome,
    evaluate,
    load_quantized,
    quantize_experiment,
)
from workbench.engine.trainer import Trainer

FAST = MeasureSettings(repeats=2, warmup=1, threads=1)

SMALL_CNN = """
[model]
layers = [
  { type = "Conv2d", out_channels = 8, kernel_size = 3 },
  { type = "BatchNorm2d" },
  { type = "ReLU" },
  { type = "Flatten" },
  { type = "Linear", out_features = 10 },
]

[data]
name = "digits"
batch_size = 32
val_batch_size = 512

[train]
epochs = 3
optimizer = "adam"
lr = 0.003
loss = "cross_entropy"
seed = 1
"""

# The digits MLP with a SiLU and a LogSoftmax: neither has an int8 kernel in the static path.
MLP_WITH_FLOAT_LAYERS = """
[model]
layers = [
  { type = "Flatten" },
  { type = "Linear", out_features = 64 },
  { type = "SiLU" },
  { type = "Linear", out_features = 10 },
  { type = "LogSoftmax", dim = 1 },
]

[data]
name = "digits"
batch_size = 32
val_batch_size = 512

[train]
epochs = 3
optimizer = "adam"
lr = 0.003
loss = "nll"
seed = 1
"""


def trained(experiment: Experiment) -> dict[str, torch.Tensor]:
    trainer = Trainer(experiment)
    trainer.fit()
    return {key: value.detach().clone() for key, value in trainer.model.state_dict().items()}


@pytest.fixture(scope="module")
def digits_mlp(presets: Path) -> tuple[Experiment, dict[str, torch.Tensor]]:
    experiment = load_experiment(presets / "digits-mlp.toml")
    experiment = dataclasses.replace(
        experiment, train=dataclasses.replace(experiment.train, epochs=4)
    )
    return experiment, trained(experiment)


@pytest.fixture(scope="module")
def small_cnn() -> tuple[Experiment, dict[str, torch.Tensor]]:
    experiment = parse_experiment(SMALL_CNN)
    return experiment, trained(experiment)


@pytest.fixture(scope="module")
def presets() -> Path:
    return Path(__file__).resolve().parents[2] / "resources" / "presets"


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory,
    digits_mlp: tuple[Experiment, dict[str, torch.Tensor]],
    small_cnn: tuple[Experiment, dict[str, torch.Tensor]],
) -> dict[tuple[str, str], QuantizationOutcome]:
    """Each method on each model, once; the tests below read the results."""
    results = {}
    for model_name, (experiment, state) in (("mlp", digits_mlp), ("cnn", small_cnn)):
        for method in ("dynamic", "static", "qat"):
            out = tmp_path_factory.mktemp(f"{model_name}-{method}")
            options = QuantizationOptions(method=method, calibration_samples=128)
            results[model_name, method] = quantize_experiment(
                experiment, state, options, out, measure=FAST
            )
    return results


CASES = [(model, method) for model in ("mlp", "cnn") for method in ("dynamic", "static", "qat")]


@pytest.mark.parametrize(("model", "method"), CASES)
def test_accuracy_stays_within_two_points(
    outcomes: dict[tuple[str, str], QuantizationOutcome], model: str, method: str
) -> None:
    report = outcomes[model, method].report
    assert report.float_model.accuracy is not None and report.float_model.accuracy > 0.7
    assert report.accuracy_change_points is not None
    assert abs(report.accuracy_change_points) <= 2.0
    assert len(report.quantized.per_class) == 10


@pytest.mark.parametrize(("model", "method"), CASES)
def test_saved_file_is_smaller_and_reloads_with_the_same_predictions(
    outcomes: dict[tuple[str, str], QuantizationOutcome], model: str, method: str
) -> None:
    outcome = outcomes[model, method]
    report = outcome.report
    assert outcome.model_path.is_file()
    assert report.quantized.size_bytes == outcome.model_path.stat().st_size
    assert report.quantized.size_bytes < report.float_model.size_bytes
    assert report.reload_identical is True
    # Loading again by hand (a fresh process would do just this) predicts the same classes.
    loaded = load_quantized(outcome.model_path)
    assert loaded.recipe.method == method
    experiment = loaded.experiment
    from workbench.engine.datasets import make_loaders

    val = list(make_loaders(experiment.data, experiment.train.seed).val)
    first = evaluate(outcome.model, val, experiment.train.loss, 10)
    again = evaluate(loaded.module, val, experiment.train.loss, 10)
    assert first.predictions is not None and again.predictions is not None
    assert torch.equal(first.predictions, again.predictions)


def test_report_json_sits_next_to_the_model(
    outcomes: dict[tuple[str, str], QuantizationOutcome],
) -> None:
    outcome = outcomes["cnn", "static"]
    assert outcome.report_path == outcome.model_path.with_name("model-static-int8.report.json")
    data = json.loads(outcome.report_path.read_text())
    assert data["method"] == "static" and data["path"] == "eager" and data["backend"]
    assert data["float"]["latency"]["batch1_ms"] > 0
    assert data["quantized"]["latency"]["batch64_ms"] > 0
    assert data["quantized"]["latency"]["throughput_per_s"] > 0
    assert data["size_ratio"] > 1
    assert data["reload_identical"] is True
    names = [option["name"] for option in data["inference_options"]]
    assert names == [
        "eval, autograd on",
        "torch.no_grad",
        "torch.inference_mode",
        "channels_last",
        "torch.export",
        "torch.compile",
    ]


def test_cnn_fuses_conv_batchnorm_relu_and_mlp_fuses_linear_relu(
    outcomes: dict[tuple[str, str], QuantizationOutcome],
) -> None:
    cnn = load_quantized(outcomes["cnn", "static"].model_path)
    assert cnn.recipe.fused == (("0", "1", "2"),)
    assert _kind(cnn.module.get_submodule("0")) == "intrinsic.quantized.ConvReLU2d"
    mlp = load_quantized(outcomes["mlp", "qat"].model_path)
    assert mlp.recipe.fused == (("1", "2"), ("3", "4"))
    assert _kind(mlp.module.get_submodule("1")) == "intrinsic.quantized.LinearReLU"


def _kind(module: nn.Module) -> str:
    """'intrinsic.quantized.ConvReLU2d' for torch.ao.nn.intrinsic.quantized...ConvReLU2d."""
    package = type(module).__module__.removeprefix("torch.ao.nn.").split(".modules")[0]
    return f"{package}.{type(module).__name__}"


def test_dynamic_keeps_convolutions_in_float_with_a_note(
    outcomes: dict[tuple[str, str], QuantizationOutcome],
) -> None:
    report = outcomes["cnn", "dynamic"].report
    assert any(note.startswith("layer 0 (Conv2d)") and "float" in note for note in report.notes)
    module = outcomes["cnn", "dynamic"].model
    assert isinstance(module.get_submodule("0"), nn.Conv2d)
    assert type(module.get_submodule("4")).__name__ == "Linear"
    assert "quantized" in type(module.get_submodule("4")).__module__


def test_inference_options_say_what_does_not_apply(
    outcomes: dict[tuple[str, str], QuantizationOutcome],
) -> None:
    mlp = {o.name: o for o in outcomes["mlp", "static"].report.options}
    cnn = {o.name: o for o in outcomes["cnn", "static"].report.options}
    assert mlp["channels_last"].status == "not applicable"
    assert cnn["channels_last"].status == "measured" and cnn["channels_last"].latency is not None
    assert mlp["torch.compile"].status == "skipped"
    assert "--compile" in mlp["torch.compile"].detail
    assert mlp["torch.inference_mode"].latency is not None


def test_the_text_card_is_an_aligned_table(
    outcomes: dict[tuple[str, str], QuantizationOutcome],
) -> None:
    text = outcomes["mlp", "dynamic"].report.text()
    lines = text.splitlines()
    header = next(line for line in lines if line.rstrip().endswith("change"))
    rows = [line for line in lines if line.startswith(("accuracy", "size on disk", "latency"))]
    assert len(rows) == 4
    assert all(len(row) == len(header.rstrip()) for row in rows)
    assert "x smaller" in text and "class" in text
    assert "(reloaded, same predictions)" in text


def test_layers_without_int8_kernels_stay_float_with_a_note(tmp_path: Path) -> None:
    experiment = parse_experiment(MLP_WITH_FLOAT_LAYERS)
    state = trained(experiment)
    outcome = quantize_experiment(
        experiment, state, QuantizationOptions(method="static"), tmp_path, measure=FAST
    )
    notes = "\n".join(outcome.report.notes)
    assert "layer 2 (SiLU)" in notes and "layer 4 (LogSoftmax)" in notes
    assert "kept in float" in notes
    assert "Could not run" not in notes
    assert isinstance(outcome.model.get_submodule("2"), nn.SiLU)
    assert type(outcome.model.get_submodule("dequant_before_2")).__name__ == "DeQuantize"
    assert type(outcome.model.get_submodule("quant_before_3")).__name__ == "Quantize"
    assert outcome.report.accuracy_change_points is not None
    assert abs(outcome.report.accuracy_change_points) <= 2.0
    assert load_quantized(outcome.model_path).recipe.float_layers == (2, 4)


def test_cancelling_writes_nothing(
    tmp_path: Path, digits_mlp: tuple[Experiment, dict[str, torch.Tensor]]
) -> None:
    experiment, state = digits_mlp
    stop = threading.Event()
    stop.set()
    with pytest.raises(QuantizationCancelled):
        quantize_experiment(
            experiment, state, QuantizationOptions(method="static"), tmp_path, stop=stop
        )
    assert list(tmp_path.iterdir()) == []


def test_progress_goes_from_zero_to_done(
    tmp_path: Path, digits_mlp: tuple[Experiment, dict[str, torch.Tensor]]
) -> None:
    experiment, state = digits_mlp
    seen: list[tuple[str, float]] = []
    quantize_experiment(
        experiment,
        state,
        QuantizationOptions(method="qat"),
        tmp_path / "m.pth",
        measure=FAST,
        progress=lambda text, fraction: seen.append((text, fraction)),
    )
    assert seen[0][1] == 0.0 and seen[-1] == ("done", 1.0)
    assert any(text.startswith("QAT epoch 1/1") for text, _ in seen)
    fractions = [fraction for _, fraction in seen]
    assert fractions == sorted(fractions)
    assert (tmp_path / "m.pth").is_file() and (tmp_path / "m.report.json").is_file()


def test_dynamic_without_linear_layers_is_refused(tmp_path: Path) -> None:
    conv_only = '[model]\nlayers = [{ type = "Conv2d", out_channels = 10, kernel_size = 8 }, '
    conv_only += '{ type = "Flatten" }]\n[data]\nname = "digits"\n'
    experiment = parse_experiment(conv_only)
    state = _fresh_state(experiment)
    with pytest.raises(QuantizationError, match=r"Linear .* none; use --method static"):
        quantize_experiment(experiment, state, QuantizationOptions(method="dynamic"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def _fresh_state(experiment: Experiment) -> dict[str, torch.Tensor]:
    from workbench.engine.experiment_model import build_experiment_model

    return dict(build_experiment_model(experiment).module.state_dict())


def test_weights_that_do_not_fit_are_named(
    tmp_path: Path, digits_mlp: tuple[Experiment, dict[str, torch.Tensor]]
) -> None:
    experiment, state = digits_mlp
    wrong = {key.replace("1.", "9."): value for key, value in state.items()}
    from workbench.engine.errors import CheckpointError

    with pytest.raises(CheckpointError, match="does not fit the model"):
        quantize_experiment(experiment, wrong, QuantizationOptions(), tmp_path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"calibration_samples": 0}, "calibration: 0 samples is too few"),
        ({"qat_epochs": 0}, "qat-epochs: 0 is too few"),
        ({"method": "int4"}, "method: 'int4' is not known; choose one of dynamic, static, qat"),
        ({"method": "static", "path": "torchao"}, "path 'torchao' runs dynamic quantization only"),
        ({"method": "dynamic", "path": "pt2e"}, "path 'pt2e' runs static and qat"),
        ({"observer": "percentile"}, "observer: 'percentile' is not known"),
    ],
)
def test_bad_options_get_one_clear_message(changes: dict[str, object], message: str) -> None:
    with pytest.raises(QuantizationError) as caught:
        QuantizationOptions(**changes)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_loading_something_else_is_refused_clearly(tmp_path: Path) -> None:
    float_file = tmp_path / "model.pth"
    torch.save({"0.weight": torch.zeros(2, 2)}, float_file)
    with pytest.raises(QuantizationError, match="not a quantized model saved by workbench"):
        load_quantized(float_file)
    text_file = tmp_path / "notes.pth"
    text_file.write_text("hello")
    with pytest.raises(QuantizationError, match="not a quantized model saved by workbench"):
        load_quantized(text_file)
    with pytest.raises(QuantizationError, match="no such file"):
        load_quantized(tmp_path / "missing.pth")
