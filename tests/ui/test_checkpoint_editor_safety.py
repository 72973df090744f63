"""The editor's safety: unsafe files are refused with their globals, broken files get a message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from workbench.controllers.checkpoint_loader import CheckpointLoader
from workbench.ui.checkpoint_editor import CheckpointEditor
from workbench.ui.checkpoint_editor.dialogs import TRUST_BUTTON_TEXT

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")


class TouchesMarker:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.touch, (Path(self.marker),))


@pytest.fixture
def editor(qtbot) -> Iterator[CheckpointEditor]:  # type: ignore[no-untyped-def]
    made = CheckpointEditor()
    qtbot.addWidget(made)
    yield made
    assert made.shutdown(20_000)
    assert not CheckpointLoader.running_threads()


@pytest.fixture
def evil_file(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.ones(2, 2), "payload": TouchesMarker(marker)}, path)
    return path, marker


def open_and_wait_for_failure(qtbot, editor: CheckpointEditor, path: Path) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(editor.document.loader.failed, timeout=10_000):
        editor.open_file(path)


def answer_trust_dialog(button_name: str, seen: list[QMessageBox]) -> None:
    """Click a button of the modal trust dialog once it is up (it blocks in exec())."""

    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(10, click)
            return
        seen.append(box)
        next(b for b in box.buttons() if b.objectName() == button_name).click()

    QTimer.singleShot(0, click)


def test_an_unsafe_file_is_refused_with_its_globals_and_no_code_runs(
    qtbot, editor: CheckpointEditor, evil_file
) -> None:  # type: ignore[no-untyped-def]
    path, marker = evil_file
    open_and_wait_for_failure(qtbot, editor, path)
    banner = editor.unsafe_banner
    assert banner.isVisibleTo(editor)
    assert "Refused to open evil.pth" in banner.text
    assert "<code>pathlib.Path</code>" in banner.text
    assert "a weights-only load does not allow" in banner.text
    assert editor.trust_button.isVisibleTo(editor)
    assert editor.document.checkpoint is None and editor.state_dict == {}
    assert not marker.exists()


def test_cancelling_the_trust_dialog_keeps_the_file_closed(
    qtbot, editor: CheckpointEditor, evil_file
) -> None:  # type: ignore[no-untyped-def]
    path, marker = evil_file
    open_and_wait_for_failure(qtbot, editor, path)
    messages: list[str] = []
    editor.status_message.connect(messages.append)
    seen: list[QMessageBox] = []
    answer_trust_dialog("trustCancel", seen)
    editor.trust_button.click()
    box = seen[0]
    assert box.text() == "Loading evil.pth runs Python code stored in the file."
    assert str(path) in box.informativeText() and "pathlib.Path" in box.informativeText()
    assert box.defaultButton().objectName() == "trustCancel"
    assert any(b.text() == TRUST_BUTTON_TEXT for b in box.buttons())
    assert messages == ["evil.pth was not opened."]
    assert not editor.document.loader.is_busy and editor.document.checkpoint is None
    assert not marker.exists()


def test_load_anyway_reads_the_file_in_a_separate_process(
    qtbot, editor: CheckpointEditor, evil_file
) -> None:  # type: ignore[no-untyped-def]
    path, marker = evil_file
    open_and_wait_for_failure(qtbot, editor, path)
    seen: list[QMessageBox] = []
    answer_trust_dialog("trustLoadAnyway", seen)
    with qtbot.waitSignal(editor.title_changed, timeout=60_000):
        editor.trust_button.click()
    checkpoint = editor.document.checkpoint
    assert checkpoint is not None and checkpoint.loaded_in_subprocess
    assert list(editor.state_dict) == ["fc.weight"]
    assert not editor.unsafe_banner.isVisibleTo(editor)
    assert marker.exists()  # the user chose to run it: it ran, in the child process


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("truncated", "the zip archive is truncated or damaged"),
        ("random", "not a PyTorch checkpoint or safetensors file"),
        ("empty", "the file is empty (0 bytes)"),
        ("html", "HTML or XML (a web page saved instead of the download?)"),
    ],
)
def test_broken_files_show_their_message_inline_never_a_traceback(
    qtbot, editor: CheckpointEditor, tmp_path: Path, content: str, expected: str
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"{content}.pth"
    torch.save({"w": torch.randn(64, 64)}, path)
    data = {
        "truncated": path.read_bytes()[: path.stat().st_size // 2],
        "random": bytes(range(7, 256)) * 8,
        "empty": b"",
        "html": b"<!DOCTYPE html><html><body>Sign in</body></html>",
    }[content]
    path.write_bytes(data)
    open_and_wait_for_failure(qtbot, editor, path)
    banner = editor.error_banner
    assert banner.isVisibleTo(editor)
    assert banner.text.startswith(f"{path}: ") and expected in banner.text
    assert "Traceback" not in banner.text
    assert not editor.unsafe_banner.isVisibleTo(editor)
    assert not editor.header.busy_row.isVisibleTo(editor)


def test_a_failed_open_keeps_the_file_already_open(
    qtbot, editor: CheckpointEditor, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "good.pth"
    torch.save({"w": torch.ones(2)}, good)
    with qtbot.waitSignal(editor.title_changed, timeout=10_000):
        editor.open_file(good)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"")
    open_and_wait_for_failure(qtbot, editor, bad)
    assert editor.title == "good.pth" and list(editor.state_dict) == ["w"]
    assert "bad.pth: the file is empty" in editor.error_banner.text


def test_comparing_with_an_unsafe_file_is_refused_too(
    qtbot, editor: CheckpointEditor, evil_file, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    path, marker = evil_file
    good = tmp_path / "good.pth"
    torch.save({"fc.weight": torch.ones(2, 2)}, good)
    with qtbot.waitSignal(editor.title_changed, timeout=10_000):
        editor.open_file(good)
    with qtbot.waitSignal(editor.document.loader.failed, timeout=10_000):
        editor.document.compare_with(path)
    view = editor.diff_view
    assert f"{path}: refused to open" in view.summary.text()
    assert view.trust_button.isVisibleTo(editor)
    assert view.table.rowCount() == 0
    assert not marker.exists()


def test_saving_to_an_unknown_suffix_shows_the_reason(
    qtbot, editor: CheckpointEditor, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "good.pth"
    torch.save({"w": torch.ones(2)}, good)
    with qtbot.waitSignal(editor.title_changed, timeout=10_000):
        editor.open_file(good)
    editor.document.strip_prefix("w")  # refused: stripping would leave an empty key
    assert "would get an empty key" in editor.error_banner.text
    with qtbot.waitSignal(editor.document.loader.failed, timeout=10_000):
        editor.document.save_as(tmp_path / "weights.txt")
    assert "unknown output suffix '.txt'" in editor.error_banner.text
    assert not (tmp_path / "weights.txt").exists()
