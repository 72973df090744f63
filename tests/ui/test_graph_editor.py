"""The graph editor as a user drives it: the Input row, the Name and Inputs columns, the diagram
(drag to connect, problems on the node, selection) and text models planned with their data."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QComboBox, QLineEdit, QSpinBox, QWidget
from pytestqt.qtbot import QtBot

from workbench.engine.experiment import Experiment, LayerSpec, ModelSpec
from workbench.ui.graph_diagram import PROBLEM_COLOUR, GraphDiagram, NodeItem, edge_labels
from workbench.ui.layer_stack_model import LayerStackModel
from workbench.ui.layer_stack_panel import LayerStackPanel
from workbench.ui.main_window import MainWindow
from workbench.ui.project_document import ProjectDocument

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")

ADD_MISMATCH = (
    "layer 3 'add' (Add) receives [5] from 'fc2' and [8] from 'fc1': the shapes must match "
    "(or broadcast); make the shapes equal, e.g. with a Linear on the shorter branch"
)


def residual_mlp(second: int = 8, add_inputs: tuple[str, ...] | None = None) -> Experiment:
    """fc1 -> relu1 -> fc2 -> add -> head, the Add taking only fc2 until connected."""
    return Experiment(
        model=ModelSpec(
            layers=(
                LayerSpec("Linear", {"out_features": 8}, name="fc1"),
                LayerSpec("ReLU", name="relu1"),
                LayerSpec("Linear", {"out_features": second}, name="fc2"),
                LayerSpec("Add", name="add", inputs=add_inputs),
                LayerSpec("Linear", {"out_features": 3}, name="head"),
            )
        )
    )


def shown_panel(qtbot: QtBot, experiment: Experiment, shape: list[int]) -> LayerStackPanel:
    """The stack and its diagram on screen, side by side as the window has them."""
    panel = LayerStackPanel(ProjectDocument(experiment), shape)
    qtbot.addWidget(panel)
    qtbot.addWidget(panel.diagram)
    panel.show()
    panel.diagram.resize(700, 900)
    panel.diagram.show()
    qtbot.waitExposed(panel.diagram)
    return panel


def on_screen(diagram: GraphDiagram, point: QPointF) -> QPoint:
    diagram.view.ensureVisible(point.x(), point.y(), 1, 1)
    return diagram.view.mapFromScene(point)


def drag(diagram: GraphDiagram, source: NodeItem, target: NodeItem) -> None:
    """Press on the source's output port, move onto the target box, release there."""
    viewport = diagram.view.viewport()
    start = on_screen(diagram, source.port.sceneBoundingRect().center())
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    end = on_screen(diagram, target.sceneBoundingRect().center())
    start = diagram.view.mapFromScene(source.port.sceneBoundingRect().center())
    QTest.mouseMove(viewport, (start + end) / 2)
    QTest.mouseMove(viewport, end)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


def edit_cell(qtbot: QtBot, panel: LayerStackPanel, row: int, column: int, text: str) -> None:
    """Double-click a cell, replace its text and press Enter, as a user edits in place."""
    view = panel.view
    index = panel.model.index(row, column)
    view.scrollTo(index)
    rect = view.visualRect(index)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert view.state() == view.State.EditingState
    editors = [line for line in view.viewport().findChildren(QLineEdit) if line.isVisible()]
    assert len(editors) == 1
    editor = editors[0]
    editor.selectAll()
    qtbot.keyClicks(editor, text)
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: view.state() == view.State.NoState)  # the delegate commits queued


def type_into(qtbot: QtBot, line: QLineEdit, text: str) -> None:
    line.setFocus()
    line.selectAll()
    qtbot.keyClick(line, Qt.Key.Key_Backspace)
    qtbot.keyClicks(line, text)
    qtbot.keyClick(line, Qt.Key.Key_Return)


def pick(qtbot: QtBot, panel: LayerStackPanel, search: str) -> None:
    """Click Add layer…, type into the picker's search box and press Enter."""
    qtbot.mouseClick(panel.findChild(QWidget, "addLayerButton"), Qt.MouseButton.LeftButton)
    qtbot.keyClicks(panel.catalogue.search, search)
    qtbot.keyClick(panel.catalogue.search, Qt.Key.Key_Return)
    assert not panel.catalogue.isVisible()


def inputs_of(panel: LayerStackPanel, row: int) -> tuple[str, ...] | None:
    return panel.document.experiment.model.layers[row].inputs


# ----------------------------------------------------------------------------- the diagram


def test_a_skip_connection_dragged_in_the_diagram_is_one_undo_step(qtbot: QtBot) -> None:
    panel = shown_panel(qtbot, residual_mlp(), [4])
    diagram = panel.diagram
    assert (diagram.node("add").problem or "").startswith(
        "layer 3 (Add): it joins 2 or more layers, but takes 1; list them in inputs"
    )
    assert edge_labels(diagram.scene) == ["[4]", "[8]", "[8]", "[8]", "?"]

    drag(diagram, diagram.node("relu1"), diagram.node("add"))

    assert inputs_of(panel, 3) == ("fc2", "relu1")
    assert panel.model.index(3, LayerStackModel.INPUTS_COLUMN).data() == "fc2, relu1"
    assert panel.document.undo_stack.undoText() == "Connect relu1 to Add"
    assert diagram.hint.text() == "Add now also takes relu1"
    assert diagram.node("add").problem is None
    # the skip edge carries relu1's shape; the Add gives [8] on to the head
    assert edge_labels(diagram.scene) == ["[4]", "[8]", "[8]", "[8]", "[8]", "[8]"]
    assert panel.total_label.text() == "Total parameters: 139"

    panel.undo_action.trigger()
    assert inputs_of(panel, 3) is None
    assert diagram.node("add").problem is not None
    assert len(edge_labels(diagram.scene)) == 5
    panel.redo_action.trigger()
    assert inputs_of(panel, 3) == ("fc2", "relu1")


def test_dragging_onto_a_layer_that_takes_one_input_is_refused(qtbot: QtBot) -> None:
    panel = shown_panel(qtbot, residual_mlp(), [4])
    diagram = panel.diagram
    drag(diagram, diagram.node("fc1"), diagram.node("head"))
    assert panel.document.undo_stack.count() == 0
    assert diagram.hint.text().startswith(
        "⚠ layer 4 (Linear) takes one input; connect to a merge layer (Add, Mul or Concat)"
    )
    assert panel.edit_note.text() == diagram.hint.text()


def test_a_shape_mismatch_at_an_add_is_marked_on_its_node(qtbot: QtBot) -> None:
    panel = shown_panel(qtbot, residual_mlp(second=5, add_inputs=("fc2", "fc1")), [4])
    node = panel.diagram.node("add")
    assert node.problem == ADD_MISMATCH
    assert node.outline == PROBLEM_COLOUR
    assert node.problem_text is not None
    assert node.problem_text.toPlainText() == f"⚠ {ADD_MISMATCH}"
    assert ADD_MISMATCH in node.toolTip()
    assert panel.diagram.node("fc2").problem is None
    assert panel.model.index(3, 0).data(LayerStackModel.ProblemRole) == ADD_MISMATCH

    edit_cell(qtbot, panel, 3, LayerStackModel.INPUTS_COLUMN, "fc2, relu1")  # still [5] + [8]
    assert panel.diagram.node("add").problem == ADD_MISMATCH.replace("'fc1'", "'relu1'")


def test_while_a_run_trains_the_graph_cannot_be_edited(qtbot: QtBot) -> None:
    panel = shown_panel(qtbot, residual_mlp(), [4])
    panel.document.lock_layers("A run is training this stack")
    assert not panel.input_row.edit.isEnabled()
    assert panel.view.editTriggers() == panel.view.EditTrigger.NoEditTriggers
    with qtbot.waitSignal(panel.document.edit_refused) as refused:
        drag(panel.diagram, panel.diagram.node("relu1"), panel.diagram.node("add"))
    assert refused.args == ["A run is training this stack"]
    assert inputs_of(panel, 3) is None
    panel.document.unlock_layers()
    assert panel.input_row.edit.isEnabled()


def test_blocks_open_and_close_in_the_diagram(qtbot: QtBot, presets: Path) -> None:
    from workbench.engine.experiment import load_experiment

    panel = shown_panel(qtbot, load_experiment(presets / "cifar10-resnet.toml"), [3, 8, 8])
    diagram = panel.diagram
    assert "layer1.0.conv1" not in diagram.nodes
    assert diagram.node("layer1").subtitle.text() == "BasicBlock ×2"
    diagram.toggle_block("layer1")
    assert diagram.node("layer1.1.add").subtitle.text() == "Add"
    assert diagram.node("layer1.0.conv1").subtitle.text() == "Conv2d(16 → 16, k3, p1, no bias)"
    diagram.toggle_block("layer1")
    assert "layer1.0.conv1" not in diagram.nodes
    point = on_screen(diagram, diagram.node("layer1").sceneBoundingRect().center())
    QTest.mouseDClick(diagram.view.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert "layer1.1.relu2" in diagram.nodes


def test_selection_follows_between_the_diagram_and_the_stack(qtbot: QtBot) -> None:
    panel = shown_panel(qtbot, residual_mlp(), [4])
    diagram = panel.diagram
    point = on_screen(diagram, diagram.node("fc2").sceneBoundingRect().center())
    qtbot.mouseClick(diagram.view.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert panel.current_row() == 2
    assert panel.editor.title.text() == "Layer 2: Linear"
    panel.select_row(4)
    assert [item.name for item in diagram.scene.selectedItems()] == ["head"]


# ----------------------------------------------------------------------------- the stack


def test_a_name_typed_in_the_name_column_renames_and_carries_the_inputs(qtbot: QtBot) -> None:
    panel = shown_panel(qtbot, residual_mlp(add_inputs=("fc2", "relu1")), [4])
    header = panel.view.horizontalHeader()
    assert header.visualIndex(LayerStackModel.NAME_COLUMN) == 0

    edit_cell(qtbot, panel, 1, LayerStackModel.NAME_COLUMN, "act")
    assert panel.document.experiment.model.layers[1].name == "act"
    assert inputs_of(panel, 3) == ("fc2", "act")
    assert panel.document.undo_stack.undoText() == "Rename ReLU"
    assert "act" in panel.diagram.nodes

    edit_cell(qtbot, panel, 0, LayerStackModel.NAME_COLUMN, "fc2")
    assert panel.edit_note.text() == (
        "⚠ layer 0 (Linear): the name 'fc2' is already used by layer 2; give each layer its "
        "own name"
    )
    edit_cell(qtbot, panel, 0, LayerStackModel.NAME_COLUMN, "2nd")
    assert panel.edit_note.text().startswith(
        "⚠ layer 0 (Linear): the name '2nd' cannot be a module attribute"
    )
    assert panel.document.experiment.model.layers[0].name == "fc1"

    panel.undo_action.trigger()
    assert panel.document.experiment.model.layers[1].name == "relu1"
    assert inputs_of(panel, 3) == ("fc2", "relu1")


def test_inputs_typed_in_the_inputs_column_are_undoable(qtbot: QtBot) -> None:
    panel = shown_panel(qtbot, residual_mlp(), [4])
    edit_cell(qtbot, panel, 3, LayerStackModel.INPUTS_COLUMN, "fc2, fc1")
    assert inputs_of(panel, 3) == ("fc2", "fc1")
    assert panel.document.undo_stack.undoText() == "Edit Add inputs"
    edit_cell(qtbot, panel, 3, LayerStackModel.INPUTS_COLUMN, "fc2, nope")
    assert panel.problem_label.text().startswith(
        "layer 3 'add' (Add): inputs: 'nope' is not a layer here"
    )
    assert panel.diagram.node("add").problem == panel.problem_label.text()
    panel.undo_action.trigger()
    assert inputs_of(panel, 3) == ("fc2", "fc1")


def test_the_input_row_shows_the_datas_shape_and_can_be_overridden(qtbot: QtBot) -> None:
    layers = (LayerSpec("Flatten"), LayerSpec("Linear", {"out_features": 3}))
    panel = shown_panel(qtbot, Experiment(model=ModelSpec(layers=layers)), [1, 8, 8])
    row = panel.input_row
    assert row.edit.text() == ""
    assert row.edit.placeholderText() == "1, 8, 8"
    assert row.note.text() == "from the data"
    assert panel.total_label.text() == "Total parameters: 195"

    type_into(qtbot, row.edit, "1, 4, 4")
    assert panel.document.experiment.model.input_shape == (1, 4, 4)
    assert panel.total_label.text() == "Total parameters: 51"
    dataset = panel.document.experiment.data.name
    assert row.note.text().startswith(
        f"⚠ model.input_shape is [1, 4, 4], but the {dataset} data gives samples of [1, 8, 8]; "
        "remove model.input_shape to build the model for the data"
    )
    assert panel.validity()[0] is False
    assert panel.diagram.node("input").subtitle.text() == "[1, 4, 4]"

    type_into(qtbot, row.edit, "four")
    assert panel.edit_note.text().startswith("⚠ model.input_shape 'four' is not a shape")
    assert row.edit.text() == "1, 4, 4"

    type_into(qtbot, row.edit, "")
    assert panel.document.experiment.model.input_shape is None
    assert panel.total_label.text() == "Total parameters: 195"
    panel.undo_action.trigger()
    assert row.edit.text() == "1, 4, 4"
    assert panel.document.undo_stack.undoText() == "Edit input shape"


def test_text_parameters_have_their_own_field(qtbot: QtBot) -> None:
    layers = (LayerSpec("Backbone", {"weights": "none"}), LayerSpec("Linear", {"out_features": 2}))
    panel = shown_panel(qtbot, Experiment(model=ModelSpec(layers=layers)), [3, 32, 32])
    panel.select_row(0)
    arch = panel.editor.field("arch")
    assert isinstance(arch, QLineEdit)
    assert arch.placeholderText() == "default: resnet18"
    # `freeze` (true, false or "last:N") has the backbone's own control: a choice and stages.
    freeze = panel.editor.findChild(QComboBox, "freezeChoiceCombo")
    stages = panel.editor.findChild(QSpinBox, "freezeStagesSpin")
    freeze.setCurrentIndex(freeze.findData("last"))
    freeze.activated.emit(freeze.currentIndex())
    stages.setValue(1)
    assert panel.document.experiment.model.layers[0].params["freeze"] == "last:1"
    freeze.setCurrentIndex(freeze.findData("none"))
    freeze.activated.emit(freeze.currentIndex())
    assert panel.document.experiment.model.layers[0].params["freeze"] is False
    arch.setText("resnet34")  # set, not typed: typing opens the arch completer's popup
    arch.editingFinished.emit()
    assert panel.document.experiment.model.layers[0].params["arch"] == "resnet34"


# ----------------------------------------------------------------------------- the window


def test_the_seeds_mlp_built_by_clicking_shows_2213_parameters(
    qtbot: QtBot, window: MainWindow
) -> None:
    window.new_project()
    panel = window.layer_panel
    type_into(qtbot, panel.input_row.edit, "50")
    assert panel.document.experiment.model.input_shape == (50,)
    for search, width in (("linear", 30), ("relu", None), ("linear", 20), ("relu", None)):
        pick(qtbot, panel, search)
        if width is not None:
            type_into(qtbot, panel.editor.field("out_features"), str(width))
    pick(qtbot, panel, "linear")
    type_into(qtbot, panel.editor.field("out_features"), "3")

    assert panel.total_label.text() == "Total parameters: 2,213"
    assert [panel.model.index(row, 0).data() for row in range(5)] == [
        "Linear(50 → 30)",
        "ReLU",
        "Linear(30 → 20)",
        "ReLU",
        "Linear(20 → 3)",
    ]
    window.tabs.setCurrentWidget(window.model_view)
    assert "Total number of trainable model parameters: 2213" in window.model_view.summary()
    assert window.tabs.tabText(window.tabs.indexOf(panel.diagram)) == "Gr&aph"
    assert edge_labels(panel.diagram.scene) == ["[50]", "[30]", "[30]", "[20]", "[20]"]
    qtbot.waitUntil(lambda: not window.data_panel.is_loading)  # no preview left in flight


def test_tiny_gpt_opens_with_its_parameter_count(
    qtbot: QtBot, window: MainWindow, presets: Path
) -> None:
    window.open_preset(presets / "tiny-gpt.toml")
    panel = window.layer_panel
    qtbot.waitUntil(lambda: panel.total_label.text() == "Total parameters: 112,061")
    assert panel.validity() == (True, "")
    assert panel.input_row.note.text() == "from the data · token ids"
    window.tabs.setCurrentWidget(window.model_view)
    assert "Total number of trainable model parameters: 112061" in window.model_view.summary()
    qtbot.waitUntil(lambda: not window.data_panel.is_loading)


def test_a_hidden_diagram_is_redrawn_when_shown_not_at_every_plan(qtbot: QtBot) -> None:
    """A run locks the stack (a re-plan): a hidden Graph tab must not redraw mid-run."""
    panel = shown_panel(qtbot, residual_mlp(), [4])
    panel.diagram.hide()
    drawn: list[int] = []
    original = panel.diagram.rebuild
    panel.diagram.rebuild = lambda: (drawn.append(1), original())[1]  # type: ignore[method-assign]
    panel.model.rename_layer(0, "first")
    assert drawn == []  # hidden: nothing drawn yet
    panel.diagram.show()
    qtbot.waitExposed(panel.diagram)
    assert drawn == [1] and "first" in panel.diagram.nodes
    panel.model.rename_layer(0, "again")  # shown: drawn at once
    assert drawn == [1, 1] and "again" in panel.diagram.nodes
