"""Bring your own model: a class or factory in the user's .py file trains, saves, resumes,
quantizes and exports like a built model, on digits, offline."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.engine.test_script_export import run_scripts_in
from tests.own_models import MODELS, OwnModel, reference_model, write_project
from workbench.engine.checkpoints import load_strict, reconcile
from workbench.engine.errors import ModelCodeError
from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.insight.autograd_graph import autograd_graph
from workbench.engine.insight.evaluation import evaluate_classifier
from workbench.engine.insight.model_probe import ModelProbe
from workbench.engine.insight.predict import predict
from workbench.engine.model_builder import summary_text
from workbench.engine.model_source import model_label
from workbench.engine.module_summary import child_rows
from workbench.engine.quantization import (
    MeasureSettings,
    QuantizationOptions,
    load_quantized,
    quantize_experiment,
)
from workbench.engine.script_export import write_script
from workbench.engine.trainer import Trainer

FAST = MeasureSettings(repeats=2, warmup=1, threads=1, inference_options=False)
Trained = tuple[Path, Experiment, Path, dict[str, object]]  # project, experiment, run, summary


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Trained]:
    """Each model trained for one epoch by the engine, with its run folder."""
    runs = {}
    for name, model in MODELS.items():
        project = tmp_path_factory.mktemp(name)
        experiment = load_experiment(write_project(project, model))
        out = project / "run"
        summary = Trainer(experiment, out_dir=out).fit()
        runs[name] = (project, experiment, out, summary)
    return runs


@pytest.mark.parametrize("name", MODELS)
def test_each_model_trains_and_reports_its_own_parameter_count(
    trained: dict[str, Trained], name: str
) -> None:
    project, experiment, _out, summary = trained[name]
    model = MODELS[name]
    by_hand = reference_model(project, model)
    assert summary["parameters"] == model.parameters
    assert summary["parameters"] == sum(p.numel() for p in by_hand.parameters())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 1
    assert float(summary["train_loss"]) < math.log(10)  # type: ignore[arg-type]  # below chance
    assert model_label(experiment.model).startswith(f"{model.attribute} from {model.file}")


@pytest.mark.parametrize("name", MODELS)
def test_the_checkpoint_keys_are_the_class_attribute_names_and_load_into_it(
    trained: dict[str, Trained], name: str
) -> None:
    project, _experiment, out, _summary = trained[name]
    by_hand = reference_model(project, MODELS[name])
    weights = torch.load(out / "model.pth", weights_only=True)
    assert list(weights) == list(by_hand.state_dict())
    by_hand.load_state_dict(weights, strict=True)
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert list(checkpoint["model"]) == list(weights)
    if name == "cnn":
        assert list(weights)[:2] == ["conv1.weight", "conv1.bias"]
    if name == "residual":
        assert "layer1.bn2.running_mean" in weights


@pytest.mark.parametrize("name", MODELS)
def test_a_run_resumes_from_its_checkpoint(
    trained: dict[str, Trained], name: str, tmp_path: Path
) -> None:
    _project, experiment, out, _summary = trained[name]
    longer = dataclasses.replace(experiment, train=dataclasses.replace(experiment.train, epochs=2))
    summary = Trainer(longer, out_dir=tmp_path, resume_from=out / "checkpoint.pt").fit()
    assert summary["epochs_completed"] == 2
    assert summary["parameters"] == MODELS[name].parameters


@pytest.mark.parametrize("name", MODELS)
def test_each_model_quantizes_dynamically(
    trained: dict[str, Trained], name: str, tmp_path: Path
) -> None:
    _project, experiment, out, _summary = trained[name]
    state = torch.load(out / "model.pth", weights_only=True)
    outcome = quantize_experiment(
        experiment, state, QuantizationOptions(method="dynamic"), tmp_path, measure=FAST
    )
    assert outcome.report.reload_identical is True
    assert abs(outcome.report.accuracy_change_points or 0) <= 5.0
    reloaded = load_quantized(outcome.model_path)
    assert reloaded.experiment.model.module == experiment.model.module
    quantized_linears = [
        m
        for m in reloaded.module.modules()
        if type(m).__name__ in ("Linear", "DynamicQuantizedLinear")
    ]
    assert quantized_linears and not any(type(m) is nn.Linear for m in quantized_linears)


def test_the_exported_scripts_train_standalone_with_a_copy_of_the_users_file(
    trained: dict[str, Trained], tmp_path: Path
) -> None:
    folders = []
    for name, (_project, experiment, _out, _summary) in trained.items():
        folder = tmp_path / name
        folder.mkdir()
        write_script(experiment, folder / "train.py")
        model = MODELS[name]
        assert (folder / model.file).read_text() == model.source.lstrip()
        script = (folder / "train.py").read_text()
        assert f"from {Path(model.file).stem} import {model.attribute}" in script
        folders.append(folder)
    run_scripts_in(tmp_path, folders)
    for name, (project, _experiment, _out, summary) in trained.items():
        printed = (tmp_path / name / "stdout.txt").read_text()
        assert "main() must not run" not in printed
        assert f"Total number of trainable model parameters: {MODELS[name].parameters}" in printed
        # The same split, seed, initial weights and order as the engine's run: the same result.
        accuracy = float(summary["val_accuracy"])  # type: ignore[arg-type]
        assert f"Final validation accuracy: {accuracy:.2%}" in printed, printed[-2000:]
        weights = torch.load(tmp_path / name / "model.pth", weights_only=True)
        reference_model(project, MODELS[name]).load_state_dict(weights, strict=True)


def test_the_script_refuses_to_replace_a_different_file_of_the_same_name(
    trained: dict[str, Trained], tmp_path: Path
) -> None:
    _project, experiment, _out, _summary = trained["cnn"]
    (tmp_path / "net.py").write_text("# someone else's net.py\n")
    with pytest.raises(Exception, match=r"net\.py: exists and is not a copy of"):
        write_script(experiment, tmp_path / "train.py")
    assert not (tmp_path / "train.py").exists()


# --------------------------------------------------------------------------- summary


def test_the_summary_prints_the_model_and_a_hook_table(tmp_path: Path) -> None:
    experiment = load_experiment(write_project(tmp_path, MODELS["residual"]))
    text = summary_text(build_experiment_model(experiment))
    lines = text.splitlines()
    assert lines[0] == "ResNet("
    assert "module" in text and "output shape" in text
    table = {line.split()[0]: line.split() for line in lines if line.startswith(("  ", "s", "l"))}
    assert table["stem"][1:] == ["Conv2d", "[8,", "8,", "8]", "80", "4,608"]
    assert table["layer1"][1:3] == ["Block", "[8,"]
    assert table["layer1.conv1"][-2:] == ["576", "36,864"]
    assert "layer1.bn2" in table
    assert lines[-1] == "Total number of trainable model parameters: 1354"
    total = next(line for line in lines if line.startswith("total"))
    assert total.split()[-2:] == ["1,354", "78,416"]


def test_the_residual_forward_reaches_every_module(tmp_path: Path) -> None:
    built = build_experiment_model(load_experiment(write_project(tmp_path, MODELS["residual"])))
    rows = {row.path: row for row in built.module_rows}
    assert list(rows) == [
        "stem",
        "layer1",
        "layer1.conv1",
        "layer1.bn1",
        "layer1.conv2",
        "layer1.bn2",
        "pool",
        "fc",
    ]
    assert rows["fc"].output_shape == (10,) and rows["pool"].output_shape == (8, 1, 1)
    assert rows["layer1"].parameters == 576 * 2 + 32 and rows["layer1"].depth == 0
    assert rows["layer1.bn1"].parent == "layer1" and rows["layer1.bn1"].buffers == 17
    assert built.output_shape == (10,) and built.total_parameters == 1_354
    assert [row.name for row in child_rows(built.module_rows)] == ["stem", "layer1", "pool", "fc"]
    assert [row.name for row in child_rows(built.module_rows, "layer1")] == [
        *("conv1", "bn1", "conv2", "bn2"),
    ]


# --------------------------------------------------------------------------- precision, accumulation


def test_bf16_autocast_and_accumulation_train_an_own_model(tmp_path: Path) -> None:
    path = write_project(tmp_path, MODELS["cnn"], precision="bf16-mixed", accumulate_grad_batches=2)
    trainer = Trainer(load_experiment(path))
    summary = trainer.fit()
    assert summary["precision"] == "bf16-mixed" and summary["status"] == "completed"
    assert summary["steps"] == (len(trainer.loaders.train) + 1) // 2


# --------------------------------------------------------------------------- insight, reconcile


def test_insight_functions_work_on_an_own_model(trained: dict[str, Trained]) -> None:
    _project, experiment, out, _summary = trained["residual"]
    model = build_experiment_model(experiment).module
    model.load_state_dict(torch.load(out / "model.pth", weights_only=True))
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    result = evaluate_classifier(model, [(x, y)], [str(i) for i in range(10)])
    assert result.size == 16 and result.confusion.sum() == 16
    assert len(predict(model, x[0], [str(i) for i in range(10)]).probabilities) == 10
    snapshot = ModelProbe(bins=8).record(1, model, (x, y), nn.CrossEntropyLoss())
    assert snapshot.parameter("layer1.conv2.weight").grad_norm is not None
    assert snapshot.parameter("layer1.conv2.weight").layer == "layer1.conv2 (Conv2d)"
    graph = autograd_graph(model, x, y, nn.CrossEntropyLoss())
    assert {"stem.weight", "layer1.conv1.weight", "fc.bias"} <= graph.parameters
    assert any(node.name == "AddBackward0" for node in graph.nodes)  # the residual


def test_reconcile_fits_a_checkpoint_of_the_users_class_and_suggests_renames(
    trained: dict[str, Trained],
) -> None:
    _project, experiment, out, _summary = trained["cnn"]
    model = build_experiment_model(experiment).module
    weights = torch.load(out / "model.pth", weights_only=True)
    assert reconcile(weights, model).fits
    load_strict(model, weights)
    renamed = {key.replace("fc1.", "dense.", 1): value for key, value in weights.items()}
    result = reconcile(renamed, model)
    assert not result.fits and result.fits_after_renames
    assert result.suggested_renames["dense.weight"] == "fc1.weight"


def test_static_quantization_takes_a_traceable_model_through_its_traced_graph(
    trained: dict[str, Trained], tmp_path: Path
) -> None:
    _project, experiment, out, _summary = trained["residual"]
    state = torch.load(out / "model.pth", weights_only=True)
    options = QuantizationOptions(method="static", calibration_samples=64)
    outcome = quantize_experiment(experiment, state, options, tmp_path, measure=FAST)
    assert outcome.report.path == "pt2e" and outcome.report.reload_identical is True


def test_static_quantization_names_the_line_that_does_not_trace(tmp_path: Path) -> None:
    branchy = OwnModel(
        "branchy.py",
        MODELS["factory"].source.replace(
            "    return nn.Sequential(*layers)",
            "    return Branchy(nn.Sequential(*layers))\n\n\n"
            "class Branchy(nn.Module):\n"
            "    def __init__(self, inner):\n"
            "        super().__init__()\n"
            "        self.inner = inner\n\n"
            "    def forward(self, x):\n"
            "        if x.sum() > 0:\n"
            "            x = x * 2\n"
            "        return self.inner(x)\n",
        ),
        "make_mlp",
    )
    experiment = load_experiment(write_project(tmp_path, branchy))
    state = build_experiment_model(experiment).module.state_dict()
    with pytest.raises(ModelCodeError) as caught:
        quantize_experiment(
            experiment, state, QuantizationOptions(method="static"), tmp_path, measure=FAST
        )
    assert str(caught.value).startswith(
        "static quantization traces the model with torch.export, which cannot trace "
        f"{tmp_path / 'models' / 'branchy.py'}, line 20, in forward:\n    if x.sum() > 0:\n"
    )
    assert "or use --method dynamic, which needs no tracing" in str(caught.value)
    assert caught.value.line == 20
    assert not list(tmp_path.glob("model-static*"))
