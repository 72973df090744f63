"""Renders the insight widgets with realistic data, as the docs show them.

Run with WORKBENCH_SCREENSHOTS=docs/img to refresh docs/img/*.png; otherwise the pictures go
to a temporary folder and the test checks they are real pictures, not blank widgets.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot
from torch import nn

from tests import factories
from tests.conftest import PRESETS
from workbench.engine.datasets import load_splits
from workbench.engine.experiment import load_experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.insight.autograd_graph import autograd_graph
from workbench.engine.insight.decision_boundary import LiveBoundary, padded_ranges
from workbench.engine.insight.doctor import diagnose
from workbench.engine.insight.evaluation import SampleSet, evaluate_classifier
from workbench.engine.insight.model_probe import ModelProbe
from workbench.engine.insight.predict import input_normalization
from workbench.engine.reports import EpochReport
from workbench.engine.trainer import Trainer
from workbench.ui.insight.decision_boundary_view import DecisionBoundaryView
from workbench.ui.insight.doctor_banner import DoctorBanner
from workbench.ui.insight.evaluation_view import EvaluationView
from workbench.ui.insight.graph_view import AutogradGraphView
from workbench.ui.insight.model_probe_view import ModelProbeView
from workbench.ui.insight.predict_view import PredictView


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = os.environ.get("WORKBENCH_SCREENSHOTS")
    return Path(folder) if folder else tmp_path


def save(widget: QWidget, qtbot: QtBot, path: Path) -> QImage:
    widget.show()
    qtbot.waitExposed(widget)
    assert widget.grab().save(str(path))
    image = QImage(str(path))
    colours = {
        image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)
    }
    assert len(colours) > 20, f"{path.name} looks blank"
    return image


def trained(name: str, epochs: int) -> Trainer:
    experiment = load_experiment(PRESETS / f"{name}.toml")
    train = dataclasses.replace(experiment.train, epochs=epochs, device="cpu")
    return Trainer(dataclasses.replace(experiment, train=train))


def test_decision_boundary_of_the_moons_mlp(qtbot: QtBot, out: Path) -> None:
    trainer = trained("moons-mlp", 30)
    trainer.prepare()
    view = DecisionBoundaryView()
    qtbot.addWidget(view)
    view.resize(640, 520)
    train, val = trainer.loaders.train, trainer.loaders.val
    view.set_data(
        train.x.numpy(),
        train.y.numpy(),
        val.x.numpy(),
        val.y.numpy(),
        trainer.loaders.info.class_names,
    )
    trainer.observer = LiveBoundary(
        lambda: trainer.model,
        *padded_ranges(train.x),
        on_grid=lambda epoch, batch, grid: view.record_epoch(epoch, grid) if batch < 0 else None,
    )
    trainer.fit()
    assert view.history.epochs == list(range(31))
    save(view, qtbot, out / "decision-boundary.png")


def test_confusion_matrix_of_the_digits_mlp(qtbot: QtBot, out: Path) -> None:
    trainer = trained("digits-mlp", 2)
    trainer.fit()
    info = trainer.loaders.info
    result = evaluate_classifier(trainer.model, trainer.loaders.val, info.class_names)
    splits = load_splits(trainer.experiment.data, trainer.experiment.train.seed)
    view = EvaluationView()
    qtbot.addWidget(view)
    view.resize(1000, 560)
    view.set_evaluation(result, SampleSet(splits.val, info.kind, info.class_names))
    off = result.confusion.copy()
    np.fill_diagonal(off, 0)
    view.show_cell(*(int(v) for v in np.unravel_index(off.argmax(), off.shape)))
    save(view, qtbot, out / "confusion-matrix.png")


def test_autograd_graph_of_the_toy_mlp(qtbot: QtBot, out: Path) -> None:
    model = build_experiment_model(load_experiment(PRESETS / "toy-mlp.toml")).module
    graph = autograd_graph(
        model, torch.randn(4, 2), torch.tensor([0, 1, 0, 1]), nn.CrossEntropyLoss()
    )
    view = AutogradGraphView()
    qtbot.addWidget(view)
    view.resize(760, 640)
    view.set_graph(graph)
    view.show()
    view.fit()
    save(view, qtbot, out / "autograd-graph.png")


def test_predict_a_drawn_digit(qtbot: QtBot, out: Path) -> None:
    trainer = trained("digits-mlp", 10)
    trainer.fit()
    info, data = trainer.loaders.info, trainer.experiment.data
    view = PredictView()
    qtbot.addWidget(view)
    view.resize(820, 460)
    samples = SampleSet(load_splits(data, 1).val, info.kind, info.class_names)
    view.set_task(info.kind, info.input_shape, input_normalization(data), samples)
    view.set_model(trainer.model, info.class_names)
    view.pad.stroke([(70, 60), (210, 60), (150, 230)])  # a 7
    prediction = view.predict_drawing()
    assert prediction is not None and prediction.predicted_name == "7"
    save(view, qtbot, out / "predict.png")


def test_model_probe_and_doctor(qtbot: QtBot, out: Path) -> None:
    torch.manual_seed(0)
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.as_tensor(digits.images, dtype=torch.float32).div(16).unsqueeze(1)
    y = torch.as_tensor(digits.target)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(512, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    probe = ModelProbe()
    probe.record(0, model, (x[1400:1656], y[1400:1656]), nn.CrossEntropyLoss())
    for epoch in range(1, 6):
        for start in range(0, 1400, 64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(
                model(x[start : start + 64]), y[start : start + 64]
            ).backward()
            optimizer.step()
        probe.record(epoch, model, (x[1400:1656], y[1400:1656]), nn.CrossEntropyLoss())
    from workbench.engine.insight.model_probe import feature_maps, first_conv_filters

    view = ModelProbeView()
    qtbot.addWidget(view)
    view.resize(900, 640)
    view.set_probe(probe)
    view.set_filters(first_conv_filters(model))
    view.set_feature_maps(feature_maps(model, x[1500]))
    save(view, qtbot, out / "model-probe.png")

    def epoch(n: int, train: float, val: float, **accuracy: float) -> EpochReport:
        return factories.epoch_report(
            n, epochs=20, train_loss=train, train_accuracy=accuracy.get("t"), val_loss=val,
            val_accuracy=accuracy.get("v"), samples_per_second=1e3,
        )  # fmt: skip

    history = [
        epoch(1, 1.0, 1.0),
        epoch(2, 0.6, 0.7),
        epoch(3, 0.4, 0.75),
        epoch(4, 0.3, 0.8),
        epoch(5, 0.2, 0.9, t=0.99, v=0.8),
    ]
    banner = DoctorBanner()
    qtbot.addWidget(banner)
    banner.resize(760, 100)
    banner.set_diagnoses(diagnose(history))
    save(banner, qtbot, out / "doctor-banner.png")
