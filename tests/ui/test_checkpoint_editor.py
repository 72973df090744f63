"""CheckpointEditor driven as a user drives it: open, rename, fit a model, undo, filter, save."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow
from torch import nn

from workbench.controllers.checkpoint_loader import CheckpointLoader
from workbench.engine.checkpoints import open_checkpoint
from workbench.engine.checkpoints.report import format_number
from workbench.ui.checkpoint_editor import CheckpointEditor
from workbench.ui.checkpoint_editor import tensor_panel as tensor_panel_module
from workbench.ui.checkpoint_editor.tree_model import LAYER_TYPE, NAME, SHAPE

# The offscreen platform warns about size hints whenever a top-level window with a layout shows.
pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")
MNIST_KEYS = [
    "conv1.weight",
    "conv1.bias",
    "conv2.weight",
    "conv2.bias",
    "fc1.weight",
    "fc1.bias",
    "fc2.weight",
    "fc2.bias",
]
RENAMED_KEYS = [key.replace("conv", "embed_") for key in MNIST_KEYS]


class MnistCnn(nn.Module):
    """The PyTorch MNIST example's layout, shrunk: conv1, conv2, fc1, fc2 (names settable)."""

    def __init__(self, first: str = "conv1", second: str = "conv2") -> None:
        super().__init__()
        self.add_module(first, nn.Conv2d(1, 4, 3))
        self.add_module(second, nn.Conv2d(4, 8, 3))
        self.fc1 = nn.Linear(32, 16)
        self.fc2 = nn.Linear(16, 10)


def renamed_model() -> nn.Module:
    return MnistCnn("embed_1", "embed_2")


@pytest.fixture
def mnist_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "mnist_cnn.pt"
    torch.save(MnistCnn().state_dict(), path)
    return path


@pytest.fixture
def editors(qtbot) -> Iterator[list[CheckpointEditor]]:  # type: ignore[no-untyped-def]
    made: list[CheckpointEditor] = []
    yield made
    for editor in made:
        assert editor.shutdown(10_000)
    assert not CheckpointLoader.running_threads()


def open_editor(qtbot, editors, path: Path, provider=renamed_model) -> CheckpointEditor:  # type: ignore[no-untyped-def]
    editor = CheckpointEditor(model_provider=provider)
    qtbot.addWidget(editor)
    editors.append(editor)
    with qtbot.waitSignal(editor.title_changed, timeout=10_000):
        editor.open_file(path)
    return editor


def top_level_names(editor: CheckpointEditor) -> list[str]:
    proxy = editor.key_tree.proxy
    return [proxy.index(row, NAME).data() for row in range(proxy.rowCount())]


def visible_keys(editor: CheckpointEditor) -> list[str]:
    """Tensor keys the tree shows (through the filter), depth first."""
    proxy, model = editor.key_tree.proxy, editor.key_tree.tree_model
    keys, stack = [], [QModelIndex()]
    while stack:
        parent = stack.pop()
        for row in reversed(range(proxy.rowCount(parent))):
            index = proxy.index(row, NAME, parent)
            if proxy.hasChildren(index):
                stack.append(index)
            else:
                keys.append(model.item(proxy.mapToSource(index)).path)
    return sorted(keys)


def test_opening_shows_the_module_tree_with_shapes_and_types(qtbot, editors, mnist_file) -> None:  # type: ignore[no-untyped-def]
    editor = open_editor(qtbot, editors, mnist_file)
    assert top_level_names(editor) == ["conv1", "conv2", "fc1", "fc2"]
    conv1 = editor.key_tree.proxy.index(0, NAME)
    assert conv1.siblingAtColumn(LAYER_TYPE).data() == "Conv2d"
    weight = editor.key_tree.proxy.index(0, SHAPE, conv1)
    assert weight.data() == "[4, 1, 3, 3]"
    summary = editor.header.summary.text()
    assert "8 keys" in summary and "mnist_cnn.pt" in summary
    assert editor.title == "mnist_cnn.pt" and not editor.is_dirty
    assert not editor.wrapper_banner.isVisibleTo(editor)
    assert not editor.error_banner.isVisibleTo(editor)


def test_rename_then_reconcile_passes_strict_load_and_undo_restores(
    qtbot, editors, mnist_file
) -> None:  # type: ignore[no-untyped-def]
    editor = open_editor(qtbot, editors, mnist_file)
    dirty: list[bool] = []
    editor.dirty_changed.connect(dirty.append)
    assert editor.document.rename_substring("conv1", "embed_1")
    assert editor.document.rename_substring("conv2", "embed_2")
    assert list(editor.state_dict) == RENAMED_KEYS
    assert top_level_names(editor) == ["embed_1", "embed_2", "fc1", "fc2"]
    assert dirty == [True] and editor.title == "mnist_cnn.pt*"
    assert editor.header.dirty_indicator.isVisibleTo(editor)

    result = editor.document.reconcile()
    assert result is not None and result.fits
    verdict = editor.reconcile_view.verdict.text()
    assert verdict.startswith("✔ Strict load passes: all 8 keys match the model")

    editor.document.undo_stack.undo()
    editor.document.undo_stack.undo()
    assert list(editor.state_dict) == MNIST_KEYS
    assert dirty == [True, False] and editor.title == "mnist_cnn.pt"
    assert editor.reconcile_view.verdict.text().startswith(
        "✘ Strict load fails: 4 missing, 4 unexpected"
    )


def test_rename_through_the_dialog_with_its_live_preview(qtbot, editors, mnist_file) -> None:  # type: ignore[no-untyped-def]
    editor = open_editor(qtbot, editors, mnist_file)
    editor.key_tree.select_path("conv1")
    dialog = editor.open_rename_dialog()
    assert dialog.find_edit.text() == "conv1"  # the selected module is the starting text
    dialog.replace_edit.setText("embed_1")
    rows = [
        (dialog.preview.item(row, 0).text(), dialog.preview.item(row, 1).text())
        for row in range(dialog.preview.rowCount())
    ]
    assert rows == [("conv1.weight", "embed_1.weight"), ("conv1.bias", "embed_1.bias")]
    assert dialog.ok_button.isEnabled() and dialog.ok_button.text() == "Rename 2 key(s)"
    dialog.ok_button.click()
    dialog = editor.open_rename_dialog()
    dialog.find_edit.setText("conv2")
    dialog.replace_edit.setText("embed_2")
    dialog.ok_button.click()
    assert list(editor.state_dict) == RENAMED_KEYS
    assert editor.document.undo_stack.count() == 2


def test_substring_rename_warns_when_it_also_hits_longer_names(qtbot, editors, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "wide.pth"
    torch.save({"conv1.weight": torch.ones(2), "conv10.weight": torch.ones(2)}, path)
    editor = open_editor(qtbot, editors, path)
    dialog = editor.open_rename_dialog()
    dialog.find_edit.setText("conv1")
    dialog.replace_edit.setText("stem")
    assert "'conv1' also matches inside 'conv10.weight'" in dialog.message.text()
    dialog.regex_check.setChecked(True)
    dialog.find_edit.setText(r"^conv1\.")
    dialog.replace_edit.setText("stem.")
    assert dialog.changes == [("conv1.weight", "stem.weight")]
    dialog.reject()


def test_a_colliding_regex_rename_is_refused_naming_the_keys(qtbot, editors, mnist_file) -> None:  # type: ignore[no-untyped-def]
    editor = open_editor(qtbot, editors, mnist_file)
    dialog = editor.open_rename_dialog(regex=True)
    dialog.find_edit.setText(r"^conv\d")
    dialog.replace_edit.setText("conv")
    message = dialog.message.text()
    assert "rename refused" in message
    assert "'conv1.weight', 'conv2.weight'" in message and "'conv.weight'" in message
    assert not dialog.ok_button.isEnabled()
    assert dialog.preview.rowCount() == 0
    dialog.reject()

    assert not editor.document.rename_regex(r"^conv\d", "conv")  # the API refuses the same way
    assert editor.error_banner.isVisibleTo(editor)
    assert (
        "'conv1.weight', 'conv2.weight' would all become 'conv.weight'" in editor.error_banner.text
    )
    assert list(editor.state_dict) == MNIST_KEYS and editor.document.undo_stack.count() == 0


def test_reconcile_suggests_renames_and_applying_them_makes_it_fit(
    qtbot, editors, mnist_file
) -> None:  # type: ignore[no-untyped-def]
    editor = open_editor(qtbot, editors, mnist_file)
    editor.tabs.setCurrentWidget(editor.reconcile_view)
    assert editor.reconcile_view.reconcile_button.isEnabled()
    editor.reconcile_view.reconcile_button.click()
    view = editor.reconcile_view
    assert view.verdict.text() == (
        "✘ Strict load fails: 4 missing, 4 unexpected (of 4 matched). "
        "The 4 suggested renames make it fit: apply them below."
    )
    assert view.group_keys("Suggested renames") == MNIST_KEYS[:4]
    assert view.group_keys("Missing from the file") == RENAMED_KEYS[:4]
    view.apply_button.click()
    assert list(editor.state_dict) == RENAMED_KEYS
    assert view.verdict.text().startswith("✔ Strict load passes")
    assert not view.apply_button.isEnabled()
    editor.document.undo_stack.undo()
    assert view.verdict.text().startswith("✘ Strict load fails")


def test_reconcile_is_disabled_with_a_reason_when_there_is_no_model(
    qtbot, editors, mnist_file
) -> None:  # type: ignore[no-untyped-def]
    editor = open_editor(qtbot, editors, mnist_file, provider=lambda: None)
    editor.tabs.setCurrentWidget(editor.reconcile_view)
    assert not editor.reconcile_view.reconcile_button.isEnabled()
    assert "does not build a model" in editor.reconcile_view.reason.text()
    assert editor.document.reconcile() is None

    no_provider = open_editor(qtbot, editors, mnist_file, provider=None)
    no_provider.refresh_model_availability()
    assert not no_provider.reconcile_view.reconcile_button.isEnabled()
    assert no_provider.reconcile_view.reason.text().startswith("No model to compare with")


def test_a_ddp_file_is_fixed_by_the_banner_button(qtbot, editors, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ddp.pth"
    torch.save({f"module.{k}": v for k, v in MnistCnn().state_dict().items()}, path)
    editor = open_editor(qtbot, editors, path)
    banner = editor.wrapper_banner
    assert banner.isVisibleTo(editor)
    assert banner.text.startswith(
        "This file was saved from DDP (DistributedDataParallel): strip 'module.'"
    )
    assert editor.fix_button.text() == "Fix: strip 'module.'"
    editor.fix_button.click()
    assert list(editor.state_dict) == MNIST_KEYS
    assert not banner.isVisibleTo(editor)
    stack = editor.document.undo_stack
    assert stack.count() == 1 and stack.undoText() == "Strip 'module.'"
    stack.undo()
    assert next(iter(editor.state_dict)) == "module.conv1.weight"
    assert banner.isVisibleTo(editor)


def test_the_filter_box_shows_only_matching_keys(qtbot, editors, mnist_file) -> None:  # type: ignore[no-untyped-def]
    editor = open_editor(qtbot, editors, mnist_file)
    messages: list[str] = []
    editor.status_message.connect(messages.append)
    qtbot.keyClicks(editor.key_tree.filter_edit, "BIAS")  # filters once typing pauses
    biases = sorted(k for k in MNIST_KEYS if k.endswith("bias"))
    qtbot.waitUntil(lambda: visible_keys(editor) == biases, timeout=5_000)
    assert messages == ["4 of 8 keys match 'BIAS'"]
    editor.key_tree.filter_edit.setText("fc2")
    # a module match shows its tensors
    qtbot.waitUntil(lambda: visible_keys(editor) == ["fc2.bias", "fc2.weight"], timeout=5_000)
    editor.key_tree.filter_edit.clear()
    qtbot.waitUntil(lambda: visible_keys(editor) == sorted(MNIST_KEYS), timeout=5_000)


def test_a_selected_small_tensor_shows_statistics_values_and_histogram(
    qtbot, editors, mnist_file
) -> None:  # type: ignore[no-untyped-def]
    editor = open_editor(qtbot, editors, mnist_file)
    panel = editor.tensor_panel
    assert panel.analysis is None  # nothing computed before a selection
    assert editor.key_tree.select_path("fc2.bias")
    bias = editor.state_dict["fc2.bias"]
    shown = panel.stats_text()
    assert shown["Min"] == format_number(float(bias.min()))
    assert shown["Max"] == format_number(float(bias.max()))
    assert shown["NaN"] == "0"
    assert panel.values_box.isVisibleTo(panel)
    shown_values = [
        float(v) for v in re.findall(r"-?\d+\.\d*(?:e-?\d+)?", panel.values.toPlainText())
    ]
    assert shown_values == pytest.approx(bias.tolist(), abs=1e-4)
    assert panel.histogram.isVisibleTo(panel)
    assert sum(panel.analysis.histogram.counts) == 10

    assert editor.key_tree.select_path("fc1.weight")  # 512 elements: statistics but no values
    assert not panel.values_box.isVisibleTo(panel)
    assert panel.stats_text()["Zeros"] == "0.0%"


def test_statistics_of_a_big_tensor_arrive_from_the_worker_thread(
    qtbot, editors, mnist_file, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(tensor_panel_module, "SYNC_LIMIT", 16)
    editor = open_editor(qtbot, editors, mnist_file)
    panel = editor.tensor_panel
    editor.key_tree.select_path("fc1.weight")
    qtbot.waitUntil(lambda: "Std" in panel.stats_text(), timeout=10_000)
    weight = editor.state_dict["fc1.weight"].double()
    assert panel.stats_text()["Mean"] == format_number(float(weight.mean()))


def test_delete_and_cast_are_undoable(qtbot, editors, mnist_file) -> None:  # type: ignore[no-untyped-def]
    editor = open_editor(qtbot, editors, mnist_file)
    editor.key_tree.select_path("fc2")
    assert editor.delete_action.isEnabled()
    editor.delete_action.trigger()
    assert list(editor.state_dict) == MNIST_KEYS[:6]
    assert editor.document.cast("bfloat16")
    assert {t.dtype for t in editor.state_dict.values()} == {torch.bfloat16}
    dialog = editor.open_cast_dialog()
    dialog.dtype_box.setCurrentText("bfloat16")
    assert not dialog.ok_button.isEnabled()
    assert dialog.summary.text() == "Every floating-point tensor is already bfloat16."
    dialog.reject()
    editor.document.undo_stack.undo()
    editor.document.undo_stack.undo()
    assert list(editor.state_dict) == MNIST_KEYS
    assert editor.state_dict["fc1.weight"].dtype == torch.float32


def test_prefix_dialog_strips_and_adds(qtbot, editors, mnist_file) -> None:  # type: ignore[no-untyped-def]
    editor = open_editor(qtbot, editors, mnist_file)
    dialog = editor.open_prefix_dialog()
    dialog.add_radio.setChecked(True)
    dialog.quick_buttons["model."].click()
    assert dialog.summary.text() == "8 of 8 key(s) get the prefix."
    dialog.ok_button.click()
    assert next(iter(editor.state_dict)) == "model.conv1.weight"
    assert editor.wrapper_banner.isVisibleTo(editor)
    dialog = editor.open_prefix_dialog()
    assert dialog.prefix == "model." and dialog.strip_radio.isChecked()
    assert not dialog.quick_buttons["module."].isEnabled()  # no key starts with it
    dialog.ok_button.click()
    assert list(editor.state_dict) == MNIST_KEYS


def test_ctrl_z_and_ctrl_shift_z_undo_and_redo_while_the_editor_has_focus(
    qtbot, editors, mnist_file
) -> None:  # type: ignore[no-untyped-def]
    editor = open_editor(qtbot, editors, mnist_file)
    window = QMainWindow()  # a window with its own Ctrl+Z, as the main window has
    qtbot.addWidget(window)
    window_undos: list[bool] = []
    window_undo = QAction("Undo", window)
    window_undo.setShortcut(QKeySequence(QKeySequence.StandardKey.Undo))
    window_undo.triggered.connect(window_undos.append)
    window.addAction(window_undo)
    window.setCentralWidget(editor)
    window.show()
    qtbot.waitExposed(window)
    editor.document.rename_substring("conv1", "embed_1")
    editor.key_tree.tree.setFocus()
    qtbot.waitUntil(editor.key_tree.tree.hasFocus)
    qtbot.keyClick(editor.key_tree.tree, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert list(editor.state_dict) == MNIST_KEYS
    modifiers = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    qtbot.keyClick(editor.key_tree.tree, Qt.Key.Key_Z, modifiers)
    assert next(iter(editor.state_dict)) == "embed_1.weight"
    editor.key_tree.select_path("fc2.bias")
    qtbot.keyClick(editor.key_tree.tree, Qt.Key.Key_Delete)
    assert "fc2.bias" not in editor.state_dict
    assert window_undos == []  # the project's Undo never saw the editor's keys
    filter_edit = editor.key_tree.filter_edit
    filter_edit.setFocus()
    qtbot.waitUntil(filter_edit.hasFocus)
    qtbot.keyClick(filter_edit, Qt.Key.Key_Delete)  # the filter box keeps its own keys
    assert editor.state_dict["fc2.weight"] is not None
    window.takeCentralWidget()  # the editor outlives the window: the fixture shuts it down


def test_save_as_writes_the_edited_weights_and_clears_the_dirty_mark(
    qtbot, editors, mnist_file, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    editor = open_editor(qtbot, editors, mnist_file)
    editor.document.rename_substring("conv1", "embed_1")
    messages: list[str] = []
    editor.status_message.connect(messages.append)
    target = tmp_path / "fixed.safetensors"
    with qtbot.waitSignal(editor.dirty_changed, timeout=10_000) as dirty:
        editor.document.save_as(target)
    assert dirty.args == [False]
    assert editor.title == "fixed.safetensors"
    assert messages[-1] == f"Saved 8 keys to {target}."
    saved = open_checkpoint(target).state_dict
    assert sorted(saved) == sorted(editor.state_dict)
    assert torch.equal(saved["embed_1.weight"], editor.state_dict["embed_1.weight"])


def test_compare_lists_what_differs_from_a_second_file(
    qtbot, editors, mnist_file, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    other = dict(torch.load(mnist_file, weights_only=True))
    other["fc2.bias"] = other["fc2.bias"] + 1.0
    del other["conv1.bias"]
    other_path = tmp_path / "other.pth"
    torch.save(other, other_path)
    editor = open_editor(qtbot, editors, mnist_file)
    with qtbot.waitSignal(editor.document.loader.finished, timeout=10_000):
        editor.document.compare_with(other_path)
    table = editor.diff_view.table
    rows = {table.item(r, 0).text(): table.item(r, 1).text() for r in range(table.rowCount())}
    assert rows == {"conv1.bias": "only in this file", "fc2.bias": "values"}
    value_row = next(r for r in range(table.rowCount()) if table.item(r, 0).text() == "fc2.bias")
    assert table.item(value_row, 4).text() == "1"
    assert "1 only here" in editor.diff_view.summary.text()
    assert "6 identical" in editor.diff_view.summary.text()
