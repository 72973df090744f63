"""The insight panel wired to a real RunSession: what each tab shows after real runs."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtGui import QImage
from pytestqt.qtbot import QtBot

from tests.conftest import PRESETS
from workbench.controllers import insight_bridge
from workbench.controllers.run_session import RunSession
from workbench.engine.experiment import Experiment, LayerSpec, load_experiment
from workbench.engine.script_export import export_script
from workbench.ui.insight.decision_boundary_view import grid_image
from workbench.ui.insight_panel import InsightPanel
from workbench.ui.project_document import ProjectDocument


def preset(name: str, epochs: int, **train: Any) -> Experiment:
    experiment = load_experiment(PRESETS / f"{name}.toml")
    spec = dataclasses.replace(experiment.train, epochs=epochs, device="cpu", **train)
    return dataclasses.replace(experiment, train=spec)


Rig = tuple[InsightPanel, RunSession, ProjectDocument]


@pytest.fixture
def rig(qtbot: QtBot) -> Iterator[Rig]:
    document = ProjectDocument(preset("moons-mlp", 3))
    controller = RunSession()
    panel = InsightPanel(document, controller)
    qtbot.addWidget(panel)
    panel.resize(900, 600)
    yield panel, controller, document
    controller.shutdown()
    panel.shutdown()


def train(qtbot: QtBot, rig: Rig, experiment: Experiment | None = None) -> None:
    panel, controller, document = rig
    experiment = experiment or document.experiment
    with qtbot.waitSignal(controller.run_ended, timeout=60_000):
        controller.start(experiment)
    epochs = experiment.train.epochs
    qtbot.waitUntil(lambda: panel.evaluated_epoch == epochs, timeout=30_000)


def test_a_moons_run_draws_one_boundary_per_epoch_that_changes(qtbot: QtBot, rig: Rig) -> None:
    panel = rig[0]
    train(qtbot, rig)
    boundary = panel.boundary
    assert panel.boundary_pages.currentWidget() is boundary
    assert boundary.history.epochs == [0, 1, 2, 3]  # 0: before training
    first, last = grid_image(boundary.history.at(1)), grid_image(boundary.history.at(3))
    assert not np.array_equal(first, last)
    assert boundary.current is boundary.history.at(3)  # following the run to its end
    assert len(boundary.train_points) == 2  # one scatter per class
    assert panel.status.isHidden()


def test_the_evaluation_counts_every_validation_sample(qtbot: QtBot, rig: Rig) -> None:
    panel = rig[0]
    train(qtbot, rig)
    result = panel.evaluation.result
    assert result is not None and panel.context is not None
    assert int(result.confusion.sum()) == panel.context.info.val_size == 125
    assert "125 validation samples" in panel.evaluation.accuracy.text()
    assert result.class_names == ("upper moon", "lower moon")
    # The last epoch's snapshot is what the tabs ask; it agrees with the run's own report.
    run = rig[1].last_result
    assert run is not None
    assert result.accuracy == pytest.approx(run.history[-1].val_accuracy)


def test_predict_answers_with_probabilities_that_sum_to_one(qtbot: QtBot, rig: Rig) -> None:
    panel = rig[0]
    train(qtbot, rig)
    prediction = panel.predict.predict_point(1.8, -0.3)  # deep in the lower moon
    assert prediction is not None
    assert float(prediction.probabilities.sum()) == pytest.approx(1.0, abs=1e-6)
    assert prediction.predicted_name == "lower moon"
    sample = panel.predict.predict_sample_index(0)
    assert sample is not None and float(sample.probabilities.sum()) == pytest.approx(1.0, abs=1e-6)


def test_inside_the_model_has_a_probe_per_epoch_and_step_gradient_norms(
    qtbot: QtBot, rig: Rig
) -> None:
    panel, controller, _ = rig
    train(qtbot, rig)
    assert [snapshot.epoch for snapshot in panel.probe.snapshots] == [1, 2, 3]
    assert panel.probe_view.parameter.count() == 6  # 3 Linear layers: weight and bias
    run = controller.last_result
    assert run is not None
    steps = panel.norm_steps
    assert steps[0] == 1 and steps == sorted(set(steps)) and steps[-1] <= run.summary["steps"]
    assert len(panel.norm_values) == len(steps) and all(value > 0 for value in panel.norm_values)
    assert panel.probe_view.filters_plot.isHidden()  # no conv layer, no filters


def test_the_graph_shows_the_stack_then_the_trained_model(qtbot: QtBot, rig: Rig) -> None:
    panel = rig[0]
    with qtbot.waitSignal(panel.graph_updated, timeout=30_000):
        panel.show_tab("graph")
    graph = panel.graph_view.graph
    assert graph is not None and "AddmmBackward0" in graph.names
    assert graph.parameters == {f"{i}.{kind}" for i in (0, 2, 4) for kind in ("weight", "bias")}
    assert "current layer stack" in panel.graph_caption.text()
    panel.show_tab("code")
    train(qtbot, rig)
    with qtbot.waitSignal(panel.graph_updated, timeout=30_000):
        panel.show_tab("graph")
    assert "trained model" in panel.graph_caption.text()
    assert "TanhBackward0" in panel.graph_view.graph.names  # type: ignore[union-attr]


def test_code_tab_shows_the_script_follows_edits_and_saves_it(
    qtbot: QtBot, rig: Rig, tmp_path: Path
) -> None:
    panel, _, document = rig
    with qtbot.waitSignal(panel.code_updated):
        panel.show_tab("code")
    text = panel.code_view.toPlainText()
    assert "import torch" in text and "def train_one_epoch" in text and "for epoch in" in text
    assert "EPOCHS = 3" in text
    with qtbot.waitSignal(panel.code_updated, timeout=5_000):
        document.update_train(epochs=7)
    assert "EPOCHS = 7" in panel.code_view.toPlainText()
    written = panel.save_script(tmp_path / "train.py")
    assert written is not None
    assert written.read_text() == export_script(document.experiment)
    assert "train.py" in panel.code_caption.text()


def test_an_experiment_that_cannot_export_says_why(qtbot: QtBot, rig: Rig) -> None:
    panel, _, document = rig
    with qtbot.waitSignal(panel.code_updated):
        panel.show_tab("code")
    with qtbot.waitSignal(panel.code_updated, timeout=5_000):
        document.update_data(options={"n_samples": 500, "noise": 0.2, "seed": 0, "bogus": 1})
    text = panel.code_view.toPlainText()
    assert text.startswith("# This experiment cannot be exported yet:") and "bogus" in text
    assert not panel.save_script_button.isEnabled()


def test_digits_show_the_2d_note_and_a_gallery_of_mistakes(qtbot: QtBot, rig: Rig) -> None:
    panel, _, document = rig
    assert panel.boundary_pages.currentWidget() is panel.boundary  # moons, before any run
    document.replace(preset("digits-mlp", 1), None)
    assert panel.boundary_pages.currentWidget() is panel.boundary_note
    assert "needs a 2-D dataset" in panel.boundary_note.text()
    train(qtbot, rig)
    note = panel.boundary_note.text()
    assert panel.boundary_pages.currentWidget() is panel.boundary_note
    assert "<b>digits</b> has inputs of shape [1,&nbsp;8,&nbsp;8] (64 numbers)" in note
    result = panel.evaluation.result
    assert result is not None and int(result.confusion.sum()) == 359
    assert panel.predict.kind == "image"
    wrong = result.misclassified()
    assert len(wrong)
    true, predicted = int(result.targets[wrong[0]]), int(result.predictions[wrong[0]])
    assert panel.evaluation.show_cell(true, predicted)[0] == int(wrong[0])
    assert panel.evaluation.gallery.count() >= 1  # pictures, worst first


def test_a_diverging_run_gets_the_doctors_advice(qtbot: QtBot, rig: Rig) -> None:
    panel, controller, document = rig
    relu = tuple(
        LayerSpec("ReLU") if layer.type == "Tanh" else layer
        for layer in document.experiment.model.layers
    )
    experiment = preset("moons-mlp", 3, optimizer="sgd", lr=1e6)
    experiment = dataclasses.replace(
        experiment, model=dataclasses.replace(experiment.model, layers=relu)
    )
    with qtbot.waitSignal(controller.run_failed, timeout=30_000):
        controller.start(experiment)
    qtbot.waitUntil(lambda: not controller.is_running)
    assert not panel.banner.isHidden()
    assert "Training diverged" in panel.banner.text()
    assert "1e+06" in panel.banner.text()


def test_a_failing_view_never_stops_the_training(
    qtbot: QtBot, rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    panel, controller, _ = rig

    def broken_probe(*args: object, **kwargs: object) -> None:
        raise RuntimeError("probe exploded")

    monkeypatch.setattr(insight_bridge, "probe", broken_probe)
    summaries: list[dict[str, object]] = []
    controller.run_succeeded.connect(summaries.append)
    with qtbot.waitSignal(controller.run_ended, timeout=60_000):
        controller.start(rig[2].experiment)
    assert summaries and summaries[0]["status"] == "completed"
    assert "stopped following this run: RuntimeError: probe exploded" in panel.status.text()
    assert not panel.status.isHidden()


def test_shutdown_unregisters_the_panel_from_the_controller(qtbot: QtBot, rig: Rig) -> None:
    panel, controller, document = rig
    panel.shutdown()
    with qtbot.waitSignal(controller.run_ended, timeout=60_000):
        controller.start(document.experiment)
    assert panel.context is None and panel.boundary.history.epochs == []


def test_the_boundary_tab_after_22_epochs_is_a_real_picture(
    qtbot: QtBot, rig: Rig, tmp_path: Path
) -> None:
    """WORKBENCH_SCREENSHOTS=docs/img refreshes docs/img/insight-panel.png."""
    panel = rig[0]
    folder = os.environ.get("WORKBENCH_SCREENSHOTS")
    path = (Path(folder) if folder else tmp_path) / "insight-panel.png"
    train(qtbot, rig, preset("moons-mlp", 22))
    panel.resize(1000, 680)
    panel.show()
    qtbot.waitExposed(panel)
    assert panel.grab().save(str(path))
    image = QImage(str(path))
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, 600, 7)}
    assert image.width() == 1000 and len(colours) > 50, "the picture looks blank"
    assert panel.boundary.epoch_label.text() == "epoch 22"


def test_live_frames_show_without_entering_the_replay_history(qtbot: QtBot, rig: Rig) -> None:
    panel = rig[0]
    train(qtbot, rig)
    frame = dataclasses.replace(panel.boundary.history.at(1))  # any grid will do
    panel.relay.grid_ready.emit(3, 9, frame)  # batch 9 of epoch 3: a live frame
    assert panel.boundary.current is frame
    assert panel.boundary.history.epochs == [0, 1, 2, 3]
    panel.boundary.follow.setChecked(False)  # the user is replaying: live frames wait
    panel.boundary.show_epoch(2)
    panel.relay.grid_ready.emit(3, 10, dataclasses.replace(frame))
    assert panel.boundary.current is panel.boundary.history.at(2)


def test_live_frames_are_computed_only_while_the_boundary_can_be_seen(
    qtbot: QtBot, rig: Rig
) -> None:
    panel = rig[0]
    assert not panel.relay.live_frames_wanted  # the panel is not on screen
    panel.show()
    qtbot.waitExposed(panel)
    assert panel.relay.live_frames_wanted
    panel.show_tab("code")
    assert not panel.relay.live_frames_wanted
    panel.show_tab("boundary")
    assert panel.relay.live_frames_wanted
    panel.hide()
    assert not panel.relay.live_frames_wanted


def test_the_graph_follows_quick_stack_edits_to_the_last_one(qtbot: QtBot, rig: Rig) -> None:
    panel, _, document = rig
    with qtbot.waitSignal(panel.graph_updated, timeout=30_000):
        panel.show_tab("graph")
    layers = document.experiment.model.layers
    for width in (8, 24, 32):  # faster than the graph can be rebuilt
        first = LayerSpec("Linear", {"out_features": width})
        document.set_layers((first, *layers[1:]), f"width {width}")
    qtbot.waitUntil(
        lambda: not panel.graph_task.is_busy and not panel._graph_waiting, timeout=30_000
    )
    graph = panel.graph_view.graph
    assert graph is not None
    shapes = {node.parameter: node.shape for node in graph.nodes if node.parameter}
    assert shapes["0.weight"] == (32, 2) and shapes["2.weight"] == (16, 32)
