"""The insight widgets show what the engine computed, and clicks select the right samples."""

from __future__ import annotations

import numpy as np
import pyqtgraph
import pytest
import torch
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor
from pytestqt.qtbot import QtBot
from torch import nn
from torch.utils.data import TensorDataset

from workbench.engine.insight.autograd_graph import autograd_graph
from workbench.engine.insight.decision_boundary import decision_boundary
from workbench.engine.insight.doctor import PROBLEM, WARNING, Diagnosis
from workbench.engine.insight.evaluation import SampleSet, dataset_batches, evaluate_classifier
from workbench.engine.insight.model_probe import ModelProbe
from workbench.ui.insight.decision_boundary_view import DecisionBoundaryView, grid_image
from workbench.ui.insight.doctor_banner import DoctorBanner
from workbench.ui.insight.evaluation_view import EvaluationView
from workbench.ui.insight.graph_view import AutogradGraphView
from workbench.ui.insight.model_probe_view import ModelProbeView
from workbench.ui.insight.palette import class_rgb
from workbench.ui.insight.predict_view import PredictView


def test_pyqtgraph_is_bound_to_pyside6() -> None:
    assert pyqtgraph.Qt.QT_LIB == "PySide6"


def vertical_split() -> nn.Linear:
    """Class 1 right of the y axis, class 0 left of it."""
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-3.0, 0.0], [3.0, 0.0]]))
        model.bias.zero_()
    return model


def test_grid_image_colours_each_side_by_its_class_and_pales_the_boundary() -> None:
    grid = decision_boundary(vertical_split(), (-2, 2), (-1, 1), resolution=(40, 10))
    image = grid_image(grid)
    assert image.shape == (10, 40, 4) and image.dtype == np.uint8
    left, right, middle = image[5, 0, :3], image[5, -1, :3], image[5, 20, :3]
    blue, orange = np.array(class_rgb(0)), np.array(class_rgb(1))
    assert np.abs(left - blue).sum() < np.abs(left - orange).sum()
    assert np.abs(right - orange).sum() < np.abs(right - blue).sum()
    assert middle.min() > left.min() and middle.min() > right.min()  # paler where unsure


def test_boundary_view_follows_live_frames_and_replays_recorded_epochs(qtbot: QtBot) -> None:
    view = DecisionBoundaryView()
    qtbot.addWidget(view)
    view.set_data(
        np.array([[-1.0, 0.0], [1.0, 0.0]]),
        np.array([0, 1]),
        np.array([[0.5, 0.5]]),
        np.array([1]),
        ["left", "right"],
    )
    first = decision_boundary(nn.Linear(2, 2), (-2, 2), (-1, 1), 20)
    second = decision_boundary(vertical_split(), (-2, 2), (-1, 1), 20)
    view.record_epoch(0, first)
    view.set_grid(second)
    assert view.current is second  # live frame shown
    view.record_epoch(1, second)
    assert view.slider.isEnabled() and view.shown_epoch == 1
    with qtbot.waitSignal(view.epoch_shown) as shown:
        view.slider.setValue(0)
    assert shown.args == [0] and view.current is first
    assert not view.follow.isChecked()  # replaying stops following
    view.set_grid(second)
    assert view.current is first  # live frames wait while the user replays
    view.follow.setChecked(True)
    assert view.current is second and "epoch 1" in view.epoch_label.text()
    image = view.field.image
    assert image is not None and image.shape == (20, 20, 4)


def evaluation() -> tuple:  # type: ignore[type-arg]
    torch.manual_seed(0)
    x = torch.rand(40, 1, 4, 4)
    y = torch.arange(40) % 3
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    dataset = TensorDataset(x, y)
    result = evaluate_classifier(model, dataset_batches(dataset, 16), ["a", "b", "c"])
    return result, SampleSet(dataset, "image", ["a", "b", "c"])


def test_evaluation_view_matrix_table_and_gallery_linked_to_cells(qtbot: QtBot) -> None:
    result, samples = evaluation()
    view = EvaluationView()
    qtbot.addWidget(view)
    view.set_evaluation(result, samples)
    model = view.matrix_model
    assert model.rowCount() == 3 and model.headerData(2, Qt.Orientation.Horizontal) == "c"
    shown = sum(int(model.data(model.index(r, c))) for r in range(3) for c in range(3))
    assert shown == result.size == 40
    assert view.per_class.rowCount() == 3 and view.per_class.item(0, 0).text() == "a"
    assert f"{result.accuracy:.2%}" in view.accuracy.text()
    # Click the worst off-diagonal cell: the gallery lists exactly its samples, worst first.
    off = result.confusion.copy()
    np.fill_diagonal(off, 0)
    true, predicted = (int(v) for v in np.unravel_index(off.argmax(), off.shape))
    view.matrix.show()
    rect = view.matrix.visualRect(model.index(true, predicted))
    with qtbot.waitSignal(view.cell_selected) as selected:
        qtbot.mouseClick(view.matrix.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert selected.args == [true, predicted]
    expected = result.samples_in_cell(true, predicted).tolist()
    assert view.shown_indices == expected
    gallery = [
        view.gallery.item(i).data(Qt.ItemDataRole.UserRole) for i in range(view.gallery.count())
    ]
    assert gallery == expected
    view.normalize.setChecked(True)
    share = model.data(model.index(true, predicted))
    assert share.endswith("%")
    background = model.data(model.index(true, predicted), Qt.ItemDataRole.BackgroundRole)
    assert isinstance(background, QColor) and background != QColor("white")


def test_evaluation_view_lists_rows_for_tables(qtbot: QtBot) -> None:
    x = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 1])
    dataset = TensorDataset(x, y)
    result = evaluate_classifier(vertical_split(), dataset_batches(dataset), ["no", "yes"])
    view = EvaluationView()
    qtbot.addWidget(view)
    view.set_evaluation(result, SampleSet(dataset, "table", ["no", "yes"], ["height", "width"]))
    view.show_cell(1, 1)
    assert view.rows.rowCount() == 2
    headers = [view.rows.horizontalHeaderItem(c).text() for c in range(view.rows.columnCount())]
    assert headers == ["sample", "true", "predicted", "loss", "height", "width"]


def test_predict_view_drawing_point_and_row(qtbot: QtBot) -> None:
    view = PredictView()
    qtbot.addWidget(view)
    torch.manual_seed(0)
    image_model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    view.set_task("image", (1, 8, 8))
    assert view.predict_drawing() is None  # no model yet
    assert "Train the model first" in view.answer.text()
    view.set_model(image_model, [str(d) for d in range(10)])
    view.pad.stroke([(140, 40), (140, 240)])
    prediction = view.predict_drawing()
    assert prediction is not None
    assert prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert view.last_input is not None and view.last_input.shape == (1, 8, 8)
    assert view.bars.prediction is prediction
    assert prediction.predicted_name in view.answer.text()
    pixels = view.pad.pixels()
    assert pixels.shape == (280, 280) and pixels[140, 140] > 0.9 and pixels[140, 20] == 0

    samples = SampleSet(
        TensorDataset(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), torch.tensor([1, 0])),
        "points2d",
        ["l", "r"],
    )
    view.set_task("points2d", (2,), None, samples)
    view.set_model(vertical_split(), ["left", "right"])
    assert view.predict_point(1.5, 0.0).predicted_name == "right"
    assert view.predict_sample_index(1).predicted_name == "left"

    table = SampleSet(
        TensorDataset(torch.tensor([[-2.0, 0.0]]), torch.tensor([0])),
        "table",
        ["l", "r"],
        ["a", "b"],
    )
    view.set_task("table", (2,), None, table)
    assert view.predict_sample_index(0).predicted_name == "left"
    view.row_editor.item(0, 0).setText("3")  # editing the row predicts again
    assert view.prediction is not None and view.prediction.predicted_name == "right"
    view.row_editor.item(0, 1).setText("abc")
    assert "not a number" in view.answer.text()


def test_drawing_pad_draws_with_the_mouse(qtbot: QtBot) -> None:
    view = PredictView()
    qtbot.addWidget(view)
    view.set_task("image", (1, 8, 8))
    view.set_model(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), [str(d) for d in range(10)])
    view.show()
    with qtbot.waitSignal(view.predicted):
        qtbot.mousePress(view.pad, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
        qtbot.mouseRelease(view.pad, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
    assert view.pad.pixels()[100, 100] > 0.9


def test_graph_view_draws_every_node_with_its_name(qtbot: QtBot) -> None:
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
    graph = autograd_graph(model, torch.randn(3, 2), torch.tensor([0, 1, 0]), nn.CrossEntropyLoss())
    view = AutogradGraphView()
    qtbot.addWidget(view)
    view.set_graph(graph)
    assert len(view.node_items) == len(graph.nodes)
    assert len(view.items_named("0.weight")) == 1 and len(view.items_named("AddmmBackward0")) == 2
    weight = view.items_named("0.weight")[0].sceneBoundingRect()
    loss = view.items_named("NllLossBackward0")[0].sceneBoundingRect()
    assert weight.center().y() < loss.center().y()  # forward runs top to bottom
    assert "shape [4, 2]" in view.items_named("0.weight")[0].toolTip()


def test_doctor_banner_shows_the_worst_finding_and_can_be_dismissed(qtbot: QtBot) -> None:
    banner = DoctorBanner()
    qtbot.addWidget(banner)
    banner.set_diagnoses([])
    assert banner.isHidden()
    findings = [
        Diagnosis(
            "divergence",
            PROBLEM,
            "Training is diverging",
            "the loss rose.",
            "Lower the learning rate.",
        ),
        Diagnosis(
            "dead_relu", WARNING, "Dead ReLUs in layer 1", "60% are silent.", "Use LeakyReLU."
        ),
    ]
    banner.set_diagnoses(findings)
    assert not banner.isHidden()
    assert "Training is diverging" in banner.text() and "Lower the learning rate." in banner.text()
    assert banner.more.text() == "1 more" and "Dead ReLUs" in banner.others.text()
    with qtbot.waitSignal(banner.dismissed):
        banner.close_button.click()
    assert banner.isHidden()
    banner.set_diagnoses(findings)  # the same findings stay dismissed
    assert banner.isHidden()
    banner.set_diagnoses(findings[1:])  # something changed: show again
    assert not banner.isHidden() and "Dead ReLUs" in banner.text()


def test_model_probe_view_shows_histograms_norms_and_conv_pictures(qtbot: QtBot) -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(36, 3))
    probe = ModelProbe(bins=8)
    batch = (torch.randn(16, 1, 5, 5), torch.randint(0, 3, (16,)))
    view = ModelProbeView()
    qtbot.addWidget(view)
    probe.record(1, model, batch, nn.CrossEntropyLoss())
    view.set_probe(probe)  # hidden (a tab not shown): drawn when it is shown
    assert view.parameter.count() == 4 and not view.weights.getPlotItem().items
    view.show()
    qtbot.waitExposed(view)
    assert view.epoch_label.text() == "epoch 1" and len(view.weights.getPlotItem().items) == 1
    probe.record(2, model, batch, nn.CrossEntropyLoss())
    view.set_probe(probe)
    assert [view.parameter.itemText(i) for i in range(view.parameter.count())] == [
        "0.weight", "0.bias", "3.weight", "3.bias",
    ]  # fmt: skip
    assert view.epoch_label.text() == "epoch 2"
    assert len(view.weights.getPlotItem().items) == 2  # epoch 2 plus the faded epoch 1
    assert "0 (Conv2d)" in view.summary.text() and "gradient norm" in view.summary.text()
    view.epoch.setValue(0)
    assert view.epoch_label.text() == "epoch 1"
    assert len(view.norms.getPlotItem().items) == 2  # one curve per weight
    from workbench.engine.insight.model_probe import feature_maps, first_conv_filters

    view.set_filters(first_conv_filters(model))
    view.set_feature_maps(feature_maps(model, batch[0][0]))
    assert not view.filters_plot.isHidden() and view.maps.image is not None
    view.set_filters(None)
    assert view.filters_plot.isHidden()
