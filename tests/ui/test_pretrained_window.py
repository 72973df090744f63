"""The window's transfer-learning story: pick a pretrained network on the start page, point it at
an image folder, see the augmentation preview, train, and see Grad-CAM on a gallery image; and
the Backbone's freeze control in the layer editor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtWidgets import QLineEdit, QMenu
from pytestqt.qtbot import QtBot

from tests.transfer_helpers import RESNET18_FILE, save_random_resnet18
from workbench.ui.augmentation_panel import AugmentationPanel
from workbench.ui.insight.gradcam_view import Explanation
from workbench.ui.main_window import MainWindow
from workbench.ui.pretrained_start import PretrainedStartDialog

CLASSES = ("circle", "square", "stripe")


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes of six noisy 48x40 PNGs, and a resnet18 weights file of random weights."""
    root = tmp_path_factory.mktemp("pretrained")
    rng = np.random.default_rng(0)
    for number, name in enumerate(CLASSES):
        (root / "photos" / name).mkdir(parents=True)
        for index in range(6):
            pixels = rng.integers(0, 80, (40, 48, 3), dtype=np.uint8)
            pixels[8:32, 10 + number * 8 : 26 + number * 8, number] = 230
            Image.fromarray(pixels).save(root / "photos" / name / f"{index}.png")
    save_random_resnet18(root / RESNET18_FILE)
    return root


def open_dialog(qtbot: QtBot, window: MainWindow, from_menu: bool = False) -> PretrainedStartDialog:
    if from_menu:
        window.transfer.pretrained_action.trigger()
    else:
        window.welcome.pretrained_button.click()
    dialog = window.findChild(PretrainedStartDialog)
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: dialog.catalogue.rowCount() > 50, timeout=30_000)
    return dialog


def fill_in(dialog: PretrainedStartDialog, place: Path, freeze: str = "all") -> None:
    assert dialog.select_arch("resnet18")
    dialog.weights.setCurrentIndex(dialog.weights.findData("file"))
    dialog.weights_file.setText(str(place / RESNET18_FILE))
    dialog.freeze.setCurrentIndex(dialog.freeze.findData(freeze))
    dialog.folder.setText(str(place / "photos"))
    dialog.image_size.setValue(64)
    dialog.epochs.setValue(1)


def test_start_from_pretrained_preview_train_and_grad_cam(
    qtbot: QtBot, window: MainWindow, place: Path
) -> None:
    dialog = open_dialog(qtbot, window)
    resnet = dialog.catalogue.entries[[e.arch for e in dialog.catalogue.entries].index("resnet18")]
    row = dialog.catalogue.entries.index(resnet)
    shown = [dialog.catalogue.index(row, column).data() for column in range(5)]
    assert shown[:4] == ["resnet18", "11.7 M", "224×224", "69.8 %"]
    fill_in(dialog, place)
    dialog.ok_button.click()
    assert not dialog.isVisible()

    layers = window.document.experiment.model.layers
    assert [(layer.type, dict(layer.params)) for layer in layers] == [
        (
            "Backbone",
            {"arch": "resnet18", "weights": str(place / RESNET18_FILE), "freeze": True},
        ),
        ("Linear", {"out_features": 3}),
    ]
    assert window.document.path is None and window.document.is_dirty  # new and unsaved
    assert window.windowTitle().startswith("Untitled")

    panel = window.transfer.augmentation
    with qtbot.waitSignal(panel.preview_shown, timeout=30_000) as first:
        pass
    assert first.args == [12] and panel.filled_cells() == 12
    with qtbot.waitSignal(panel.preview_shown, timeout=30_000):
        panel.factors["horizontal_flip"].setValue(0.5)  # an undoable edit, then a new grid
    assert window.document.experiment.data.augment is not None
    assert window.document.experiment.data.augment.horizontal_flip == 0.5
    assert "RandomHorizontalFlip(p=0.5)" in panel.status.text()
    assert panel.cells[0].toolTip() in CLASSES

    window.document.update_train(device="cpu")
    # Train is allowed once the Data panel has described the new folder to the layer stack.
    qtbot.waitUntil(lambda: window.model_validity()[0], timeout=60_000)
    with qtbot.waitSignal(window.session.run_ended, timeout=120_000):
        window.start_training()
    assert window.last_result is not None and window.last_result.succeeded

    insight = window.insight_panel
    window.tabs.setCurrentWidget(insight)
    insight.show_tab("gradcam")
    view = insight.gradcam
    qtbot.waitUntil(lambda: view.gallery.count() > 0, timeout=30_000)
    item = view.gallery.item(0)
    assert item is not None and item.text().split(" ", 1)[1] in CLASSES
    with qtbot.waitSignal(view.explained, timeout=30_000) as explained:
        view.gallery.itemClicked.emit(item)
    explanation = explained.args[0]
    assert isinstance(explanation, Explanation)
    assert explanation.heat.shape == (64, 64, 3) and explanation.cam.heatmap.max() > 0
    assert not view.heatmap.pixmap().isNull()
    text = view.label.text()
    assert text.startswith("validation image 0: the model says <b>")
    assert any(f"<b>{name}</b>" in text for name in CLASSES)
    assert "Grad-CAM of backbone.layer4" in text

    insight.predict.predict_sample_index(2)  # "why did it say ...": the Predict tab's input
    view.target.setCurrentIndex(view.target.findData(1))  # the evidence for the second class
    with qtbot.waitSignal(view.explained, timeout=30_000) as explained:
        view.explain_predict.click()
    assert explained.args[0].source == "the Predict tab's input"
    assert explained.args[0].cam.target == 1
    assert view.label.text().startswith("the Predict tab's input: the model says <b>")
    assert f"the evidence for <b>{CLASSES[1]}</b> lies" in view.label.text()

    # a double-click on a sample of the Evaluation gallery explains it too
    qtbot.waitUntil(lambda: insight.evaluated_epoch == 1, timeout=60_000)
    result = insight.evaluation.result
    assert result is not None
    cell = int(result.targets[3]), int(result.predictions[3])
    assert 3 in insight.evaluation.show_cell(*cell)
    row = insight.evaluation.shown_indices.index(3)
    sample = insight.evaluation.gallery.item(row)
    insight.show_tab("evaluation")
    with qtbot.waitSignal(view.explained, timeout=30_000) as explained:
        insight.evaluation.gallery.itemDoubleClicked.emit(sample)
    assert explained.args[0].source == "validation image 3"
    assert insight.tabs.currentWidget() is view
    window.grab().save(str(place / "window.png"))


def test_the_dialog_names_what_is_missing(
    qtbot: QtBot, window: MainWindow, place: Path, tmp_path: Path
) -> None:
    dialog = open_dialog(qtbot, window)
    dialog.filter.setText("MobileNet")
    shown = {dialog.proxy.index(row, 0).data() for row in range(dialog.proxy.rowCount())}
    assert shown == {"mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"}
    assert not dialog.select_arch("resnet18") and not dialog.ok_button.isEnabled()
    dialog.filter.clear()
    fill_in(dialog, place)
    dialog.weights_file.setText(str(tmp_path / "nowhere.pth"))
    dialog.ok_button.click()
    assert dialog.isVisible()
    assert (
        dialog.problem.text()
        == f"Weights: {tmp_path / 'nowhere.pth'}: file not found; check the path"
    )
    dialog.weights.setCurrentIndex(dialog.weights.findData("none"))
    (tmp_path / "one" / "cat").mkdir(parents=True)
    dialog.folder.setText(str(tmp_path / "one"))
    dialog.ok_button.click()
    assert dialog.problem.text().endswith(
        "1 class subfolder(s); a classifier needs at least two "
        f"({tmp_path / 'one'}/cat/1.png, {tmp_path / 'one'}/dog/2.png, ...)"
    )
    assert window.document.experiment.model.layers[0].type != "Backbone"  # nothing replaced
    dialog.reject()


def test_the_layer_editor_sets_what_trains_and_counts_it(
    qtbot: QtBot, window: MainWindow, place: Path
) -> None:
    menus = [menu for menu in window.new_action.associatedObjects() if isinstance(menu, QMenu)]
    actions = menus[0].actions()  # File: New, then Start from a Pretrained Network…
    assert actions[actions.index(window.new_action) + 1] is window.transfer.pretrained_action
    dialog = open_dialog(qtbot, window, from_menu=True)
    fill_in(dialog, place, freeze="last")
    dialog.stages.setValue(2)
    dialog.ok_button.click()
    assert window.document.experiment.model.layers[0].params["freeze"] == "last:2"
    window.layer_panel.select_row(0)
    editor = window.layer_panel.editor
    freeze = editor.fields["freeze"]
    counts = freeze.widget.findChild(type(editor.title), "backboneParameterCounts")
    assert counts is not None
    # layer3 and layer4 train: 2,099,712 + 8,393,728 (counted once the data gives the shape)
    expected = "10,493,440 trainable, 683,072 frozen (of 11,176,512 in resnet18)"
    qtbot.waitUntil(lambda: counts.text() == expected, timeout=30_000)
    combo = freeze.choice  # type: ignore[attr-defined]
    combo.setCurrentIndex(combo.findData("all"))
    combo.activated.emit(combo.currentIndex())
    assert "freeze" not in window.document.experiment.model.layers[0].params  # true: the default
    qtbot.waitUntil(lambda: counts.text().startswith("0 trainable, 11,176,512 frozen"))
    window.undo_action.trigger()
    assert window.document.experiment.model.layers[0].params["freeze"] == "last:2"
    assert freeze.stages.maximum() == 6  # type: ignore[attr-defined]
    assert "2: layer3, layer4" in freeze.stages.toolTip()  # type: ignore[attr-defined]
    arch, weights = editor.field("arch"), editor.field("weights")
    assert isinstance(arch, QLineEdit) and isinstance(weights, QLineEdit)
    assert arch.text() == "resnet18" and arch.completer() is not None
    weights.setText("none")
    weights.editingFinished.emit()
    assert window.document.experiment.model.layers[0].params["weights"] == "none"


def test_augmentation_panel_explains_itself_without_an_image_folder(
    qtbot: QtBot, window: MainWindow
) -> None:
    panel: AugmentationPanel = window.transfer.augmentation
    assert window.document.experiment.data.name != "image-folder"
    assert not panel.crop.isEnabled() and panel.filled_cells() == 0
    assert panel.status.text().startswith("The augmentation applies to image folders")


def test_grad_cam_refuses_before_training(qtbot: QtBot, window: MainWindow) -> None:
    view = window.insight_panel.gradcam
    assert not view.explain_sample(0)
    assert not view.explain_predicted()
    assert view.label.text() == "Pick or draw an input in the Predict tab first."
