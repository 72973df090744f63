"""A new dataset that takes a while to read: the layer stack never plans for the old one."""

from __future__ import annotations

from pathlib import Path

from tests.transfer_helpers import write_image_folder
from workbench.ui.main_window import MainWindow

READING = "The Data panel is still reading the data; Train follows."


def test_the_stack_forgets_the_old_data_while_a_new_folder_is_read(
    qtbot,
    window: MainWindow,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    stack = window.layer_panel.model
    assert stack.data_shape == (1, 8, 8)  # digits-mlp: 8x8 grayscale digits
    folder = write_image_folder(tmp_path / "pictures", odd_files=False)
    window.document.update_data(name="image-folder", path=str(folder))
    assert stack.data_shape is None  # not the digits' shape while the folder is read
    assert window.train_problems() == [READING]
    assert window.run_panel.train_button.toolTip() == READING
    qtbot.waitUntil(lambda: not window.data_panel.is_loading, timeout=60_000)
    qtbot.waitUntil(lambda: stack.data_shape is not None, timeout=10_000)
    assert stack.data_shape[0] == 3  # RGB pictures
    assert READING not in window.train_problems()  # the stack plans for the pictures now
    assert window.run_panel.train_button.toolTip() != READING
