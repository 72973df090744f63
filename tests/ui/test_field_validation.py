"""A bad typed value marks its field and says why; the value it had stays (nothing is cleaned)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractSpinBox, QLineEdit, QWidget

from workbench.engine.experiment import load_experiment
from workbench.ui.data_panel import DataPanel
from workbench.ui.field_validation import invalid_reason
from workbench.ui.layer_stack_panel import LayerStackPanel
from workbench.ui.project_document import ProjectDocument
from workbench.ui.training_panel import TrainingPanel

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")


def type_into(qtbot, widget: QWidget, text: str) -> None:  # type: ignore[no-untyped-def]
    line = widget.lineEdit() if isinstance(widget, QAbstractSpinBox) else widget
    assert isinstance(line, QLineEdit)
    widget.setFocus()
    line.selectAll()
    qtbot.keyClick(widget, Qt.Key.Key_Backspace)
    qtbot.keyClicks(widget, text)
    qtbot.keyClick(widget, Qt.Key.Key_Return)


def test_sixty4_in_batch_size_marks_the_field_and_keeps_64(qtbot, presets: Path) -> None:  # type: ignore[no-untyped-def]
    document = ProjectDocument(load_experiment(presets / "mnist-cnn.toml"))
    panel = DataPanel(document)
    qtbot.addWidget(panel)
    panel.show()
    before = document.experiment.data.batch_size
    edits = document.undo_stack.count()

    type_into(qtbot, panel.batch_size, "sixty4")

    assert document.experiment.data.batch_size == before
    assert document.undo_stack.count() == edits
    assert panel.batch_size.value() == before
    reason = invalid_reason(panel.batch_size)
    assert reason == f"“sixty4” is not a whole number: the value stays {before}"
    assert panel.batch_size.toolTip() == reason
    assert "solid #D32F2F" in panel.batch_size.styleSheet()

    type_into(qtbot, panel.batch_size, "32")
    assert document.experiment.data.batch_size == 32
    assert invalid_reason(panel.batch_size) == ""
    assert panel.batch_size.toolTip() == "Samples per training batch"
    panel.shutdown()


def test_a_negative_epoch_count_is_refused_not_made_positive(qtbot, presets: Path) -> None:  # type: ignore[no-untyped-def]
    from workbench.engine.devices import available_devices

    document = ProjectDocument(load_experiment(presets / "toy-mlp.toml"))
    panel = TrainingPanel(document, available_devices())
    qtbot.addWidget(panel)
    panel.show()
    before = document.experiment.train.epochs

    type_into(qtbot, panel.epochs, "-5")

    assert document.experiment.train.epochs == before
    assert invalid_reason(panel.epochs).startswith("-5 is outside 1 to 100000")


def test_sixty4_in_in_features_marks_the_field_and_changes_nothing(qtbot, presets: Path) -> None:  # type: ignore[no-untyped-def]
    panel = LayerStackPanel(ProjectDocument(load_experiment(presets / "mnist-cnn.toml")))
    qtbot.addWidget(panel)
    panel.show()
    panel.select_row(7)
    in_features = panel.editor.field("in_features")

    type_into(qtbot, in_features, "sixty4")

    assert "in_features" not in panel.model.layer(7).params
    assert invalid_reason(in_features).startswith("in_features: “sixty4” is not a whole number")
    assert in_features.toolTip() == invalid_reason(in_features)


@pytest.mark.parametrize("typed", ["three", "-5", "3, x"])
def test_bad_kernel_sizes_are_refused(qtbot, presets: Path, typed: str) -> None:  # type: ignore[no-untyped-def]
    panel = LayerStackPanel(ProjectDocument(load_experiment(presets / "mnist-cnn.toml")))
    qtbot.addWidget(panel)
    panel.show()
    panel.select_row(0)
    kernel = panel.editor.field("kernel_size")

    type_into(qtbot, kernel, typed)

    assert panel.model.layer(0).params["kernel_size"] == 3
    assert invalid_reason(kernel).startswith(f"kernel_size: “{typed}” is not")
    type_into(qtbot, kernel, "5")
    assert panel.model.layer(0).params["kernel_size"] == 5
    assert invalid_reason(kernel) == ""
