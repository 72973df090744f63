"""LayerStackPanel and ModelView driven as a user drives them: picker, editor, undo, footer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from tests.specs import without_names
from workbench.engine.experiment import Experiment, LayerSpec, ModelSpec, load_experiment
from workbench.ui.layer_stack_model import LayerStackModel
from workbench.ui.layer_stack_panel import LayerStackPanel
from workbench.ui.model_view import ModelView
from workbench.ui.project_document import ProjectDocument

# The offscreen platform warns about size hints whenever a top-level window with a layout shows.
pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")

Role = Qt.ItemDataRole
LAYER, SHAPE, PARAMS = range(3)
MNIST_BROKEN_MESSAGE = "layer 6 (Linear) receives [64, 12, 12]; add a Flatten before it"


def make_panel(qtbot, experiment: Experiment, input_shape=None) -> LayerStackPanel:  # type: ignore[no-untyped-def]
    panel = LayerStackPanel(ProjectDocument(experiment), input_shape)
    qtbot.addWidget(panel)
    return panel


def mnist_panel(qtbot, presets: Path, named: bool = True) -> LayerStackPanel:  # type: ignore[no-untyped-def]
    """The MNIST CNN preset; `named=False` as files without layer names have it (`(7): ...`)."""
    experiment = load_experiment(presets / "mnist-cnn.toml")
    return make_panel(qtbot, experiment if named else without_names(experiment))


def column(panel: LayerStackPanel, index: int) -> list[str]:
    model = panel.view.model()
    return [model.index(row, index).data() for row in range(model.rowCount())]


def pick(qtbot, panel: LayerStackPanel, search: str) -> None:  # type: ignore[no-untyped-def]
    """Click Add, type into the picker's search box and press Enter."""
    qtbot.mouseClick(panel.findChild(QWidget, "addLayerButton"), Qt.MouseButton.LeftButton)
    assert panel.catalogue.isVisible()
    qtbot.keyClicks(panel.catalogue.search, search)
    qtbot.keyClick(panel.catalogue.search, Qt.Key.Key_Return)
    assert not panel.catalogue.isVisible()


def type_into(qtbot, widget: QWidget, text: str) -> None:  # type: ignore[no-untyped-def]
    """Replace a field's text as a user would and press Enter (one commit)."""
    line = widget.lineEdit() if isinstance(widget, QAbstractSpinBox) else widget
    assert isinstance(line, QLineEdit)
    line.selectAll()
    qtbot.keyClick(widget, Qt.Key.Key_Backspace)
    qtbot.keyClicks(widget, text)
    qtbot.keyClick(widget, Qt.Key.Key_Return)


def test_the_handles_of_the_design_are_there(qtbot, presets: Path) -> None:  # type: ignore[no-untyped-def]
    panel = mnist_panel(qtbot, presets)
    view = panel.findChild(QWidget, "layerStack")
    assert view is panel.view
    assert view.accessibleName() == "layerStack"
    assert panel.findChild(QWidget, "addLayerButton").accessibleName() == "addLayerButton"
    assert view.dragDropMode() == view.DragDropMode.InternalMove


def test_building_the_toy_mlp_through_the_picker_and_editor(qtbot) -> None:  # type: ignore[no-untyped-def]
    panel = make_panel(qtbot, Experiment(model=ModelSpec(layers=())), input_shape=[2])
    assert panel.total_label.text() == "Total parameters: ?"
    assert panel.problem_label.text() == "the model has no layers; add at least one layer"

    with qtbot.waitSignal(panel.validity_changed) as validity:
        pick(qtbot, panel, "linear")
    assert validity.args == [True, ""]
    type_into(qtbot, panel.editor.field("out_features"), "30")
    for search, width in (("relu", None), ("linear", 20), ("relu", None), ("connected", 2)):
        pick(qtbot, panel, search)  # "connected" finds Linear by its help text
        if width is not None:
            type_into(qtbot, panel.editor.field("out_features"), str(width))

    assert column(panel, LAYER) == [
        "Linear(2 → 30)",
        "ReLU",
        "Linear(30 → 20)",
        "ReLU",
        "Linear(20 → 2)",
    ]
    assert column(panel, SHAPE) == ["[30]", "[30]", "[20]", "[20]", "[2]"]
    assert column(panel, PARAMS) == ["90", "0", "620", "0", "42"]
    assert panel.total_label.text() == "Total parameters: 752"
    assert not panel.problem_label.isVisibleTo(panel)
    assert panel.document.undo_stack.count() == 8  # five adds, three size edits


def test_the_picker_filters_by_name_category_and_help(qtbot, presets: Path) -> None:  # type: ignore[no-untyped-def]
    panel = mnist_panel(qtbot, presets)
    catalogue = panel.catalogue
    catalogue.set_filter("pool 2d")
    assert catalogue.matching_types() == ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]
    catalogue.set_filter("normalization")
    assert catalogue.matching_types() == ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]
    catalogue.set_filter("swish")
    assert catalogue.selected_type() == "SiLU"
    catalogue.set_filter("no such layer")
    assert catalogue.matching_types() == []
    assert catalogue.selected_type() is None


def test_arrow_keys_in_the_search_box_choose_among_matches(qtbot, presets: Path) -> None:  # type: ignore[no-untyped-def]
    panel = mnist_panel(qtbot, presets)
    panel.select_row(1)
    panel.open_catalogue()
    qtbot.keyClicks(panel.catalogue.search, "dropout")
    qtbot.keyClick(panel.catalogue.search, Qt.Key.Key_Down)
    qtbot.keyClick(panel.catalogue.search, Qt.Key.Key_Return)

    assert panel.model.layer(2) == LayerSpec("Dropout1d")  # after the current row
    assert panel.current_row() == 2
    assert panel.editor.title.text() == "Layer 2: Dropout1d"


def test_mnist_cnn_totals_609354(qtbot, presets: Path) -> None:  # type: ignore[no-untyped-def]
    panel = mnist_panel(qtbot, presets)
    assert panel.total_label.text() == "Total parameters: 609,354"
    assert panel.validity() == (True, "")
    assert column(panel, LAYER)[7] == "Linear(9216 → 64)"


def test_an_impossible_stack_marks_its_row_and_disables_training(qtbot, presets: Path) -> None:  # type: ignore[no-untyped-def]
    panel = mnist_panel(qtbot, presets)
    with qtbot.waitSignal(panel.validity_changed) as validity:
        panel.model.move_layers([7], 6)  # Linear before Flatten

    ok, message = validity.args
    assert not ok
    assert message.startswith(MNIST_BROKEN_MESSAGE)
    assert panel.view.model().index(6, LAYER).data(LayerStackModel.ProblemRole) == message
    assert panel.view.model().index(6, LAYER).data(Role.ToolTipRole) == message
    assert panel.problem_label.text() == message
    assert panel.problem_label.isVisibleTo(panel)
    assert panel.total_label.text() == "Total parameters: ?"
    assert column(panel, SHAPE)[6:] == ["?"] * 6


def test_undo_and_redo_restore_the_stack(qtbot, presets: Path) -> None:  # type: ignore[no-untyped-def]
    panel = mnist_panel(qtbot, presets)
    stack = panel.document.undo_stack
    original = column(panel, LAYER)
    panel.select_row(7)
    panel.remove_current()
    assert panel.current_row() == 7  # the next layer is selected
    assert column(panel, LAYER)[7] == "ReLU"
    assert column(panel, LAYER)[9] == "Linear(9216 → 10)"  # re-inferred from the Flatten
    assert panel.total_label.text() == f"Total parameters: {320 + 18_496 + 9216 * 10 + 10:,}"

    stack.undo()
    assert column(panel, LAYER) == original
    assert panel.current_row() == 7
    assert panel.total_label.text() == "Total parameters: 609,354"
    stack.redo()
    assert len(column(panel, LAYER)) == 11
    assert panel.undo_button.isEnabled()
    panel.undo_button.click()
    assert column(panel, LAYER) == original
    panel.redo_button.click()
    assert len(column(panel, LAYER)) == 11


def test_a_drag_move_reorders_and_is_one_undo_step(qtbot, presets: Path) -> None:  # type: ignore[no-untyped-def]
    panel = mnist_panel(qtbot, presets)
    model = panel.view.model()
    panel.select_row(9)
    # What the view does on a drop between rows 7 and 8: mimeData of the dragged row, then drop.
    mime = model.mimeData(panel.view.selectionModel().selectedIndexes())
    assert model.dropMimeData(mime, Qt.DropAction.MoveAction, 8, 0, QModelIndex())

    assert column(panel, LAYER)[7:10] == ["Linear(9216 → 64)", "Dropout(p=0.5)", "ReLU"]
    assert panel.current_row() == 8  # the selection moved with the layer
    assert panel.document.undo_stack.undoText() == "Move Dropout"
    panel.document.undo_stack.undo()
    assert column(panel, LAYER)[7:10] == ["Linear(9216 → 64)", "ReLU", "Dropout(p=0.5)"]
    assert panel.current_row() == 9


def test_keyboard_shortcuts_remove_duplicate_and_move(qtbot, presets: Path) -> None:  # type: ignore[no-untyped-def]
    panel = mnist_panel(qtbot, presets)
    panel.show()
    qtbot.waitExposed(panel)
    panel.activateWindow()
    panel.view.setFocus()
    qtbot.waitUntil(panel.view.hasFocus)
    panel.select_row(5)

    qtbot.keyClick(panel.view, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert column(panel, LAYER)[5:7] == ["Dropout(p=0.25)", "Dropout(p=0.25)"]
    assert panel.current_row() == 6
    qtbot.keyClick(panel.view, Qt.Key.Key_Delete)
    assert len(column(panel, LAYER)) == 12
    panel.select_row(5)
    qtbot.keyClick(panel.view, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)
    assert column(panel, LAYER)[4:6] == ["Dropout(p=0.25)", "MaxPool2d(k2)"]
    assert panel.current_row() == 4
    qtbot.keyClick(panel.view, Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)
    assert column(panel, LAYER)[4:6] == ["MaxPool2d(k2)", "Dropout(p=0.25)"]
    assert panel.document.undo_stack.count() == 4


def test_parameter_edits_are_undoable(qtbot, presets: Path) -> None:  # type: ignore[no-untyped-def]
    panel = mnist_panel(qtbot, presets)
    panel.select_row(7)
    out_features = panel.editor.field("out_features")
    assert isinstance(out_features, QSpinBox)
    assert out_features.value() == 64
    assert out_features.toolTip().startswith("out_features: output size")

    type_into(qtbot, out_features, "128")
    assert column(panel, LAYER)[7] == "Linear(9216 → 128)"
    assert column(panel, LAYER)[10] == "Linear(128 → 10)"
    assert panel.total_label.text() == f"Total parameters: {320 + 18_496 + 1_179_776 + 1_290:,}"
    assert panel.document.undo_stack.undoText() == "Edit Linear out_features"

    bias = panel.editor.field("bias")
    assert isinstance(bias, QCheckBox)
    bias.click()
    assert column(panel, LAYER)[7] == "Linear(9216 → 128, no bias)"

    panel.document.undo_stack.undo()
    panel.document.undo_stack.undo()
    assert out_features.value() == 64
    assert bias.isChecked()
    assert panel.total_label.text() == "Total parameters: 609,354"


def test_float_and_choice_fields_commit_what_the_user_picks(qtbot, presets: Path) -> None:  # type: ignore[no-untyped-def]
    panel = mnist_panel(qtbot, presets)
    panel.select_row(5)
    p = panel.editor.field("p")
    assert p.text() == "0.25"
    type_into(qtbot, p, "0.3")
    assert column(panel, LAYER)[5] == "Dropout(p=0.3)"
    qtbot.keyClick(p, Qt.Key.Key_Up)  # one arrow step, one undo step
    assert column(panel, LAYER)[5] == "Dropout(p=0.4)"

    panel.select_row(0)
    mode = panel.editor.field("padding_mode")
    assert isinstance(mode, QComboBox)
    mode.setCurrentText("reflect")
    mode.activated.emit(mode.currentIndex())  # what a click on the item does
    assert panel.model.layer(0).params["padding_mode"] == "reflect"
    assert panel.document.undo_stack.count() == 3


def test_cancelling_the_picker_adds_nothing(qtbot, presets: Path) -> None:  # type: ignore[no-untyped-def]
    panel = mnist_panel(qtbot, presets)
    panel.open_catalogue()
    qtbot.keyClicks(panel.catalogue.search, "conv")
    qtbot.keyClick(panel.catalogue.search, Qt.Key.Key_Escape)
    assert not panel.catalogue.isVisible()
    assert panel.document.undo_stack.count() == 0
    panel.open_catalogue()
    assert panel.catalogue.search.text() == ""  # every visit starts fresh
    panel.catalogue.reject()


def test_inferred_sizes_show_as_hints_and_can_be_overridden(qtbot, presets: Path) -> None:  # type: ignore[no-untyped-def]
    panel = mnist_panel(qtbot, presets)
    panel.select_row(7)
    in_features = panel.editor.field("in_features")
    assert isinstance(in_features, QLineEdit)
    assert in_features.text() == ""
    assert in_features.placeholderText() == "inferred: 9216"

    with qtbot.waitSignal(panel.validity_changed) as validity:
        type_into(qtbot, in_features, "100")
    assert "in_features = 100, but the input has 9216 features" in validity.args[1]
    assert panel.editor.problem.text() == ""  # the footer already says it
    type_into(qtbot, in_features, "")
    assert panel.validity() == (True, "")
    assert "in_features" not in panel.model.layer(7).params


def test_window_sizes_accept_one_number_or_one_per_dimension(qtbot, presets: Path) -> None:  # type: ignore[no-untyped-def]
    panel = mnist_panel(qtbot, presets)
    panel.select_row(0)
    kernel = panel.editor.field("kernel_size")
    assert isinstance(kernel, QLineEdit)
    assert kernel.text() == "3"

    type_into(qtbot, kernel, "5, 3")
    assert panel.model.layer(0).params["kernel_size"] == (5, 3)
    assert column(panel, SHAPE)[0] == "[32, 24, 26]"
    padding = panel.editor.field("padding")
    type_into(qtbot, padding, "same")
    assert column(panel, LAYER)[0] == "Conv2d(1 → 32, k5×3, same)"
    assert column(panel, SHAPE)[0] == "[32, 28, 28]"


def test_a_later_rows_parameter_problem_shows_in_the_editor(qtbot, presets: Path) -> None:  # type: ignore[no-untyped-def]
    panel = mnist_panel(qtbot, presets)
    layers = list(panel.document.experiment.model.layers)
    layers[7] = LayerSpec("Linear", {"out_features": 64, "in_features": 5})
    layers[9] = LayerSpec("Dropout", {"p": 2.0})
    panel.document.set_layers(tuple(layers), "edit")
    panel.select_row(9)
    assert "p = 2.0 is out of range" in panel.editor.problem.text()
    assert panel.editor.problem.isVisibleTo(panel)


def test_model_view_shows_print_model_the_table_and_the_total(qtbot, presets: Path) -> None:  # type: ignore[no-untyped-def]
    panel = mnist_panel(qtbot, presets, named=False)
    view = ModelView(panel.model)
    qtbot.addWidget(view)
    rng = torch.get_rng_state()

    text = view.summary()
    assert "  (7): Linear(in_features=9216, out_features=64, bias=True)" in text
    assert " 2  Conv2d      [64, 24, 24]   18,496  10,616,832" in text
    assert text.endswith("Total number of trainable model parameters: 609354")
    assert torch.equal(torch.get_rng_state(), rng)  # showing the model never moves a run's RNG

    panel.model.move_layers([7], 6)
    assert view.summary().startswith(MNIST_BROKEN_MESSAGE)
    assert view.status.text() == "The model cannot be built yet:"
    panel.document.undo_stack.undo()
    assert "Linear(in_features=9216" in view.summary()


def test_model_view_follows_edits_while_shown(qtbot, presets: Path) -> None:  # type: ignore[no-untyped-def]
    panel = mnist_panel(qtbot, presets, named=False)
    view = ModelView(panel.model)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    panel.model.set_param(10, "out_features", 3)
    assert "(10): Linear(in_features=64, out_features=3, bias=True)" in view.text.toPlainText()
