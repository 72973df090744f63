"""LayerStackModel: what each row shows, how problems are marked, and that edits are undoable."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QIcon

from workbench.engine.experiment import Experiment, LayerSpec, ModelSpec, load_experiment
from workbench.engine.model_builder import plan_model
from workbench.ui.layer_stack_model import (
    PROBLEM_COLOUR,
    LayerStackModel,
    layer_label,
    new_layer,
)
from workbench.ui.project_document import ProjectDocument

pytestmark = pytest.mark.usefixtures("qapp")

Role = Qt.ItemDataRole
LAYER, SHAPE, PARAMS = range(3)


def mnist_document(presets: Path) -> ProjectDocument:
    return ProjectDocument(load_experiment(presets / "mnist-cnn.toml"))


def broken(layers: tuple[LayerSpec, ...]) -> tuple[LayerSpec, ...]:
    """The MNIST CNN with its first Linear moved before the Flatten."""
    edited = list(layers)
    edited.insert(6, edited.pop(7))
    return tuple(edited)


def column(model: LayerStackModel, index: int, role: int = Role.DisplayRole) -> list[object]:
    return [model.index(row, index).data(role) for row in range(model.rowCount())]


def test_mnist_rows_show_resolved_sizes_shapes_and_parameters(presets: Path) -> None:
    model = LayerStackModel(mnist_document(presets))

    assert column(model, LAYER) == [
        "Conv2d(1 → 32, k3)",
        "ReLU",
        "Conv2d(32 → 64, k3)",
        "ReLU",
        "MaxPool2d(k2)",
        "Dropout(p=0.25)",
        "Flatten",
        "Linear(9216 → 64)",
        "ReLU",
        "Dropout(p=0.5)",
        "Linear(64 → 10)",
        "LogSoftmax(dim=1)",
    ]
    assert column(model, SHAPE)[:3] == ["[32, 26, 26]", "[32, 26, 26]", "[64, 24, 24]"]
    assert column(model, SHAPE)[6] == "[9216]"
    assert column(model, PARAMS)[2] == "18,496"
    assert column(model, PARAMS)[7] == "589,888"
    assert model.total_parameters == 609_354
    assert model.problem() is None
    assert column(model, LAYER, LayerStackModel.ProblemRole) == [None] * 12
    assert model.headerData(0, Qt.Orientation.Horizontal) == "Layer"
    assert model.headerData(7, Qt.Orientation.Vertical) == "7"  # as the builder counts


def test_the_broken_row_carries_the_builders_message(presets: Path) -> None:
    document = mnist_document(presets)
    document.set_layers(broken(document.experiment.model.layers), "Move Linear")
    model = LayerStackModel(document)
    message = str(plan_model(document.experiment.model).problem)

    assert message.startswith("layer 6 (Linear) receives [64, 12, 12]")
    assert str(model.problem()) == message
    row = model.index(6, LAYER)
    assert row.data(LayerStackModel.ProblemRole) == message
    assert row.data(Role.ToolTipRole) == message
    assert QColor(row.data(Role.ForegroundRole)) == PROBLEM_COLOUR
    assert isinstance(row.data(Role.DecorationRole), QIcon)
    assert model.index(5, LAYER).data(Role.DecorationRole) is None
    assert column(model, SHAPE)[5:] == ["[64, 12, 12]"] + ["?"] * 6
    assert column(model, PARAMS)[6:] == ["?"] * 6
    assert column(model, LAYER)[6] == "Linear(? → 64)"  # nothing to infer from
    assert model.index(7, LAYER).data(LayerStackModel.ProblemRole) is None


def test_passes_qtmodeltester_while_edited(presets: Path, qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    document = mnist_document(presets)
    model = LayerStackModel(document)
    qtmodeltester.check(model)  # stays attached: every edit below is checked too

    model.add_layer("BatchNorm2d", after=0)
    model.remove_layers([1])
    model.duplicate_layer(2)
    model.move_layers([7], 6)  # breaks the stack
    qtmodeltester.check(model)
    model.move_layer(0, 1)
    model.set_param(8, "out_features", 32)
    model.set_input_shape((3, 32, 32))
    document.undo_stack.undo()
    document.undo_stack.undo()
    document.undo_stack.redo()
    document.set_layers((), "Clear")
    qtmodeltester.check(model)
    document.undo_stack.undo()
    document.replace(Experiment(model=ModelSpec(layers=(LayerSpec("ReLU"),))), None)
    qtmodeltester.check(model)


@pytest.mark.parametrize("stack", ["mnist", "broken", "empty"])
def test_passes_the_python_modeltester(presets: Path, qtmodeltester, stack: str) -> None:  # type: ignore[no-untyped-def]
    document = mnist_document(presets)
    layers = document.experiment.model.layers
    document.set_layers({"mnist": layers, "broken": broken(layers), "empty": ()}[stack], "edit")
    qtmodeltester.check(LayerStackModel(document), force_py=True)


def test_each_edit_is_one_undo_step_with_a_clear_name(presets: Path) -> None:
    document = mnist_document(presets)
    model = LayerStackModel(document)
    original = document.experiment.model.layers
    stack = document.undo_stack

    assert model.add_layer("Linear") == 12
    assert stack.undoText() == "Add Linear"
    assert model.layer(12) == LayerSpec("Linear", {"out_features": 10})
    model.remove_layers([0])
    assert stack.undoText() == "Remove Conv2d"
    model.duplicate_layer(0)
    assert stack.undoText() == "Duplicate ReLU"
    assert model.move_layer(2, -1) == 1
    assert stack.undoText() == "Move Conv2d"
    model.set_param(5, "p", 0.3)
    assert stack.undoText() == "Edit Dropout p"
    assert column(model, LAYER)[5] == "Dropout(p=0.3)"
    assert stack.count() == 5

    for _ in range(5):
        stack.undo()
    assert model.layers == original
    assert model.total_parameters == 609_354


def test_a_drop_moves_the_rows_as_one_undo_step_and_indexes_follow(presets: Path) -> None:
    document = mnist_document(presets)
    model = LayerStackModel(document)
    mime = model.mimeData([model.index(7, LAYER), model.index(7, SHAPE)])
    followed = QPersistentModelIndex(model.index(7, LAYER))

    assert model.mimeTypes() == [LayerStackModel.MIME_TYPE]
    assert model.supportedDropActions() == Qt.DropAction.MoveAction
    assert model.flags(model.index(7, LAYER)) & Qt.ItemFlag.ItemIsDragEnabled
    assert model.flags(QModelIndex()) & Qt.ItemFlag.ItemIsDropEnabled
    assert model.dropMimeData(mime, Qt.DropAction.MoveAction, 6, 0, QModelIndex())

    assert model.layer(6).type == "Linear"
    assert followed.row() == 6  # announced as a move, so the selection stays on the layer
    assert model.index(6, LAYER).data(LayerStackModel.ProblemRole) is not None
    assert document.undo_stack.count() == 1
    document.undo_stack.undo()
    assert [model.layer(row).type for row in (6, 7)] == ["Flatten", "Linear"]
    assert model.problem() is None


def test_dropping_onto_a_row_inserts_before_it_and_copy_drops_are_refused(presets: Path) -> None:
    model = LayerStackModel(mnist_document(presets))
    mime = model.mimeData([model.index(0, LAYER)])

    assert not model.dropMimeData(mime, Qt.DropAction.CopyAction, 3, 0, QModelIndex())
    assert model.dropMimeData(mime, Qt.DropAction.MoveAction, -1, -1, model.index(3, 0))
    assert [model.layer(row).type for row in range(3)] == ["ReLU", "Conv2d", "Conv2d"]
    assert model.dropMimeData(mime, Qt.DropAction.MoveAction, -1, -1, QModelIndex())
    assert model.layer(11).type == "ReLU"  # dropped below the last row: moved to the end


def test_an_insert_is_announced_as_rows_inserted(presets: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    model = LayerStackModel(mnist_document(presets))
    with qtbot.waitSignal(model.rowsInserted) as inserted:
        model.add_layer("Dropout", after=3)
    assert inserted.args[1:] == [4, 4]
    assert model.index(4, LAYER).data() == "Dropout(p=0.5)"


def test_the_input_shape_comes_from_the_window_or_the_file(qtbot) -> None:  # type: ignore[no-untyped-def]
    layers = tuple(LayerSpec("Linear", {"out_features": n}) for n in (30, 20, 2))
    document = ProjectDocument(Experiment(model=ModelSpec(layers=layers)))
    model = LayerStackModel(document)

    assert "input shape is unknown" in str(model.problem())
    assert column(model, SHAPE) == ["?"] * 3
    with qtbot.waitSignal(model.plan_changed) as changed:
        model.set_input_shape([2])
    assert changed.args[0].ok
    assert model.total_parameters == 2 * 30 + 30 + 30 * 20 + 20 + 20 * 2 + 2
    model.set_input_shape(None)
    assert model.problem() is not None
    model_with_shape = dataclasses.replace(document.experiment.model, input_shape=(4,))
    document.replace(dataclasses.replace(document.experiment, model=model_with_shape), None)
    assert column(model, LAYER)[0] == "Linear(4 → 30)"


def test_set_param_stores_only_what_differs_from_torchs_default(presets: Path) -> None:
    model = LayerStackModel(mnist_document(presets))
    model.set_param(0, "stride", 2)
    assert model.layer(0).params["stride"] == 2
    assert column(model, LAYER)[0] == "Conv2d(1 → 32, k3, s2)"
    model.set_param(0, "stride", 1)
    assert "stride" not in model.layer(0).params
    model.set_param(7, "in_features", 9216)
    model.set_param(7, "in_features", None)
    assert "in_features" not in model.layer(7).params


def test_new_layers_start_with_suggested_required_sizes_only() -> None:
    assert new_layer("Conv2d") == LayerSpec("Conv2d", {"out_channels": 16, "kernel_size": 3})
    assert new_layer("Linear") == LayerSpec("Linear", {"out_features": 10})
    assert new_layer("MaxPool2d") == LayerSpec("MaxPool2d", {"kernel_size": 2})
    assert new_layer("ReLU") == LayerSpec("ReLU")


@pytest.mark.parametrize(
    ("layer", "label"),
    [
        (LayerSpec("Linear", {"out_features": 3, "bias": False}), "Linear(? → 3, no bias)"),
        (
            LayerSpec("Conv2d", {"out_channels": 8, "kernel_size": (3, 5), "padding": "same"}),
            "Conv2d(? → 8, k3×5, same)",
        ),
        (LayerSpec("MaxPool2d", {"kernel_size": 3, "stride": 2}), "MaxPool2d(k3, s2)"),
        (LayerSpec("AdaptiveAvgPool2d", {"output_size": 1}), "AdaptiveAvgPool2d(→ 1)"),
        (LayerSpec("LeakyReLU", {"negative_slope": 0.2}), "LeakyReLU(negative_slope=0.2)"),
        (LayerSpec("Flatten"), "Flatten"),
        (LayerSpec("Mystery"), "Mystery"),
    ],
)
def test_labels_name_the_sizes_that_matter(layer: LayerSpec, label: str) -> None:
    assert layer_label(layer) == label


def test_edits_keep_names_and_inputs_and_a_copy_comes_unnamed(presets: Path) -> None:
    document = ProjectDocument(load_experiment(presets / "cifar10-resnet.toml"))
    model = LayerStackModel(document, input_shape=[1, 8, 8])
    assert model.problem() is None
    assert column(model, LAYER)[3] == "BasicBlock ×2"
    assert column(model, PARAMS)[3] == "9,344"
    model.set_param(0, "out_channels", 16)
    model.set_param(0, "kernel_size", 5)
    assert model.layer(0).name == "conv1" and model.layer(0).params["kernel_size"] == 5
    model.duplicate_layer(2)
    assert (model.layer(2).name, model.layer(3).name) == ("relu", None)
    assert model.problem() is None and model.headerData(3, Qt.Orientation.Vertical) == "3"


def test_a_dangling_input_marks_the_layer_that_names_it() -> None:
    layers = (
        LayerSpec("Linear", {"out_features": 4}, name="fc"),
        LayerSpec("Add", name="sum", inputs=("fc", "gone")),
    )
    model = LayerStackModel(ProjectDocument(Experiment(model=ModelSpec(layers, input_shape=(3,)))))
    assert column(model, SHAPE) == ["[4]", "?"]
    assert model.row_problem(0) is None
    assert "inputs: 'gone' is not a layer here" in str(model.row_problem(1))
